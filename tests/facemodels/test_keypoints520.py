"""Tests for facemodels.keypoints520 on a synthetic symmetric face-like mesh."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

from facemodels.keypoints520 import (
    DEFAULT_SEED_LANDMARKS,
    dense_keypoint_flip,
    front_visible,
    select_dense_keypoints,
)


def ellipsoid_face(n_side: int = 91):
    """A frontal grid on an ellipsoid cap (x, y in [-1, 1]), symmetric in x; units ~ dm."""
    g = np.linspace(-1.0, 1.0, n_side)
    X, Y = np.meshgrid(g, g)
    m = (X / 0.8) ** 2 + (Y / 1.0) ** 2 < 1.0
    xy = np.stack([X[m], Y[m]], 1)
    z = 0.6 * np.sqrt(np.clip(1 - (xy[:, 0] / 0.8) ** 2 - xy[:, 1] ** 2, 0, None))
    v = np.concatenate([xy, z[:, None]], 1)
    return v, Delaunay(xy).simplices


def seeds_on(v):
    """17 'jaw' points on a lower arc, a 'nose tip', 10 'brow' points: symmetric."""

    def nearest(p):
        return int(np.argmin(((v[:, :2] - p) ** 2).sum(1)))

    jaw = [nearest([0.69 * np.cos(a), 0.85 * np.sin(a)]) for a in np.linspace(np.pi, 2 * np.pi, 17)]
    nose = [nearest([0.0, 0.0])]
    xs = [-0.55, -0.45, -0.35, -0.25, -0.12, 0.12, 0.25, 0.35, 0.45, 0.55]
    brows = [nearest([x, 0.45 + 0.1 * np.cos(x * 3)]) for x in xs]
    return np.array(jaw + nose + brows)


@pytest.fixture(scope="module")
def face():
    v, f = ellipsoid_face()
    return v, f, seeds_on(v)


def test_default_seed_landmarks_are_jaw_nose_brows():
    assert DEFAULT_SEED_LANDMARKS[:17] == tuple(range(17))
    assert DEFAULT_SEED_LANDMARKS[17] == 30
    assert len(DEFAULT_SEED_LANDMARKS) == 28


def test_front_visible_hides_a_back_layer():
    v, _ = ellipsoid_face(41)
    back = v.copy()
    back[:, 2] = -0.5  # a layer behind the face
    both = np.concatenate([v, back])
    vis = front_visible(both)
    assert vis[: len(v)].all()
    assert not vis[len(v) :].any()


def test_selection_exact_count_unique_seeds_first_deterministic(face):
    v, _, seeds = face
    idx = select_dense_keypoints(v, seeds, n=520, rounds=3)
    assert idx.shape == (520,) and idx.dtype == np.int64
    assert len(np.unique(idx)) == 520
    np.testing.assert_array_equal(idx[: len(seeds)], seeds)
    np.testing.assert_array_equal(select_dense_keypoints(v, seeds, n=520, rounds=3), idx)
    # every keypoint inside the seeds' 2D hull (up to the snapping distance)
    hull = Delaunay(v[seeds, :2])
    spacing = 2.0 / 90
    inside = hull.find_simplex(v[idx, :2]) >= 0
    near = hull.plane_distance(v[idx, :2]).max(1) < spacing
    assert (inside | near).all()


def test_selection_contains_the_snapped_first_round_centroids(face):
    v, _, seeds = face
    idx = set(select_dense_keypoints(v, seeds, n=520, rounds=3).tolist())
    tri = Delaunay(v[seeds, :2]).simplices
    cen = v[seeds, :2][tri].mean(1)
    snapped = [int(np.argmin(((v[:, :2] - c) ** 2).sum(1))) for c in cen]
    assert set(snapped) <= idx


def test_trim_and_extend_paths_and_flip(face):
    v, _, seeds = face
    for n, rounds in [(60, 3), (520, 1), (520, 4), (301, 3)]:  # trim, extend, trim, odd n
        idx = select_dense_keypoints(v, seeds, n=n, rounds=rounds)
        assert len(idx) == n and len(set(idx.tolist())) == n
        perm, mismatch = dense_keypoint_flip(v, idx)
        np.testing.assert_array_equal(perm[perm], np.arange(n))
        assert mismatch < 1e-9
        np.testing.assert_allclose(v[idx][perm] * [-1, 1, 1], v[idx], atol=1e-9)


def test_spread_is_roughly_uniform(face):
    v, _, seeds = face
    idx = select_dense_keypoints(v, seeds, n=520)
    from scipy.spatial import cKDTree

    d, _ = cKDTree(v[idx, :2]).query(v[idx, :2], k=2)
    nn = d[:, 1]
    assert nn.min() > 0  # no duplicates
    assert nn.max() < 6 * np.median(nn)


def test_asymmetric_seeds_raise_unless_symmetric_false(face):
    v, _, seeds = face
    bad = seeds.copy()
    bad[0] = int(np.argmin(((v[:, :2] - [-0.75, -0.05]) ** 2).sum(1)))
    with pytest.raises(ValueError, match="mirror partner"):
        select_dense_keypoints(v, bad, n=200)
    idx = select_dense_keypoints(v, bad, n=200, symmetric=False)
    assert len(set(idx.tolist())) == 200


def test_bad_input_raises(face):
    v, _, seeds = face
    with pytest.raises(ValueError, match="n must be"):
        select_dense_keypoints(v, seeds, n=5)
    with pytest.raises(ValueError, match="distinct"):
        select_dense_keypoints(v, np.array([1, 1, 2]), n=10)


# ------------------------------------------------------------------ the procedural BFM world
def test_kp520_on_the_procedural_bfm():
    from facemodels.bfm import load_bfm_mean_and_keypoints
    from facemodels.keypoints520 import kp520_flip, kp520_indices
    from facemodels.world import default_bfm_dir

    d = default_bfm_dir()
    mean, kp68 = load_bfm_mean_and_keypoints(d)
    idx = kp520_indices(d)
    assert idx.shape == (520,) and len(set(idx.tolist())) == 520
    assert idx.min() >= 0 and idx.max() < len(mean)
    np.testing.assert_array_equal(
        idx[: len(DEFAULT_SEED_LANDMARKS)], kp68[list(DEFAULT_SEED_LANDMARKS)]
    )
    perm, mismatch = kp520_flip(d)
    np.testing.assert_array_equal(perm[perm], np.arange(520))
    assert mismatch < 1.0  # micrometres
    p = mean[idx]
    np.testing.assert_allclose(p[perm] * [-1, 1, 1], p, atol=1.0)
    assert (d / "suite_kp520.npz").is_file()
    # every keypoint is visible from the front
    assert front_visible(mean)[idx].all()
