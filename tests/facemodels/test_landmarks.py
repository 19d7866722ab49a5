"""Tests for facemodels.landmarks: registry, iBUG-68 conventions, mirror matching."""

import numpy as np
import pytest

from facemodels.landmarks import (
    IBUG68_FLIP,
    IBUG68_GROUPS,
    IBUG68_PARTS,
    LANDMARK_COUNTS,
    flip_permutation,
    landmark_count,
    mirror_match,
    mirror_permutation,
)


def test_counts_without_models():
    assert landmark_count("ibug68") == 68
    assert landmark_count("face1609") == 1609
    assert [landmark_count(f"face{n}") for n in (805, 403, 202, 101)] == [805, 403, 202, 101]
    assert landmark_count("kp520") == 520
    assert set(LANDMARK_COUNTS) == {
        "ibug68",
        "face1609",
        "face805",
        "face403",
        "face202",
        "face101",
        "kp520",
    }
    with pytest.raises(KeyError, match="unknown landmark set 'ibug69'"):
        landmark_count("ibug69")


def test_ibug68_groups_partition_the_68_points():
    idx = np.concatenate([np.arange(68)[s] for s in IBUG68_GROUPS.values()])
    np.testing.assert_array_equal(idx, np.arange(68))
    idx = np.concatenate([np.arange(68)[s] for s in IBUG68_PARTS.values()])
    np.testing.assert_array_equal(idx, np.arange(68))
    assert IBUG68_GROUPS["jaw"] == slice(0, 17) and IBUG68_GROUPS["mouth"] == slice(48, 68)


def test_ibug68_flip_is_the_standard_involution():
    p = IBUG68_FLIP
    np.testing.assert_array_equal(p[p], np.arange(68))
    # hand-checked pairs
    for a, b in [(0, 16), (8, 8), (17, 26), (21, 22), (27, 27), (30, 30), (31, 35), (33, 33),
                 (36, 45), (39, 42), (40, 47), (41, 46), (48, 54), (51, 51), (57, 57), (55, 59),
                 (60, 64), (62, 62), (65, 67), (66, 66)]:  # fmt: skip
        assert p[a] == b and p[b] == a
    # pairs stay inside their part and left/right parts swap
    assert set(p[IBUG68_PARTS["right_eye"]]) == set(range(42, 48))
    assert set(p[IBUG68_PARTS["right_brow"]]) == set(range(22, 27))
    for name in ("jaw", "nose_bridge", "nostrils", "outer_lips", "inner_lips"):
        s = IBUG68_PARTS[name]
        assert set(p[s]) == set(range(68)[s])
    # exactly 10 self-symmetric points: chin, 4 bridge, 33, 51, 57, 62, 66
    assert (p == np.arange(68)).sum() == 10
    np.testing.assert_array_equal(flip_permutation("ibug68"), p)


def test_ibug68_flip_matches_mirror_of_a_symmetric_template():
    # a synthetic symmetric 68-point layout built from the flip itself: left points get x>0
    g = np.random.default_rng(0)
    pts = np.zeros((68, 3))
    done = set()
    for i in range(68):
        if i in done:
            continue
        j = IBUG68_FLIP[i]
        y, z = g.normal(size=2)
        x = 0.0 if i == j else abs(g.normal()) + 0.1
        pts[i] = [x, y, z]
        pts[j] = [-x, y, z]
        done |= {i, j}
    np.testing.assert_array_equal(mirror_permutation(pts), IBUG68_FLIP)


def test_mirror_match_hand_case_and_mismatch():
    pts = np.array([[1.0, 0, 0], [-1.1, 0, 0], [0.0, 1, 0], [2.0, 3, 0], [-2.0, 3, 0]])
    r = mirror_match(pts)
    assert r.perm.tolist() == [1, 0, 2, 4, 3]
    assert r.involution
    assert r.max_mismatch == pytest.approx(0.1)
    np.testing.assert_allclose(r.distance, [0.1, 0.1, 0.0, 0.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="exceeds tol"):
        mirror_permutation(pts, tol=0.05)
    # a plane other than x = 0
    shifted = pts + np.array([0.5, 0, 0])
    assert mirror_permutation(shifted, plane_x=0.5).tolist() == [1, 0, 2, 4, 3]


def test_mirror_permutation_rejects_asymmetric_sets():
    pts = np.array([[1.0, 0, 0], [-1.0, 0, 0], [-1.05, 0.01, 0]])  # 0 is the mirror of two
    with pytest.raises(ValueError, match="not an involution"):
        mirror_permutation(pts)


def test_mirror_permutation_on_symmetric_random_subset():
    g = np.random.default_rng(1)
    half = g.normal(size=(300, 3))
    half[:, 0] = np.abs(half[:, 0]) + 0.01
    mid = g.normal(size=(20, 3))
    mid[:, 0] = 0
    pts = np.concatenate([half, half * [-1, 1, 1], mid])
    order = g.permutation(len(pts))
    pts = pts[order]
    perm = mirror_permutation(pts)
    np.testing.assert_array_equal(perm[perm], np.arange(len(pts)))
    np.testing.assert_allclose(pts[perm], pts * [-1, 1, 1], atol=1e-12)
    assert (perm == np.arange(len(pts))).sum() == 20


# ------------------------------------------------------------------ the procedural world
def test_ibug68_flip_matches_the_procedural_models():
    import pickle

    from facemodels.keypoints520 import read_bfm_mean_and_keypoints
    from facemodels.mesh_hierarchy import read_flame_template
    from facemodels.world import default_bfm_dir, default_flame_dir

    mean, kp68 = read_bfm_mean_and_keypoints(default_bfm_dir())
    np.testing.assert_array_equal(mirror_permutation(mean[kp68]), IBUG68_FLIP)
    # FLAME: the 51 static landmarks are iBUG 17..67
    d = default_flame_dir()
    v, f = read_flame_template(d)
    with open(d / "flame_static_embedding.pkl", "rb") as fh:
        emb = pickle.load(fh, encoding="latin1")
    tri = f[np.asarray(emb["lmk_face_idx"], dtype=np.int64)]
    pts = (v[tri] * np.asarray(emb["lmk_b_coords"])[..., None]).sum(1)
    np.testing.assert_array_equal(mirror_permutation(pts), IBUG68_FLIP[17:] - 17)


@pytest.mark.parametrize("name", ["face1609", "face805", "face403", "face202", "face101", "kp520"])
def test_vertex_sets_and_flips_on_the_procedural_world(name):
    from facemodels.landmarks import flip_mismatch, landmark_vertex_indices

    idx = landmark_vertex_indices(name)
    assert idx.shape == (landmark_count(name),)
    assert len(np.unique(idx)) == len(idx)
    perm = flip_permutation(name)
    assert perm.shape == idx.shape
    np.testing.assert_array_equal(perm[perm], np.arange(len(idx)))
    assert flip_mismatch(name) < 1e-6 if name != "kp520" else flip_mismatch(name) < 1.0


def test_face_sets_are_nested_and_face1609_is_the_mask():
    import pickle

    from facemodels.landmarks import landmark_vertex_indices
    from facemodels.world import default_flame_dir

    with open(default_flame_dir() / "FLAME_masks.pkl", "rb") as fh:
        masks = pickle.load(fh, encoding="latin1")
    np.testing.assert_array_equal(landmark_vertex_indices("face1609"), masks["face"])
    sets = [set(landmark_vertex_indices(f"face{n}").tolist()) for n in (1609, 805, 403, 202, 101)]
    assert all(b <= a for a, b in zip(sets[:-1], sets[1:], strict=True))
    with pytest.raises(ValueError, match="barycentric"):
        landmark_vertex_indices("ibug68")


def test_flame_dir_keyword_alias():
    from facemodels.world import default_flame_dir

    d = default_flame_dir()
    np.testing.assert_array_equal(
        flip_permutation("face101", flame_dir=d), flip_permutation("face101", d)
    )
    with pytest.raises(TypeError, match="not both"):
        flip_permutation("face101", d, flame_dir=d)
