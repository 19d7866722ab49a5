"""CPU renderer: coverage, depth, barycentrics, visibility, shading, backgrounds, occluders."""

import numpy as np
import pytest
import torch

from facemodels.cameras import default_focal, intrinsics, model_to_cv_rotation
from facemodels.render import (
    BACKGROUND_KINDS,
    BackgroundSpec,
    Lighting,
    Occluder,
    make_background,
    rasterize,
    render_mesh,
    vertex_normals,
    vertex_visibility,
)
from facemodels.render.meshes import grid_plane, uv_ellipsoid
from facemodels.rotations import euler_to_matrix

FRONTAL = np.diag([1.0, -1.0, -1.0])


def _camera(H=64, W=64, f=None):
    f = default_focal(H, W) if f is None else f
    return intrinsics(f, W / 2, H / 2).double().numpy()


def test_single_triangle_coverage_depth_and_bary():
    # Right triangle with vertices at pixel coords (2,2), (10,2), (2,10), constant depth 2 m.
    uv = np.array([[2.0, 2.0], [10.0, 2.0], [2.0, 10.0]])
    z = np.array([2.0, 2.0, 2.0])
    r = rasterize(uv, z, np.array([[0, 1, 2]]), 16, 16)
    # Samples at integer (x, y) with x >= 2, y >= 2, x + y <= 12: 1 + 2 + ... + 9 = 45.
    assert r.mask.sum() == 45
    assert r.mask[2, 2] and r.mask[2, 10] and r.mask[10, 2] and r.mask[6, 6] and not r.mask[6, 7]
    assert np.allclose(r.zbuf[r.mask], 2.0) and np.isinf(r.zbuf[~r.mask]).all()
    # pixel (i=4, j=6) is x=6, y=4: bary = (1 - 0.5 - 0.25, 0.5, 0.25)
    assert np.allclose(r.bary[4, 6], [0.25, 0.5, 0.25], atol=1e-6)
    assert (r.face_id[r.mask] == 0).all() and (r.face_id[~r.mask] == -1).all()


def test_perspective_correct_depth_and_bary():
    # Edge from (0,0) at z=1 to (8,0) at z=3 (plus a third vertex below): 1/z is affine in
    # screen space, so at x=4 the depth is 1 / (0.5 / 1 + 0.5 / 3) = 1.5.
    uv = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    z = np.array([1.0, 3.0, 1.0])
    r = rasterize(uv, z, np.array([[0, 1, 2]]), 10, 10)
    assert r.zbuf[0, 4] == pytest.approx(1.5, rel=1e-5)
    # perspective-correct barycentrics interpolate the 3D point: a = 0.75, b = 0.25
    assert np.allclose(r.bary[0, 4], [0.75, 0.25, 0.0], atol=1e-5)


def test_nearest_triangle_wins_regardless_of_order():
    uv = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]] * 2)
    z = np.array([2.0, 2.0, 2.0, 1.0, 1.0, 1.0])
    for faces in ([[0, 1, 2], [3, 4, 5]], [[3, 4, 5], [0, 1, 2]]):
        r = rasterize(uv, z, np.array(faces), 16, 16)
        near_id = faces.index([3, 4, 5])
        assert (r.face_id[r.mask] == near_id).all()
        assert np.allclose(r.zbuf[r.mask], 1.0)


def test_triangles_behind_camera_and_off_screen_are_dropped():
    uv = np.array(
        [[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [100.0, 100.0], [120.0, 100.0], [100.0, 120.0]]
    )
    r = rasterize(
        uv, np.array([-1.0, 2.0, 2.0, 1.0, 1.0, 1.0]), np.array([[0, 1, 2], [3, 4, 5]]), 16, 16
    )
    assert not r.mask.any()


def test_closed_mesh_has_no_holes_and_depth_matches_sphere():
    # Unit-radius-ish sphere: every pixel inside the silhouette must be covered (watertight
    # rasterisation of shared edges), and the z-buffer equals the analytic ray-sphere depth.
    rad = 0.1
    V, F = uv_ellipsoid(40, 60, (rad, rad, rad))
    H = W = 96
    K = _camera(H, W, f=200.0)
    t = np.array([0.0, 0.0, 0.5])
    r = render_mesh(V, F, K, FRONTAL, t, np.full_like(V, 0.5), (H, W))
    jj, ii = np.meshgrid(np.arange(W), np.arange(H))
    d = np.stack([(jj - W / 2) / 200.0, (ii - H / 2) / 200.0, np.ones_like(jj, dtype=float)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    b = d @ np.array([0, 0, 0.5])
    disc = b**2 - (0.25 - rad**2)
    inside = disc > 0.002 * rad  # well inside the silhouette
    assert r.mask[inside].all()
    analytic_z = (b - np.sqrt(np.clip(disc, 0, None))) * d[..., 2]  # (H, W) camera z
    err = np.abs(r.depth[inside] - analytic_z[inside])
    assert err.max() < 2e-3  # faceted approximation of a 10 cm sphere
    assert not r.mask[disc < -0.01].any()


def test_visibility_agrees_with_zbuffer_and_front_back():
    V, F = uv_ellipsoid()
    H = W = 128
    K = _camera(H, W)
    R = model_to_cv_rotation(euler_to_matrix(torch.tensor([35.0, 10.0, 5.0]).double())).numpy()
    t = np.array([0.0, 0.0, 0.5])
    out = render_mesh(V, F, K, R, t, np.full_like(V, 0.6), H)
    vis = out.visibility
    cam = V @ R.T + t
    # the nearest vertex (to the camera) is visible, the farthest one is not
    assert vis[np.argmin(cam[:, 2])] and not vis[np.argmax(cam[:, 2])]
    # Reference check from the definition, with the saved depth buffer.
    j = np.rint(out.vertex_px[:, 0]).astype(int)
    i = np.rint(out.vertex_px[:, 1]).astype(int)
    zb = out.depth[i, j]
    vn = vertex_normals(cam, F)
    front = (vn * -cam).sum(1) > 0
    assert np.array_equal(vis, front & (out.vertex_depth <= zb + 0.01))
    # For a convex surface, visible <=> front-facing; and visible vertices sit on the z-buffer.
    assert (vis == front).mean() > 0.99
    # (a silhouette vertex may round onto a background pixel: nothing covers it, it counts)
    on = vis & np.isfinite(zb)
    assert on.sum() > 0.8 * vis.sum()
    assert np.median(np.abs(out.vertex_depth[on] - zb[on])) < 2e-3
    assert 0.35 < vis.mean() < 0.65


def test_visibility_occluded_by_a_nearer_plane():
    # A plane 10 cm in front of a second plane hides the back plane's central vertices.
    Vf, Ff = grid_plane(5, 0.1, z=0.1)
    Vb, Fb = grid_plane(11, 0.3, z=0.0)
    V = np.concatenate([Vf, Vb])
    F = np.concatenate([Ff, Fb + len(Vf)])
    out = render_mesh(
        V, F, _camera(64, 64), FRONTAL, np.array([0, 0, 0.6]), np.full_like(V, 0.5), 64
    )
    back = np.arange(len(Vf), len(V))
    hidden = back[(np.abs(Vb[:, 0]) < 0.04) & (np.abs(Vb[:, 1]) < 0.04)]
    shown = back[(np.abs(Vb[:, 0]) > 0.08) & (np.abs(Vb[:, 0]) < 0.14)]
    assert out.visibility[: len(Vf)].all()
    assert not out.visibility[hidden].any()
    assert out.visibility[shown].all()


def test_vertex_visibility_rules():
    zbuf = np.full((4, 4), np.inf, dtype=np.float32)
    zbuf[1, 1] = 1.0
    uv = np.array([[1.2, 0.8], [1.0, 1.0], [1.0, 1.0], [-0.6, 1.0], [3.0, 3.0]])
    depth = np.array([1.005, 1.02, 1.0, 1.0, 5.0])
    front = np.array([True, True, False, True, True])
    vis = vertex_visibility(uv, depth, front, zbuf, tol=0.01)
    assert vis.tolist() == [True, False, False, False, True]


def test_lambert_shading_by_hand():
    # A plane facing the camera, light from the camera: colour = albedo (ambient + diffuse).
    V, F = grid_plane(4, 0.3)
    alb = np.tile([0.5, 0.4, 0.2], (len(V), 1))
    light = Lighting(direction=(0.0, 0.0, -1.0), ambient=0.3, diffuse=0.6)
    out = render_mesh(V, F, _camera(32, 32), FRONTAL, np.array([0, 0, 0.5]), alb, 32, light)
    px = out.image[16, 16].astype(float) / 255
    assert np.allclose(px, np.array([0.5, 0.4, 0.2]) * 0.9, atol=1 / 255)
    # Light at 60 degrees from the normal: cos = 0.5.
    light = Lighting(
        direction=(np.sin(np.pi / 3), 0.0, -np.cos(np.pi / 3)), ambient=0.3, diffuse=0.6
    )
    out = render_mesh(V, F, _camera(32, 32), FRONTAL, np.array([0, 0, 0.5]), alb, 32, light)
    assert np.allclose(out.image[16, 16] / 255, np.array([0.5, 0.4, 0.2]) * 0.6, atol=1 / 255)
    # Light from behind: ambient only.
    out = render_mesh(
        V,
        F,
        _camera(32, 32),
        FRONTAL,
        np.array([0, 0, 0.5]),
        alb,
        32,
        Lighting((0, 0, 1.0), 0.3, 0.6),
    )
    assert np.allclose(out.image[16, 16] / 255, np.array([0.5, 0.4, 0.2]) * 0.3, atol=1 / 255)


def test_back_faces_get_interior_colour():
    V, F = grid_plane(4, 0.3)
    F = F[:, ::-1].copy()  # now facing away from the camera
    out = render_mesh(
        V,
        F,
        _camera(32, 32),
        FRONTAL,
        np.array([0, 0, 0.5]),
        np.full_like(V, 0.9),
        32,
        Lighting(ambient=0.5, diffuse=0.5),
        interior_color=(0.2, 0.1, 0.1),
    )
    assert np.allclose(out.image[16, 16] / 255, np.array([0.2, 0.1, 0.1]) * 0.65, atol=1 / 255)


def test_background_occluder_and_ssaa():
    V, F = grid_plane(4, 0.1)
    K = _camera(32, 32)
    bg = BackgroundSpec("flat", color_a=(0.0, 0.0, 1.0))
    occ = Occluder("rect", center=(0.1, 0.1), size=(0.3, 0.3), color=(1.0, 0.0, 0.0))
    out = render_mesh(
        V,
        F,
        K,
        FRONTAL,
        np.array([0, 0, 0.5]),
        np.full_like(V, 1.0),
        32,
        Lighting(ambient=1.0, diffuse=0.0),
        background=bg,
        occluders=[occ],
    )
    assert out.image[31, 31].tolist() == [0, 0, 255]
    assert out.image[0, 0].tolist() == [255, 0, 0] and out.occluder_mask[0, 0]
    assert out.image[16, 16].tolist() == [255, 255, 255]
    assert out.image.dtype == np.uint8 and out.image.shape == (32, 32, 3)
    # With 2x2 supersampling the silhouette gets intermediate values, the interior does not.
    rolled = model_to_cv_rotation(euler_to_matrix(torch.tensor([0.0, 0.0, 30.0]).double())).numpy()
    out = render_mesh(
        V,
        F,
        K,
        rolled,
        np.array([0, 0, 0.5]),
        np.full_like(V, 1.0),
        32,
        Lighting(ambient=1.0, diffuse=0.0),
        background=bg,
    )
    out2 = render_mesh(
        V,
        F,
        K,
        rolled,
        np.array([0, 0, 0.5]),
        np.full_like(V, 1.0),
        32,
        Lighting(ambient=1.0, diffuse=0.0),
        background=bg,
        ssaa=2,
    )
    assert out2.image[16, 16].tolist() == [255, 255, 255]
    mixed = (out2.image[..., 0] > 5) & (out2.image[..., 0] < 250)
    assert mixed.any()
    # Coverage (red channel = 255 x alpha) integrates to about the hard-mask area.
    area_aa = out2.image[..., 0].astype(float).sum() / 255
    assert abs(area_aa - out.mask.sum()) < 0.2 * out.mask.sum()
    assert out2.mask.sum() >= out.mask.sum()


@pytest.mark.parametrize("kind", BACKGROUND_KINDS)
def test_backgrounds_deterministic_and_in_range(kind):
    spec = BackgroundSpec(
        kind, (0.1, 0.5, 0.2), (0.9, 0.3, 0.6), angle=0.7, frequency=5, seed=3, grain=0.02
    )
    a = make_background(spec, 40, 50)
    b = make_background(spec, 40, 50)
    assert a.shape == (40, 50, 3) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    if kind != "flat":
        assert a.std() > 0.02


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="unknown kind"):
        make_background(BackgroundSpec("plaid"), 8, 8)
    V, F = grid_plane(3, 0.1)
    with pytest.raises(ValueError, match="albedo must be"):
        render_mesh(V, F, _camera(8, 8), FRONTAL, np.array([0, 0, 1.0]), np.zeros((2, 3)), 8)


def test_boundary_loops_and_back_face_culling_is_exact():
    from facemodels.render.holes import boundary_loops

    V, F = uv_ellipsoid(30, 40, (0.1, 0.1, 0.1))
    assert boundary_loops(F) == []  # closed
    # Cut a hole around the +z pole (facing the camera) and one at the back.
    c = V[F].mean(1)
    Fh = F[(c[:, 2] < 0.085) & (c[:, 2] > -0.095)]
    loops = boundary_loops(Fh)
    assert len(loops) == 2
    assert all(np.abs(V[lp, 2]).min() > 0.08 for lp in loops)
    alb = np.full_like(V, 0.8)
    for yaw in (0.0, 25.0):
        R = model_to_cv_rotation(euler_to_matrix(torch.tensor([yaw, 0.0, 0.0]).double())).numpy()
        args = (V, Fh, _camera(64, 64), R, np.array([0, 0, 0.45]), alb, 64)
        a = render_mesh(*args, cull_back_faces=True)
        b = render_mesh(*args, cull_back_faces=False)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.depth, b.depth)
        assert np.array_equal(a.visibility, b.visibility)
    # Through the front hole we see the interior (back faces, dark interior colour).
    assert (a.image[32, 32] < 100).all()
