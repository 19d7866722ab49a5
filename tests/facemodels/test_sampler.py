"""Scene sampler: determinism, parameter ranges, camera placement, rendered labels."""

import math

import numpy as np
import pytest
import torch

from facemodels import flame, flame_files, flame_regions
from facemodels.cameras import project_perspective
from facemodels.render.meshes import uv_ellipsoid
from facemodels.sampler import SamplerConfig, SceneSampler, scene_camera


def _equal_scenes(a, b) -> bool:
    for k, v in vars(a).items():
        w = getattr(b, k)
        if isinstance(v, np.ndarray):
            if not np.array_equal(v, w):
                return False
        elif v != w:
            return False
    return True


def test_scenes_deterministic_per_seed_and_index_in_any_order():
    s1 = SceneSampler("somewhere", seed=7)
    s2 = SceneSampler("somewhere", seed=7)
    forward = [s1.sample(i) for i in range(5)]
    backward = [s2.sample(i) for i in reversed(range(5))][::-1]
    assert all(_equal_scenes(a, b) for a, b in zip(forward, backward, strict=True))
    assert not _equal_scenes(s1.sample(0), s1.sample(1))
    assert not _equal_scenes(s1.sample(0), SceneSampler("somewhere", seed=8).sample(0))


def test_parameter_ranges_and_uniform_yaw_covers_profiles():
    cfg = SamplerConfig(n_shape=12, n_exp=7)
    scenes = [SceneSampler("x", seed=1, config=cfg).sample(i) for i in range(300)]
    yaw = np.array([s.yaw for s in scenes])
    pitch = np.array([s.pitch for s in scenes])
    roll = np.array([s.roll for s in scenes])
    assert np.abs(yaw).max() <= 90 and np.abs(pitch).max() <= 45 and np.abs(roll).max() <= 30
    assert (yaw > 75).sum() >= 10 and (yaw < -75).sum() >= 10  # profiles on both sides
    assert scenes[0].shape.shape == (12,) and scenes[0].expression.shape == (7,)
    jaw = np.array([s.jaw_pose[0] for s in scenes])
    assert (jaw > math.radians(5)).mean() > 0.2 and jaw.max() <= math.radians(cfg.jaw_open_max)
    assert any(s.occluders for s in scenes) and any(not s.occluders for s in scenes)
    assert len({s.background.kind for s in scenes}) == len(cfg.background_kinds)
    tones = np.array([s.albedo.skin_tone for s in scenes])
    assert tones.min() < 0.1 and tones.max() > 0.9


def test_normal_yaw_distribution_and_bad_config():
    cfg = SamplerConfig(yaw_dist="normal", yaw_std=10.0)
    yaw = np.array([SceneSampler("x", 0, cfg).sample(i).yaw for i in range(200)])
    assert np.abs(yaw).mean() < 15
    with pytest.raises(ValueError, match="yaw_dist"):
        SceneSampler("x", 0, SamplerConfig(yaw_dist="beta"))


def test_scene_camera_places_head_centre_and_fill():
    V, _ = uv_ellipsoid(radii=(0.08, 0.11, 0.1))
    V = V + np.array([0.01, 0.02, -0.03])  # head centre off the model origin
    size = 200
    for i in range(5):
        sc = SceneSampler("x", seed=3).sample(i)
        K, R, t = scene_camera(sc, V, size)
        centre = 0.5 * (V.min(0) + V.max(0))
        uv, depth = project_perspective(
            *(torch.from_numpy(np.asarray(a))[None] for a in (centre[None], R, t, K))
        )
        assert np.allclose(uv[0, 0].numpy(), size / 2 + sc.shift * size, atol=1e-9)
        # the bounding sphere (radius rho) has angular diameter ~ fill * size / f
        rho = np.linalg.norm(V - centre, axis=1).max()
        assert 2 * rho * K[0, 0] / float(depth[0, 0]) == pytest.approx(sc.fill * size, rel=1e-9)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(
            1.0
        )


# ------------------------------------------------------------ rendering with the FLAME world



@pytest.fixture(scope="module")
def world():
    import pickle

    from facemodels.sampler import render_scene
    from facemodels.world import default_flame_dir

    fd = default_flame_dir()
    model = flame.FlameModel(fd)
    with open(fd / "flame_static_embedding.pkl", "rb") as f:
        static = pickle.load(f, encoding="latin1")
    dynamic = np.load(fd / "flame_dynamic_embedding.npy", allow_pickle=True, encoding="latin1")[()]
    faces = np.asarray(flame_files.load_flame_arrays(fd).faces, dtype=np.int64)
    return dict(
        fd=fd, model=model, render=render_scene, static=static, dynamic=dynamic, faces=faces
    )


def _landmarks_from_vertices(w, V):
    """DAD-3DHeads rule: cat(dynamic 17 at zero pose, static 51), barycentric on the faces."""
    fi = np.concatenate(
        [np.asarray(w["dynamic"]["lmk_face_idx"])[0], np.asarray(w["static"]["lmk_face_idx"])]
    )
    bc = np.concatenate(
        [np.asarray(w["dynamic"]["lmk_b_coords"])[0], np.asarray(w["static"]["lmk_b_coords"])]
    )
    tri = V[w["faces"][fi.astype(np.int64)]]  # (68, 3, 3)
    return (tri * bc[:, :, None]).sum(1)


def test_same_seed_same_bytes(world):
    s = SceneSampler(world["fd"], seed=11)
    a = world["render"](s.sample(3), world["model"], 96)
    b = world["render"](SceneSampler(world["fd"], seed=11).sample(3), world["model"], 96)
    assert a.image.tobytes() == b.image.tobytes()
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.visibility, b.visibility)
    c = world["render"](s.sample(4), world["model"], 96)
    assert a.image.tobytes() != c.image.tobytes()


def test_saved_vertices_and_camera_reproduce_saved_landmarks(world):
    s = SceneSampler(world["fd"], seed=5)
    for i in range(3):
        r = world["render"](s.sample(i), world["model"], 128)
        assert r.image.shape == (128, 128, 3) and r.image.dtype == np.uint8
        assert r.vertices.shape == (5023, 3) and r.visibility.shape == (5023,)
        V = r.vertices.astype(np.float64)
        lmk = _landmarks_from_vertices(world, V)
        uv, _ = project_perspective(
            *(torch.from_numpy(np.asarray(a, np.float64))[None] for a in (lmk, r.R, r.t, r.K))
        )
        assert np.abs(uv[0].numpy() - r.landmarks68_px).max() < 1e-3
        vuv, _ = project_perspective(
            *(torch.from_numpy(np.asarray(a, np.float64))[None] for a in (V, r.R, r.t, r.K))
        )
        assert np.abs(vuv[0].numpy() - r.vertex_px).max() < 1e-3
        x, y, w, h = r.bbox
        assert x == pytest.approx(r.vertex_px[:, 0].min()) and w == pytest.approx(
            np.ptp(r.vertex_px[:, 0])
        )


def test_visibility_agrees_with_depth_buffer(world):
    r = world["render"](SceneSampler(world["fd"], seed=2).sample(1), world["model"], 128)
    j = np.rint(r.vertex_px[:, 0]).astype(int)
    i = np.rint(r.vertex_px[:, 1]).astype(int)
    inside = (i >= 0) & (i < 128) & (j >= 0) & (j < 128)
    zb = np.full(len(j), -np.inf)
    zb[inside] = r.depth[i[inside], j[inside]]
    # visible => inside, and not behind the z-buffer by more than the tolerance
    assert (inside[r.visibility]).all()
    assert (r.vertex_depth[r.visibility] <= zb[r.visibility] + 0.01).all()
    # a vertex well behind the z-buffer is never visible
    assert not r.visibility[r.vertex_depth > zb + 0.01].any()
    assert 0.2 < r.visibility.mean() < 0.8


def _posed(fd, yaw):
    from dataclasses import replace

    sc = SceneSampler(fd, seed=0).sample(0)
    return replace(
        sc,
        yaw=yaw,
        pitch=0.0,
        roll=0.0,
        occluders=[],
        expression=np.zeros_like(sc.expression),
        jaw_pose=np.zeros(3),
        eye_pose=np.zeros(6),
    )


def test_nose_tip_visible_frontal_far_ear_hidden_at_yaw_90(world):
    r = world["render"](_posed(world["fd"], 0.0), world["model"], 160)
    V = r.vertices
    nose = np.argmin(np.linalg.norm(V - r.landmarks68[30], axis=1))  # iBUG 30 = nose tip
    assert r.visibility[nose]
    # Positive yaw turns the face towards model +x, so the camera sees the subject's right
    # side (x < 0); the left ear (x > 0) is on the far side.
    regions = flame_regions.vertex_regions(world["fd"])
    left_ear = next((np.asarray(v) for k, v in regions.items() if "ear" in k and "left" in k), None)
    if left_ear is None:
        import pickle

        with open(world["fd"] / "FLAME_masks.pkl", "rb") as f:
            left_ear = np.asarray(pickle.load(f, encoding="latin1")["left_ear"])
    r90 = world["render"](_posed(world["fd"], 90.0), world["model"], 160)
    assert not r90.visibility[left_ear].any()
    right_ear = np.asarray(
        next((v for k, v in regions.items() if "ear" in k and "right" in k), V[:, 0] < -0.06)
    )
    assert r90.visibility[right_ear].any()
