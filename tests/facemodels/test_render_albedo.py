"""Per-vertex albedo: palette ends, region roles, eyeball pupil / iris / sclera, noise."""

import numpy as np
import pytest

from facemodels.albedo import SKIN_PALETTE, AlbedoParams, region_roles, skin_color, vertex_albedo
from facemodels.render.meshes import uv_ellipsoid


def _eyeballs():
    V, _ = uv_ellipsoid(12, 16, (0.012, 0.012, 0.012))
    V = V[:, [0, 2, 1]] * np.array([1.0, -1.0, 1.0])  # poles on +-z, front pole +z
    left, right = V + [0.03, 0.03, 0.05], V + [-0.03, 0.03, 0.05]
    return np.concatenate([left, right]), len(V)


def test_skin_palette_ends_and_monotone_darkening():
    assert np.allclose(skin_color(0.0), SKIN_PALETTE[0])
    assert np.allclose(skin_color(1.0), SKIN_PALETTE[-1])
    lum = [skin_color(t).mean() for t in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in zip(lum, lum[1:], strict=False))
    assert skin_color(0.5, 1.0)[0] > skin_color(0.5, -1.0)[0]  # redder


def test_region_roles_real_flame_mask_names():
    names = [
        "face",
        "neck",
        "left_eyeball",
        "right_eyeball",
        "lips",
        "nose",
        "forehead",
        "scalp",
        "eye_region",
        "left_ear",
        "boundary",
        "brows",
    ]
    roles = region_roles({k: np.zeros(0, int) for k in names})
    assert roles["eyeballs"] == ["left_eyeball", "right_eyeball"]
    assert roles["lips"] == ["lips"] and roles["brows"] == ["brows"] and roles["hair"] == ["scalp"]
    assert "eye_region" in roles["skin"]
    assert region_roles({"eyes": np.zeros(0, int)})["eyeballs"] == ["eyes"]


def test_vertex_albedo_regions_and_eyes():
    eyes, n_eye = _eyeballs()
    skin_pts = np.random.default_rng(0).normal(0, 0.05, (50, 3))
    V = np.concatenate([skin_pts, eyes])
    regions = {
        "lips": np.arange(0, 10),
        "brows": np.arange(10, 20),
        "scalp": np.arange(20, 30),
        "left_eyeball": 50 + np.arange(n_eye),
        "right_eyeball": 50 + n_eye + np.arange(n_eye),
    }
    p = AlbedoParams(
        skin_tone=0.2,
        hair_color=(0.1, 0.2, 0.3),
        iris_color=(0.2, 0.4, 0.8),
        lip_redness=1.0,
        brow_strength=1.0,
        variation=0.0,
    )
    a = vertex_albedo(regions, V, p)
    assert a.shape == V.shape and a.dtype == np.float32
    skin = skin_color(0.2)
    assert np.allclose(a[40:50], skin, atol=1e-6)
    assert np.allclose(a[20:30], [0.1, 0.2, 0.3], atol=1e-6)
    assert (a[0:10, 0] > a[0:10, 1] + 0.2).all()  # lips red
    assert (a[10:20].mean(1) < 0.5 * skin.mean()).all()  # brows dark
    for start in (50, 50 + n_eye):
        e = V[start : start + n_eye]
        c = 0.5 * (e.min(0) + e.max(0))
        front = start + np.argmax(e[:, 2])
        back = start + np.argmin(e[:, 2])
        assert a[front].max() < 0.05  # pupil
        assert np.allclose(a[back], [0.93, 0.92, 0.90], atol=1e-6)  # sclera
        d = (e - c) / np.linalg.norm(e - c, axis=1, keepdims=True)
        ang = np.degrees(np.arccos(d[:, 2]))
        iris = start + np.nonzero((ang > 10) & (ang < 22))[0]
        assert iris.size and np.allclose(a[iris], [0.2, 0.4, 0.8], atol=1e-6)


def test_albedo_noise_is_seeded_and_bounded():
    V = np.random.default_rng(1).normal(0, 0.05, (200, 3))
    p = AlbedoParams(variation=0.05, seed=4)
    a, b = vertex_albedo({}, V, p), vertex_albedo({}, V, p)
    assert np.array_equal(a, b)
    c = vertex_albedo({}, V, AlbedoParams(variation=0.05, seed=5))
    assert not np.array_equal(a, c)
    ratio = a[:, 0] / skin_color(p.skin_tone)[0]
    assert (
        ratio.std() == pytest.approx(0.05, rel=0.35)
        and np.abs(ratio - 1).max() <= 0.05 * 3**0.5 + 1e-6
    )


def test_bad_region_index_raises():
    with pytest.raises(ValueError, match="lips"):
        vertex_albedo({"lips": np.array([5])}, np.zeros((3, 3)), AlbedoParams())
