"""Tests for facemodels.landmark_sets (the registry), facemodels.ibug68 and facemodels.mirror."""

import numpy as np
import pytest

from facemodels.bfm import load_bfm_mean_and_keypoints
from facemodels.flame_files import read_flame_template, read_pickle
from facemodels.ibug68 import IBUG68_FLIP, IBUG68_GROUPS, IBUG68_PARTS
from facemodels.landmark_sets import (
    flip_mismatch,
    flip_permutation,
    landmark_count,
    landmark_embedding,
    landmark_set,
    landmark_set_names,
    landmark_vertex_indices,
    register_landmark_set,
    unregister_landmark_set,
)
from facemodels.mirror import mirror_match, mirror_permutation
from facemodels.world import default_bfm_dir, default_flame_dir


def test_counts_without_models():
    assert landmark_count("ibug68") == 68
    assert landmark_count("face1609") == 1609
    assert [landmark_count(f"face{n}") for n in (805, 403, 202, 101)] == [805, 403, 202, 101]
    assert landmark_count("kp520") == 520
    assert set(landmark_set_names()) == {
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
    mean, kp68 = load_bfm_mean_and_keypoints(default_bfm_dir())
    np.testing.assert_array_equal(mirror_permutation(mean[kp68]), IBUG68_FLIP)
    # FLAME: the 51 static landmarks are iBUG 17..67
    d = default_flame_dir()
    v, f = read_flame_template(d)
    emb = read_pickle(d / "flame_static_embedding.pkl")
    tri = f[np.asarray(emb["lmk_face_idx"], dtype=np.int64)]
    pts = (v[tri] * np.asarray(emb["lmk_b_coords"])[..., None]).sum(1)
    np.testing.assert_array_equal(mirror_permutation(pts), IBUG68_FLIP[17:] - 17)


@pytest.mark.parametrize("name", ["face1609", "face805", "face403", "face202", "face101", "kp520"])
def test_vertex_sets_and_flips_on_the_procedural_world(name):
    idx = landmark_vertex_indices(name)
    assert idx.shape == (landmark_count(name),)
    assert len(np.unique(idx)) == len(idx)
    perm = flip_permutation(name)
    assert perm.shape == idx.shape
    np.testing.assert_array_equal(perm[perm], np.arange(len(idx)))
    assert flip_mismatch(name) < 1e-6 if name != "kp520" else flip_mismatch(name) < 1.0


def test_face_sets_are_nested_and_face1609_is_the_mask():
    masks = read_pickle(default_flame_dir() / "FLAME_masks.pkl")
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


# ------------------------------------------------------------------ the registry
def test_names_per_face_model():
    assert landmark_set_names("flame") == (
        "ibug68", "face1609", "face805", "face403", "face202", "face101"
    )  # fmt: skip
    assert landmark_set_names("bfm") == ("ibug68", "kp520")
    assert landmark_set("ibug68").models == ("flame", "bfm")
    with pytest.raises(ValueError, match="not defined on face model 'flame'"):
        landmark_vertex_indices("kp520", model="flame")
    with pytest.raises(ValueError, match="no barycentric embedding on flame"):
        landmark_embedding("face1609")


@pytest.mark.parametrize("name", landmark_set_names())
def test_every_registered_set_has_its_size_on_the_procedural_models(name):
    spec = landmark_set(name)
    dirs = {"flame": default_flame_dir(), "bfm": default_bfm_dir()}
    n_verts = {"flame": len(read_flame_template(dirs["flame"])[0]),
               "bfm": len(load_bfm_mean_and_keypoints(dirs["bfm"])[0])}  # fmt: skip
    for model in spec.models:
        if model in spec.vertex_ids:
            idx = landmark_vertex_indices(name, dirs[model], model=model)
            assert idx.shape == (spec.size,) and idx.dtype == np.int64
            assert 0 <= idx.min() and idx.max() < n_verts[model]
        else:
            faces, bary = landmark_embedding(name, dirs[model], model=model)
            assert faces.shape == (spec.size,) and bary.shape == (spec.size, 3)
            np.testing.assert_allclose(bary.sum(1), 1.0, atol=1e-6)
    folder = dirs[spec.flip_model] if spec.flip_model else None
    perm = flip_permutation(name, folder)
    assert perm.shape == (spec.size,)
    np.testing.assert_array_equal(perm[perm], np.arange(spec.size))


def test_bfm_ibug68_are_the_model_keypoints():
    d = default_bfm_dir()
    np.testing.assert_array_equal(
        landmark_vertex_indices("ibug68", d, model="bfm"), load_bfm_mean_and_keypoints(d)[1]
    )


@pytest.fixture
def nose_set():
    """A throwaway set: the 5 FLAME template vertices nearest the nose tip (x = 0 line)."""

    def vertex_ids(folder):
        v, _ = read_flame_template(folder)
        tip = int(np.argmax(v[:, 2]))
        return np.argsort(((v - v[tip]) ** 2).sum(1))[:5]

    def flip(folder):
        v, _ = read_flame_template(folder)
        pts = v[vertex_ids(folder)]
        r = mirror_match(pts, float(v[:, 0].mean()))
        return r.perm, r.max_mismatch

    register_landmark_set(
        "test_nose5", 5, vertex_ids={"flame": vertex_ids}, flip=flip, flip_model="flame"
    )
    yield vertex_ids
    unregister_landmark_set("test_nose5")


def test_a_set_registered_in_a_test_is_usable_by_name(nose_set):
    from fitting.builder import flame_selection

    d = default_flame_dir()
    assert "test_nose5" in landmark_set_names("flame")
    assert "test_nose5" not in landmark_set_names("bfm")
    assert landmark_count("test_nose5") == 5
    np.testing.assert_array_equal(landmark_vertex_indices("test_nose5", d), nose_set(d))
    assert flip_permutation("test_nose5", d).shape == (5,)
    assert flip_mismatch("test_nose5", d) >= 0.0
    sel = flame_selection("test_nose5", None, d)
    np.testing.assert_array_equal(sel.vertex_idx, nose_set(d))
    with pytest.raises(ValueError, match="already registered"):
        register_landmark_set("test_nose5", 5, vertex_ids={"flame": nose_set}, flip=None)


def test_register_rejects_bad_specs():
    with pytest.raises(ValueError, match="size must be >= 1"):
        register_landmark_set("bad", 0, vertex_ids={"flame": lambda d: []}, flip=None)
    with pytest.raises(ValueError, match="give vertex_ids or embedding"):
        register_landmark_set("bad", 3, flip=None)
    assert "bad" not in landmark_set_names()


def test_wrong_size_from_a_registered_function_names_the_set(tmp_path):
    register_landmark_set("test_wrong", 4, vertex_ids={"flame": lambda d: np.arange(3)}, flip=None)
    try:
        with pytest.raises(ValueError, match=r"'test_wrong' gave 3 vertex ids, expected 4"):
            landmark_vertex_indices("test_wrong", tmp_path)
        with pytest.raises(ValueError, match="no flip permutation"):
            flip_permutation("test_wrong", tmp_path)
    finally:
        unregister_landmark_set("test_wrong")
