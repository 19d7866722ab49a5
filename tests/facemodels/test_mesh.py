"""Tests for facemodels.mesh (sampling, triangulation, hierarchies) and facemodels.spirals."""

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from facemodels import cache
from facemodels.flame_files import flame_mask, read_flame_template
from facemodels.mesh.face_hierarchy import face_hierarchy
from facemodels.mesh.hierarchy import build_hierarchy
from facemodels.mesh.sampling import (
    farthest_point_order,
    symmetric_farthest_point_order,
    view_direction,
)
from facemodels.mesh.triangulation import (
    barycentric_2d,
    chart_2d,
    fold_free,
    orient_faces,
    upsample_weights,
)
from facemodels.spirals import edge_list, spiral_indices, vertex_adjacency
from facemodels.world import default_flame_dir


def grid_hemisphere(n_side: int = 33, radius: float = 0.1):
    """Unit-ish hemisphere facing +z sampled on a frontal grid, Delaunay-triangulated."""
    g = np.linspace(-0.95, 0.95, n_side)
    X, Y = np.meshgrid(g, g)
    m = X**2 + Y**2 < 0.9
    xy = np.stack([X[m], Y[m]], 1)
    z = np.sqrt(1 - (xy**2).sum(1))
    v = np.concatenate([xy, z[:, None]], 1) * radius
    return v, np.asarray(Delaunay(xy).simplices, dtype=np.int64)


def icosphere(subdiv: int = 3):
    t = (1 + 5**0.5) / 2
    v = [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t], [0, -1, -t], [0, 1, -t],
         [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]]  # fmt: skip
    f = [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
         [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
         [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]  # fmt: skip
    v = [np.array(p, float) / np.linalg.norm(p) for p in v]
    for _ in range(subdiv):
        cache, nf = {}, []
        for a, b, c in f:
            mids = []
            for i, j in ((a, b), (b, c), (c, a)):
                k = (min(i, j), max(i, j))
                if k not in cache:
                    m = v[i] + v[j]
                    v.append(m / np.linalg.norm(m))
                    cache[k] = len(v) - 1
                mids.append(cache[k])
            ab, bc, ca = mids
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = nf
    return np.array(v), np.array(f, dtype=np.int64)


@pytest.fixture(scope="module")
def hemi():
    v, f = grid_hemisphere()
    n = len(v)
    sizes = (n, n // 2, n // 4, n // 8, n // 16)
    return v, f, build_hierarchy(v, f, np.arange(n), sizes=sizes, spiral_length=9)


@pytest.fixture(scope="module")
def ico_cap():
    v, f = icosphere(3)  # 642 vertices
    region = np.flatnonzero(v[:, 2] > 0.1)  # a frontal cap, a strict subset of the mesh
    n = len(region)
    sizes = (n, n // 2, n // 4, n // 8)
    return v, f, region, build_hierarchy(v, f, region, sizes=sizes, spiral_length=12)


# ------------------------------------------------------------------ building blocks
def test_farthest_point_order_hand_case():
    pts = np.array([[0.0, 0], [1, 0], [10, 0], [0.4, 0], [5, 0]])
    # centroid x = 3.28 -> closest is x=5 (index 4): |5-3.28|=1.72 < |1-3.28|=2.28
    order = farthest_point_order(pts, 5)
    # explicit: from 4 (x=5): farthest is 0 (d=5) vs 2 (d=5): tie -> lowest index 0
    assert order[1] == 0 and order[2] == 2
    # then x=1 (d to {5,0,10} = 1) vs x=0.4 (0.4) -> 1 then 3
    assert order.tolist() == [4, 0, 2, 1, 3]


def test_barycentric_2d_hand_case():
    tri = np.array([[[0.0, 0], [2, 0], [0, 2]], [[2.0, 0], [2, 2], [0, 2]]])
    t, b = barycentric_2d(np.array([[0.5, 0.5], [1.5, 1.5], [3.0, 1.0]]), tri)
    assert t.tolist() == [0, 1, 1]
    np.testing.assert_allclose(b[0], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(b[1], [0.25, 0.5, 0.25])
    # outside: extrapolates, sums to 1: 0.5*(2,0) + 1*(2,2) - 0.5*(0,2) = (3,1)
    np.testing.assert_allclose(b[2], [0.5, 1.0, -0.5])


def test_upsample_weights_hand_case():
    coarse_uv = np.array([[0.0, 0], [2, 0], [0, 2]])
    fine_uv = np.array([[0.0, 0], [1, 0], [0.5, 0.5], [2, 0], [0, 2]])
    idx, w = upsample_weights(fine_uv, coarse_uv, np.array([[0, 1, 2]]), np.array([0, 3, 4]))
    np.testing.assert_allclose(w[1], [0.5, 0.5, 0.0])
    assert idx[1].tolist() == [0, 1, 2]
    assert idx[3].tolist() == [1, 1, 1] and w[3].tolist() == [1.0, 0.0, 0.0]


# ------------------------------------------------------------------ hierarchy
@pytest.mark.parametrize("which", ["hemi", "ico_cap"])
def test_nesting_counts_and_selection(which, request):
    data = request.getfixturevalue(which)
    h = data[-1]
    region = data[2] if which == "ico_cap" else np.arange(len(data[0]))
    assert h.sizes[0] == len(region)
    np.testing.assert_array_equal(h.vertex_ids[0], region)
    for lvl in range(h.num_levels - 1):
        fine, coarse = set(h.vertex_ids[lvl].tolist()), set(h.vertex_ids[lvl + 1].tolist())
        assert coarse <= fine and len(coarse) == h.sizes[lvl + 1]
        assert (np.diff(h.vertex_ids[lvl + 1]) > 0).all()  # sorted ids
        D = h.down_matrix(lvl, sparse=False)
        assert D.shape == (h.sizes[lvl + 1], h.sizes[lvl])
        assert torch.equal(D.sum(1), torch.ones(h.sizes[lvl + 1]))
        # D selects the right vertices
        ids = torch.as_tensor(h.vertex_ids[lvl], dtype=torch.float32)
        np.testing.assert_array_equal((D @ ids).numpy(), h.vertex_ids[lvl + 1].astype(np.float32))


@pytest.mark.parametrize("which", ["hemi", "ico_cap"])
def test_up_rows_sum_to_one_and_reproduce_affine_functions(which, request):
    h = request.getfixturevalue(which)[-1]
    g = np.random.default_rng(0)
    for lvl in range(h.num_levels - 1):
        U = h.up_matrix(lvl, sparse=False).double()
        assert U.shape == (h.sizes[lvl], h.sizes[lvl + 1])
        torch.testing.assert_close(
            U.sum(1), torch.ones(h.sizes[lvl], dtype=torch.float64), atol=1e-6, rtol=0
        )
        A, b = g.normal(size=(2, 3)), g.normal(size=3)
        f_coarse = torch.as_tensor(h.uv[lvl + 1] @ A + b)
        f_fine = torch.as_tensor(h.uv[lvl] @ A + b)
        torch.testing.assert_close(
            U @ f_coarse, f_fine, atol=1e-5 * float(np.abs(f_fine.numpy()).max()), rtol=0
        )
        # coarse vertices are copied exactly: U D^T restricted to the coarse rows is identity
        D = h.down_matrix(lvl, sparse=False).double()
        torch.testing.assert_close(D @ U, torch.eye(h.sizes[lvl + 1], dtype=torch.float64))
        # sparse and dense agree
        torch.testing.assert_close(h.up_matrix(lvl).to_dense().double(), U)


def test_coarse_triangulations_are_valid(hemi):
    v, _, h = hemi
    for lvl in range(1, h.num_levels):
        f = h.faces[lvl]
        assert f.min() >= 0 and f.max() < h.sizes[lvl]
        # every vertex used, no edge shared by more than two triangles
        assert (np.bincount(f.reshape(-1), minlength=h.sizes[lvl]) > 0).all()
        e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), 1)
        _, counts = np.unique(e, axis=0, return_counts=True)
        assert counts.max() <= 2
        # counter-clockwise in the chart: positive area
        uv = h.uv[lvl][f]
        area = np.cross(uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0])
        assert (area > 0).all()
        # Euler characteristic of a disc: V - E + F = 1
        assert h.sizes[lvl] - len(counts) + len(f) == 1


def test_holes_are_not_filled():
    # an annulus (a disc with a hole): coarse triangles must not cover the hole
    v, f = grid_hemisphere(41)
    r = np.hypot(v[:, 0], v[:, 1]) / 0.1
    region = np.flatnonzero(r > 0.35)
    n = len(region)
    h = build_hierarchy(v, f, region, sizes=(n, n // 3, n // 9), spiral_length=9)
    for lvl in (1, 2):
        cen = h.uv[lvl][h.faces[lvl]].mean(1)
        assert (np.hypot(cen[:, 0], cen[:, 1]) / 0.1 > 0.3).all()


def test_spirals_start_at_vertex_and_contain_one_ring(ico_cap):
    _, _, _, h = ico_cap
    for lvl in range(h.num_levels):
        S = h.spirals[lvl]
        assert S.shape == (h.sizes[lvl], 12)
        np.testing.assert_array_equal(S[:, 0], np.arange(h.sizes[lvl]))
        adj = vertex_adjacency(h.faces[lvl], h.sizes[lvl])
        for i in range(h.sizes[lvl]):
            ring = adj[i]
            k = len(ring)
            if k < 11:  # the whole 1-ring fits: it follows the centre, in any angular order
                assert set(S[i, 1 : 1 + k].tolist()) == set(ring.tolist())


def test_spiral_order_hand_case():
    # a fan: centre 0 with neighbours at angles 0, 90, 180, 270 deg; a 2-ring vertex 5
    uv = np.array([[0.0, 0], [1, 0], [0, 1], [-1, 0], [0, -1], [2, 1]])
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1], [1, 5, 2]])
    S = spiral_indices(faces, uv, length=6)
    assert S[0].tolist() == [0, 1, 2, 3, 4, 5]
    # vertex 3: ring 1 = {0, 2, 4} at angles 0, 45 (2 is at (1,1) from 3), 315 deg
    assert S[3].tolist()[:4] == [3, 0, 2, 4]
    # padding by repetition on a single triangle
    S = spiral_indices(np.array([[0, 1, 2]]), uv[:3], length=7)
    assert S[0].tolist() == [0, 1, 2, 0, 1, 2, 0]
    # dilation 2: first 3*2 elements [0,1,2,3,4,5], every other one
    S2 = spiral_indices(faces, uv, length=3, dilation=2)
    assert S2[0].tolist() == [0, 2, 4]


def test_edge_list_and_adjacency():
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    assert edge_list(faces).tolist() == [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]]
    adj = vertex_adjacency(faces, 5)
    assert [a.tolist() for a in adj] == [[1, 2], [0, 2, 3], [0, 1, 3], [1, 2], []]


def test_bad_sizes_raise():
    v, f = grid_hemisphere(9)
    with pytest.raises(ValueError, match="sizes"):
        build_hierarchy(v, f, np.arange(len(v)), sizes=(len(v) + 1, 10))
    with pytest.raises(ValueError, match="decrease"):
        build_hierarchy(v, f, np.arange(len(v)), sizes=(len(v), 20, 30))


# ------------------------------------------------------------------ folding charts
def test_view_direction_hand_case():
    # one triangle facing +z, one facing -y: the max-min direction bisects them,
    # d = (0, -1, 1) / sqrt(2) with margin cos 45 deg
    pts = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]])
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    n = np.cross(pts[[1, 4]] - pts[[0, 3]], pts[[2, 5]] - pts[[0, 3]])
    np.testing.assert_allclose(n, [[0, 0, 1], [0, -1, 0]])
    d, margin = view_direction(pts, faces)
    np.testing.assert_allclose(d, [0.0, -(0.5**0.5), 0.5**0.5], atol=1e-9)
    assert margin == pytest.approx(0.5**0.5, abs=1e-9)
    # the chart along d: the rotation taking d to +z is a pitch about x
    uv = chart_2d(pts, "auto", faces=faces)
    np.testing.assert_allclose(uv[:, 0], pts[:, 0], atol=1e-12)
    np.testing.assert_allclose(uv[:, 1], (pts[:, 1] + pts[:, 2]) * 0.5**0.5, atol=1e-12)


def test_orient_faces_makes_neighbours_consistent():
    v, f = grid_hemisphere(9)
    g = np.random.default_rng(1)
    flip = g.random(len(f)) < 0.5
    mixed = f.copy()
    mixed[flip] = mixed[flip][:, [0, 2, 1]]
    o = orient_faces(v, mixed)
    np.testing.assert_array_equal(np.sort(o, 1), np.sort(f, 1))  # same triangles
    t = v[o]
    assert (np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])[:, 2] > 0).all()  # all face +z


def test_folding_region_gets_a_fold_free_chart_and_covered_levels():
    # an icosphere cap centred 40 deg below the front: it reaches under the "chin"
    # (z < 0), so the frontal chart folds there and can even map two vertices to one
    # point; every level vertex must still be in a triangle
    v, f = icosphere(3)
    a = np.radians(40.0)
    d = np.array([0.0, -np.sin(a), np.cos(a)])
    region = np.flatnonzero(v @ d > 0.35)
    assert (v[region, 2] < -0.1).any()
    pos = np.full(len(v), -1)
    pos[region] = np.arange(len(region))
    f0 = pos[f[(pos[f] >= 0).all(1)]]
    x = v[region]
    assert not fold_free(chart_2d(x, "frontal"), orient_faces(x, f0))
    n = len(region)
    h = build_hierarchy(v, f, region, sizes=(n, n // 2, n // 4, n // 8), spiral_length=9)
    assert fold_free(h.uv[0], orient_faces(x, f0))
    dd, margin = view_direction(x, orient_faces(x, f0), plane_x=0.0)
    assert margin > 0 and dd[0] == 0.0
    for lvl in range(1, h.num_levels):
        fc = h.faces[lvl]
        assert (np.bincount(fc.reshape(-1), minlength=h.sizes[lvl]) > 0).all()
        uv = h.uv[lvl][fc]
        assert (np.cross(uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]) > 0).all()
        U = h.up_matrix(lvl - 1, sparse=False).double()
        torch.testing.assert_close(U.sum(1), torch.ones(h.sizes[lvl - 1], dtype=torch.float64))
    with pytest.raises(ValueError, match="faces"):
        chart_2d(x, "auto")


# ------------------------------------------------------------------ symmetry
def test_symmetric_fps_hand_case():
    # midline points 0 (0,0), 3 (0,5), 6 (0,-2); pairs (1,2) at (+-1,0), (4,5) at (+-4,1)
    pts = np.array(
        [[0.0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 5, 0], [4, 1, 0], [-4, 1, 0], [0, -2, 0]]
    )
    mirror = np.array([0, 2, 1, 3, 5, 4, 6])
    # centroid (0, 5/7): closest midline vertex 0. Squared distances from 0: 3 -> 25,
    # 4/5 -> 17, 6 -> 4, 1/2 -> 1. Pick 3 (midline). Then min-distances to {0, 3}:
    # 4/5 -> 17, 6 -> 4, 1/2 -> 1: pick the pair 4, 5 (size 4); one slot left before 5:
    # a pair does not fit, take the farthest midline vertex 6. Then the pair 1, 2.
    sym = symmetric_farthest_point_order(pts, mirror, [5, 7])
    assert sym.tolist() == [0, 3, 4, 5, 6, 1, 2]
    # target 3: after [0, 3] the farthest (4) is a pair, but one slot is left -> 6
    sym = symmetric_farthest_point_order(pts, mirror, [3, 7])
    assert sym.tolist() == [0, 3, 6, 4, 5, 1, 2]
    # no midline vertex left for an odd slot
    with pytest.raises(ValueError, match="midline"):
        symmetric_farthest_point_order(pts, mirror, [2, 3, 4])
    with pytest.raises(ValueError, match="involution"):
        symmetric_farthest_point_order(pts, np.array([1, 2, 0, 3, 4, 5, 6]), [3])


@pytest.mark.parametrize("which", ["hemi", "ico_cap"])
def test_levels_are_mirror_closed_with_involutive_flips(which, request):
    data = request.getfixturevalue(which)
    v, h = data[0], data[-1]
    assert h.symmetric
    for lvl in range(h.num_levels):
        perm = h.flips[lvl]
        np.testing.assert_array_equal(perm[perm], np.arange(h.sizes[lvl]))
        p = v[h.vertex_ids[lvl]]
        mirrored = p * np.array([-1.0, 1.0, 1.0])
        np.testing.assert_allclose(mirrored, p[perm], atol=1e-12)
        assert h.flip_mismatch[lvl] < 1e-12


def test_asymmetric_region_falls_back_to_plain_fps():
    v, f = grid_hemisphere(21)
    v = v.copy()
    v[:, 0] += 0.02 * v[:, 1] ** 2 / 0.01  # shear: no longer symmetric
    n = len(v)
    h = build_hierarchy(v, f, np.arange(n), sizes=(n, n // 2, n // 4))
    assert not h.symmetric
    assert max(h.flip_mismatch) > 1e-3


# ------------------------------------------------------------------ the procedural FLAME world
@pytest.fixture(scope="module")
def world_hierarchy():
    d = default_flame_dir()
    v, f = read_flame_template(d)
    return d, v, f, flame_mask(d, "face"), face_hierarchy(d)


def test_world_hierarchy_counts_nesting_and_symmetry(world_hierarchy):
    d, v, f, region, h = world_hierarchy
    assert v.shape == (5023, 3) and f.shape == (9976, 3)
    assert h.sizes == [1609, 805, 403, 202, 101]
    assert h.names == ["face1609", "face805", "face403", "face202", "face101"]
    np.testing.assert_array_equal(h.vertex_ids[0], region)
    for lvl in range(4):
        assert set(h.vertex_ids[lvl + 1].tolist()) <= set(h.vertex_ids[lvl].tolist())
    assert h.symmetric
    plane = v[:, 0].mean()
    for lvl in range(5):
        p = v[h.vertex_ids[lvl]]
        perm = h.flips[lvl]
        np.testing.assert_array_equal(perm[perm], np.arange(h.sizes[lvl]))
        mirrored = p.copy()
        mirrored[:, 0] = 2 * plane - mirrored[:, 0]
        assert np.abs(mirrored - p[perm]).max() < 1e-6  # metres: under a micrometre
    # level 0 keeps FLAME's own triangles inside the region
    inside = np.isin(f, region).all(1)
    assert len(h.faces[0]) == inside.sum()


def test_world_hierarchy_matrices_and_spirals(world_hierarchy):
    *_, h = world_hierarchy
    g = np.random.default_rng(0)
    for lvl in range(4):
        U = h.up_matrix(lvl, sparse=False).double()
        D = h.down_matrix(lvl, sparse=False).double()
        torch.testing.assert_close(U.sum(1), torch.ones(h.sizes[lvl], dtype=torch.float64))
        A, b = g.normal(size=(2, 3)), g.normal(size=3)
        torch.testing.assert_close(
            U @ torch.as_tensor(h.uv[lvl + 1] @ A + b), torch.as_tensor(h.uv[lvl] @ A + b)
        )
        torch.testing.assert_close(D @ U, torch.eye(h.sizes[lvl + 1], dtype=torch.float64))
        # every coarse vertex is in a triangle; edges shared by at most two triangles
        fc = h.faces[lvl + 1]
        assert (np.bincount(fc.reshape(-1), minlength=h.sizes[lvl + 1]) > 0).all()
        e = np.sort(np.concatenate([fc[:, [0, 1]], fc[:, [1, 2]], fc[:, [2, 0]]]), 1)
        assert np.unique(e, axis=0, return_counts=True)[1].max() <= 2
    for lvl in range(5):
        S = h.spirals[lvl]
        assert S.shape == (h.sizes[lvl], 9)
        np.testing.assert_array_equal(S[:, 0], np.arange(h.sizes[lvl]))
        adj = vertex_adjacency(h.faces[lvl], h.sizes[lvl])
        for i in range(0, h.sizes[lvl], 7):
            k = len(adj[i])
            if k <= 8:
                assert set(S[i, 1 : 1 + k].tolist()) == set(adj[i].tolist())


def test_world_hierarchy_is_cached_next_to_the_model(world_hierarchy):
    d, *_, h = world_hierarchy
    assert (d / "suite_mesh_hierarchy.npz").is_file()
    cache.clear_memory()
    again = face_hierarchy(d)  # from disk
    assert again is not h
    for a, b in zip(
        again.spirals + again.faces + again.up_weight,
        h.spirals + h.faces + h.up_weight,
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
