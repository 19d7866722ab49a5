"""Cameras: hand-computed projections, DAD-3DHeads (MV, P) round trips."""

import math

import pytest
import torch

from facemodels import cameras as C


def _random_rotation(g: torch.Generator, B: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(B, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2))[:, None, :]
    return q * torch.sign(torch.linalg.det(q))[:, None, None]


def _random_cameras(B: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    R = _random_rotation(g, B)
    t = torch.randn(B, 3, generator=g, dtype=torch.float64) * 0.05
    t[:, 2] += 0.6
    f = 300 + 200 * torch.rand(B, generator=g, dtype=torch.float64)
    K = C.intrinsics(f, 128 + 10 * torch.randn(B, generator=g, dtype=torch.float64), 120.0)
    pts = torch.randn(B, 50, 3, generator=g, dtype=torch.float64) * 0.08
    return K, R, t, pts


def test_default_focal_and_intrinsics():
    assert C.default_focal(3, 4) == 5.0
    K = C.intrinsics(500.0, 10.0, 20.0)
    assert torch.equal(K, torch.tensor([[500.0, 0, 10], [0, 500, 20], [0, 0, 1]]))
    assert C.intrinsics(torch.tensor([1.0, 2.0]), 0.0, 0.0).shape == (2, 3, 3)


def test_frontal_projection_by_hand():
    # Frontal camera: R = diag(1,-1,-1), head 0.5 m away. A point 0.1 m to the subject's
    # left (model +x) and 0.05 m up (model +y) lands right of and above the centre.
    R = C.model_to_cv_rotation(torch.eye(3))[None]
    assert torch.equal(R[0], torch.diag(torch.tensor([1.0, -1.0, -1.0])))
    t = torch.tensor([[0.0, 0.0, 0.5]])
    K = C.intrinsics(400.0, 128.0, 128.0)[None]
    pts = torch.tensor([[[0.1, 0.05, 0.0], [0.0, 0.0, 0.1]]])
    uv, depth = C.project_perspective(pts, R, t, K)
    # u = 400 * 0.1 / 0.5 + 128 = 208; v = 400 * (-0.05) / 0.5 + 128 = 88
    assert torch.allclose(uv[0, 0], torch.tensor([208.0, 88.0]))
    assert torch.allclose(depth[0], torch.tensor([0.5, 0.4]))  # the +z point is nearer
    assert torch.allclose(uv[0, 1], torch.tensor([128.0, 128.0]))


def test_yawed_projection_by_hand():
    # Head yawed +90 degrees about model y: model +z (nose direction) turns to model +x.
    c, s = 0.0, 1.0
    Ry = torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    R = C.model_to_cv_rotation(Ry)[None]
    t = torch.tensor([[0.0, 0.0, 1.0]])
    K = C.intrinsics(100.0, 50.0, 50.0)[None]
    uv, depth = C.project_perspective(torch.tensor([[[0.0, 0.0, 0.1]]]), R, t, K)
    assert torch.allclose(uv[0, 0], torch.tensor([60.0, 50.0]))  # 100 * 0.1 / 1 + 50
    assert torch.allclose(depth, torch.tensor([[1.0]]))


def test_orthographic_and_weak_perspective_by_hand():
    R = C.model_to_cv_rotation(torch.eye(3))[None]
    pts = torch.tensor([[[0.1, 0.2, 0.3]]])
    uv, d = C.project_orthographic(pts, R, torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(uv, torch.tensor([[[1.1, 1.8]]]))
    assert torch.allclose(d, torch.tensor([[-0.3]]))
    uv, _ = C.project_weak_perspective(pts, R, torch.tensor([10.0]), torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(uv, torch.tensor([[[2.0, 0.0]]]))


def test_weak_perspective_matches_perspective_at_reference_depth():
    K, R, t, pts = _random_cameras(4)
    scale, t2d = C.weak_perspective_from_perspective(K, R, t)
    # Points at the origin's depth plane (camera frame) project identically.
    cam_plane = torch.randn(4, 20, 2, dtype=torch.float64) * 0.05
    z0 = t[:, 2:3].expand(-1, 20)
    cam = torch.cat([cam_plane, z0[..., None]], dim=-1)  # (B, 20, 3) camera frame
    model = (cam - t[:, None]) @ R  # R^T (cam - t)
    uv_p, _ = C.project_perspective(model, R, t, K)
    uv_w, _ = C.project_weak_perspective(model, R, scale, t2d)
    assert torch.allclose(uv_p, uv_w, atol=1e-9)


@pytest.mark.parametrize("ndc", [False, True])
def test_gl_projection_reproduces_perspective(ndc):
    K, R, t, pts = _random_cameras(6, seed=1)
    H, W = 240, 256
    MV, P = C.krt_to_gl(K, R, t, H, W, ndc=ndc)
    uv_p, _ = C.project_perspective(pts, R, t, K)
    uv_g = C.project_gl(pts, MV, P, H, W, ndc=ndc)
    assert (uv_p - uv_g).abs().max() < 1e-4
    # DAD's rule: R_gt = (diag(1,-1,-1,1) MV)[:3, :3] is our R.
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    assert torch.allclose((flip @ MV)[:, :3, :3], R)


@pytest.mark.parametrize("ndc", [False, True])
def test_gl_round_trip(ndc):
    K, R, t, pts = _random_cameras(6, seed=2)
    K[:, 0, 1] = 0.3  # a little skew and anisotropy must survive too
    K[:, 1, 1] *= 1.05
    H, W = 300, 200
    MV, P = C.krt_to_gl(K, R, t, H, W, ndc=ndc)
    K2, R2, t2 = C.gl_to_krt(MV, P, H, W, ndc=ndc)
    assert torch.allclose(K2, K, atol=1e-8)
    assert torch.allclose(R2, R, atol=1e-10)
    assert torch.allclose(t2, t, atol=1e-10)
    uv1, d1 = C.project_perspective(pts, R, t, K)
    uv2, d2 = C.project_perspective(pts, R2, t2, K2)
    assert (uv1 - uv2).abs().max() < 1e-4
    assert torch.allclose(d1, d2)


def test_gl_to_krt_general_projection_and_scaled_modelview():
    # A projection matrix scaled by an arbitrary factor with a scaled model-view (as a
    # hand-built annotation may have) still gives the same pixels through (K, R, t).
    K, R, t, pts = _random_cameras(3, seed=3)
    H, W = 256, 256
    MV, P = C.krt_to_gl(K, R, t, H, W)
    MV_s = MV.clone()
    MV_s[:, :3, :3] *= 1.7
    P_s = P * 3.0
    uv_gl = C.project_gl(pts, MV_s, P_s, H, W)
    cam = C.PerspectiveCamera.from_gl(MV_s, P_s, H, W)
    uv, depth = cam.project(pts)
    assert (uv - uv_gl).abs().max() < 1e-4
    assert bool((depth > 0).all())
    assert torch.allclose(torch.linalg.det(cam.R), torch.ones(3, dtype=torch.float64))


def test_dad_annotation_by_hand():
    # A frontal DAD-style annotation: MV = identity rotation, head 1 m in front (z_gl = -1),
    # P maps to pixels with f = 100, principal point (50, 40) in a 100x80 image.
    H, W = 80, 100
    MV = torch.eye(4)[None].clone()
    MV[0, 2, 3] = -1.0
    K = C.intrinsics(100.0, 50.0, 40.0)[None]
    P = C.gl_projection(K, H, W)
    uv = C.project_gl(torch.tensor([[[0.1, 0.1, 0.0]]]), MV, P, H, W)
    # y up 0.1 m -> 10 px above the centre: (60, 30)
    assert torch.allclose(uv, torch.tensor([[[60.0, 30.0]]]))
    cam = C.PerspectiveCamera.from_gl(MV, P, H, W)
    assert torch.allclose(cam.R[0], torch.diag(torch.tensor([1.0, -1.0, -1.0])), atol=1e-6)
    assert torch.allclose(cam.t[0], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)


def test_bad_shapes_raise_with_names():
    with pytest.raises(ValueError, match="R must have shape"):
        C.project_perspective(
            torch.zeros(2, 5, 3), torch.zeros(3, 3), torch.zeros(2, 3), torch.zeros(2, 3, 3)
        )
    with pytest.raises(ValueError, match="singular"):
        C.gl_to_krt(torch.zeros(1, 4, 4), torch.zeros(1, 4, 4), 10, 10)


def test_float32_round_trip_to_1e4_px():
    K, R, t, pts = (x.float() for x in _random_cameras(8, seed=5))
    H, W = 256, 256
    MV, P = C.krt_to_gl(K, R, t, H, W)
    cam = C.PerspectiveCamera.from_gl(MV, P, H, W)
    uv1, _ = C.project_perspective(pts, R, t, K)
    uv2, _ = cam.project(pts)
    assert cam.K.dtype == torch.float32
    assert (uv1 - uv2).abs().max() < 1e-3
    assert math.isfinite(float(uv2.abs().max()))
