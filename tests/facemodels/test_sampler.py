"""Scene sampler: determinism, parameter ranges, camera placement, rendered labels."""

import math

import numpy as np
import pytest
import torch

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
        uv, depth = project_perspective(*(torch.from_numpy(np.asarray(a))[None] for a in (centre[None], R, t, K)))
        assert np.allclose(uv[0, 0].numpy(), size / 2 + sc.shift * size, atol=1e-9)
        # the bounding sphere (radius rho) has angular diameter ~ fill * size / f
        rho = np.linalg.norm(V - centre, axis=1).max()
        assert 2 * rho * K[0, 0] / float(depth[0, 0]) == pytest.approx(sc.fill * size, rel=1e-9)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(1.0)
