"""Tests for facemodels.procrustes against hand-made transforms and scipy."""

import math

import numpy as np
import pytest
import torch

from facemodels.procrustes import (
    affine_camera,
    apply_similarity,
    rigid_align,
    similarity_align,
    umeyama,
)
from facemodels.rotations import axis_angle_to_matrix, rotation_z


def _cloud(B: int, N: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, N, 3, generator=g, dtype=dtype)


def test_hand_case_square_in_2d():
    # unit square scaled by 2, rotated 90 deg, shifted by (1, 1)
    src = torch.tensor([[0.0, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.float64)
    R = torch.tensor([[0.0, -1], [1, 0]], dtype=torch.float64)
    dst = 2.0 * src @ R.T + torch.tensor([1.0, 1.0], dtype=torch.float64)
    # by hand: (1,0) -> 2*(0,1) + (1,1) = (1, 3)
    assert dst[1].tolist() == [1.0, 3.0]
    out = similarity_align(src, dst)
    assert out.scale.item() == pytest.approx(2.0, abs=1e-12)
    torch.testing.assert_close(out.R, R, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        out.t, torch.tensor([1.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(out.aligned, dst, atol=1e-12, rtol=0)
    assert not out.degenerate


@pytest.mark.parametrize("dtype,atol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_recovers_random_similarity_batched(dtype, atol):
    B, N = 6, 30
    src = _cloud(B, N, dtype=dtype)
    g = torch.Generator().manual_seed(1)
    R = axis_angle_to_matrix(torch.randn(B, 3, generator=g, dtype=dtype))
    s = torch.rand(B, generator=g, dtype=dtype) * 3 + 0.2
    t = torch.randn(B, 3, generator=g, dtype=dtype) * 5
    dst = apply_similarity(src, s, R, t)
    out = umeyama(src, dst)
    torch.testing.assert_close(out.scale, s, atol=atol, rtol=0)
    torch.testing.assert_close(out.R, R, atol=atol, rtol=0)
    torch.testing.assert_close(out.t, t, atol=atol * 10, rtol=0)
    torch.testing.assert_close(out.aligned, dst, atol=atol * 10, rtol=0)
    assert not out.degenerate.any()
    assert out.R.dtype == dtype


def test_rigid_keeps_scale_one_and_matches_hand_case():
    src = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 2, 0], [0, 0, 3]], dtype=torch.float64)
    R = rotation_z(torch.tensor(math.pi / 2, dtype=torch.float64))
    # target is the source rotated and scaled by 2: the rigid fit keeps s = 1, same R,
    # and the translation maps the centroid: t = mu_y - R mu_x = 2 R mu_x - R mu_x = R mu_x
    dst = 2.0 * src @ R.T
    out = rigid_align(src, dst)
    assert out.scale.item() == 1.0
    torch.testing.assert_close(out.R, R, atol=1e-12, rtol=0)
    torch.testing.assert_close(out.t, R @ src.mean(0), atol=1e-12, rtol=0)


def test_reflection_gives_proper_rotation():
    src = _cloud(1, 20, seed=2)[0]
    mirrored = src * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)  # a reflection
    out = similarity_align(src, mirrored)
    assert torch.linalg.det(out.R).item() == pytest.approx(1.0, abs=1e-12)
    # the residual is strictly positive (a reflection cannot be matched) but finite
    err = (out.aligned - mirrored).norm(dim=-1).mean()
    assert 0 < err.item() < src.norm(dim=-1).mean().item()
    # planar source, mirrored: the best proper rotation reproduces it exactly (rotate 180 deg
    # about the plane's in-plane axis)
    planar = src.clone()
    planar[:, 2] = 0
    mirrored = planar * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    out = similarity_align(planar, mirrored)
    torch.testing.assert_close(out.aligned, mirrored, atol=1e-10, rtol=0)
    assert torch.linalg.det(out.R).item() == pytest.approx(1.0, abs=1e-12)


def test_weights_ignore_outliers_and_match_subset_fit():
    B, N = 2, 25
    src = _cloud(B, N, seed=3)
    R = axis_angle_to_matrix(torch.tensor([[0.1, 0.5, -0.3], [1.0, 0.0, 0.2]], dtype=torch.float64))
    dst = apply_similarity(
        src, torch.tensor([1.5, 0.7], dtype=torch.float64), R, torch.ones(B, 3, dtype=torch.float64)
    )
    dst[:, :5] += 10.0  # outliers
    w = torch.ones(B, N, dtype=torch.float64)
    w[:, :5] = 0
    out = umeyama(src, dst, w)
    torch.testing.assert_close(out.R, R, atol=1e-10, rtol=0)
    sub = umeyama(src[:, 5:], dst[:, 5:])
    torch.testing.assert_close(out.scale, sub.scale, atol=1e-10, rtol=0)
    torch.testing.assert_close(out.t, sub.t, atol=1e-10, rtol=0)
    # integer weights = repeated points
    w2 = torch.ones(N, dtype=torch.float64)
    w2[0] = 3
    rep_src = torch.cat([src[:, :1], src[:, :1], src], 1)
    rep_dst = torch.cat([dst[:, :1], dst[:, :1], dst], 1)
    a, b = umeyama(src, dst, w2), umeyama(rep_src, rep_dst)
    torch.testing.assert_close(a.R, b.R, atol=1e-10, rtol=0)
    torch.testing.assert_close(a.scale, b.scale, atol=1e-10, rtol=0)


def test_weighted_fit_minimises_weighted_error():
    src, dst = _cloud(1, 15, seed=4), _cloud(1, 15, seed=5)
    w = torch.rand(1, 15, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = umeyama(src, dst, w)

    def cost(s, R, t):
        return (w * ((apply_similarity(src, s, R, t) - dst) ** 2).sum(-1)).sum()

    best = cost(out.scale, out.R, out.t)
    g = torch.Generator().manual_seed(7)
    for _ in range(20):  # any perturbation increases the cost
        dR = axis_angle_to_matrix(torch.randn(1, 3, generator=g, dtype=torch.float64) * 1e-2)
        ds = 1 + torch.randn(1, generator=g, dtype=torch.float64) * 1e-2
        dt = torch.randn(1, 3, generator=g, dtype=torch.float64) * 1e-2
        assert cost(out.scale * ds, dR @ out.R, out.t + dt) > best


def test_degenerate_all_points_equal_flags_without_nan():
    src = torch.ones(2, 10, 3, dtype=torch.float32) * torch.tensor([1.0, 2.0, 3.0])
    dst = _cloud(2, 10, dtype=torch.float32)
    out = similarity_align(src, dst)
    assert out.degenerate.all()
    for f in (out.scale, out.R, out.t, out.aligned):
        assert torch.isfinite(f).all()
    torch.testing.assert_close(out.R, torch.eye(3).expand(2, 3, 3))
    torch.testing.assert_close(out.scale, torch.ones(2))
    # pure translation onto the target centroid
    torch.testing.assert_close(out.aligned[:, 0], dst.mean(1), atol=1e-5, rtol=0)


def test_degenerate_collinear_flags_and_is_still_optimal_on_the_line():
    line = torch.linspace(-1, 1, 9, dtype=torch.float64)[:, None] * torch.tensor(
        [1.0, 2.0, -1.0], dtype=torch.float64
    )
    src = line + torch.tensor([5.0, 0.0, 1.0], dtype=torch.float64)
    R = axis_angle_to_matrix(torch.tensor([0.3, -0.2, 0.9], dtype=torch.float64))
    dst = 2.0 * src @ R.T
    out = similarity_align(src, dst)
    assert bool(out.degenerate)
    assert torch.isfinite(out.R).all()
    torch.testing.assert_close(out.aligned, dst, atol=1e-9, rtol=0)  # a line maps exactly
    # a general cloud is not flagged; zero total weight is
    assert not bool(similarity_align(_cloud(1, 9)[0], _cloud(1, 9, seed=1)[0]).degenerate)
    zero = umeyama(_cloud(1, 9)[0], _cloud(1, 9, seed=1)[0], torch.zeros(9, dtype=torch.float64))
    assert bool(zero.degenerate) and torch.isfinite(zero.aligned).all()


def test_bad_input_raises():
    with pytest.raises(ValueError, match="must match"):
        umeyama(torch.zeros(5, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="weights"):
        umeyama(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), torch.ones(3, 5))
    with pytest.raises(ValueError, match="non-negative"):
        umeyama(torch.zeros(5, 3), torch.zeros(5, 3), -torch.ones(5))


def test_gradient_flows_to_points():
    src = _cloud(2, 12).requires_grad_(True)
    dst = _cloud(2, 12, seed=9)
    out = similarity_align(src, dst)
    ((out.aligned - dst) ** 2).sum().backward()
    assert torch.isfinite(src.grad).all()


def test_reflection_flag_hand_case_mirror_in_2d():
    # four points mirrored in the y axis (x -> -x), scaled by 2, shifted by (3, 0); by hand:
    # the best orthogonal map is R = diag(-1, 1) (det -1), s = 2, t = (3, 0), zero residual
    src = torch.tensor([[1.0, 0], [0, 1], [-2, 0], [0, -3]], dtype=torch.float64)
    R = torch.tensor([[-1.0, 0], [0, 1]], dtype=torch.float64)
    dst = 2.0 * src @ R.T + torch.tensor([3.0, 0.0], dtype=torch.float64)
    assert dst[0].tolist() == [1.0, 0.0] and dst[2].tolist() == [7.0, 0.0]
    free = similarity_align(src, dst, reflection=True)
    torch.testing.assert_close(free.R, R, atol=1e-12, rtol=0)
    assert free.scale.item() == pytest.approx(2.0, abs=1e-12)
    torch.testing.assert_close(free.aligned, dst, atol=1e-12, rtol=0)
    # without the flag the rotation stays proper and the mirror image cannot be matched
    proper = similarity_align(src, dst)
    assert torch.linalg.det(proper.R).item() == pytest.approx(1.0, abs=1e-12)
    assert (proper.aligned - dst).norm() > 1.0
    # on data that a rotation fits best the flag changes nothing
    rot = torch.tensor([[0.0, -1], [1, 0]], dtype=torch.float64)
    a, b = similarity_align(src, src @ rot.T), similarity_align(src, src @ rot.T, reflection=True)
    torch.testing.assert_close(a.R, b.R, atol=1e-12, rtol=0)


def test_reflection_flag_matches_scipy():
    from scipy.linalg import orthogonal_procrustes
    from scipy.spatial import procrustes as scipy_procrustes

    src = _cloud(3, 20, seed=11)
    g = torch.Generator().manual_seed(12)
    dst = src * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64) + 0.3 * torch.randn(
        src.shape, generator=g, dtype=torch.float64
    )  # mirror images plus noise: the best orthogonal map has det -1
    for b in range(3):
        # orthogonal_procrustes(A, B) minimises ||A Omega - B|| over orthogonal Omega (centred data,
        # row vectors): Omega = R^T of ours
        xs, xd = src[b] - src[b].mean(0), dst[b] - dst[b].mean(0)
        omega, _ = orthogonal_procrustes(xs.numpy(), xd.numpy())
        ours = rigid_align(src[b], dst[b], reflection=True)
        np.testing.assert_allclose(ours.R.numpy(), omega.T, atol=1e-10)
        assert np.linalg.det(omega) == pytest.approx(-1.0)
        # scipy.spatial.procrustes standardises both (centred, unit Frobenius norm), aligns the
        # second onto the first with reflections allowed; disparity = sum of squared residuals
        m1, m2, disparity = scipy_procrustes(xd.numpy(), xs.numpy())
        unit = xs / xs.norm()  # the standardised second shape, before scipy's alignment
        fit = similarity_align(unit, torch.from_numpy(m1), reflection=True)
        np.testing.assert_allclose(fit.aligned.numpy(), m2, atol=1e-10)
        assert ((fit.aligned - torch.from_numpy(m1)) ** 2).sum().item() == pytest.approx(disparity, rel=1e-10)
        proper = similarity_align(unit, torch.from_numpy(m1))
        assert ((proper.aligned - torch.from_numpy(m1)) ** 2).sum().item() > disparity + 1e-3


def test_affine_camera_recovers_a_weak_perspective_view():
    # by hand: a 90 deg turn about z maps (x, y, z) -> (-y, x, z); seen at scale 4 with the
    # image offset (10, 20), the point (1, 0, 0) lands at 4 * (0, 1) + (10, 20) = (10, 24)
    X = _cloud(2, 12, seed=13)
    R = torch.stack([rotation_z(torch.tensor(math.pi / 2, dtype=torch.float64)),
                     axis_angle_to_matrix(torch.tensor([0.2, -0.4, 0.1], dtype=torch.float64))])
    s = torch.tensor([4.0, 0.5], dtype=torch.float64)
    off = torch.tensor([[10.0, 20.0], [-1.0, 2.0]], dtype=torch.float64)
    y = s[:, None, None] * (X @ R.transpose(1, 2))[..., :2] + off[:, None]
    unit = torch.tensor([[[1.0, 0.0, 0.0]]], dtype=torch.float64)
    assert (4.0 * (unit @ R[:1].transpose(1, 2))[..., :2] + off[:1, None]).flatten().tolist() == pytest.approx([10.0, 24.0])
    cam = affine_camera(X, y, ridge=0.0)
    torch.testing.assert_close(cam.R, R, atol=1e-10, rtol=0)
    torch.testing.assert_close(cam.scale, s, atol=1e-10, rtol=0)
    torch.testing.assert_close(cam.points_mean, X.mean(1), atol=1e-12, rtol=0)
    # zero-weight outliers do not count
    w = torch.ones(2, 12, dtype=torch.float64)
    w[:, :3] = 0
    y_bad = y.clone()
    y_bad[:, :3] += 50.0
    cam_w = affine_camera(X, y_bad, w, ridge=0.0)
    torch.testing.assert_close(cam_w.R, R, atol=1e-10, rtol=0)
    torch.testing.assert_close(cam_w.scale, s, atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="affine_camera"):
        affine_camera(X, y[..., :1])
