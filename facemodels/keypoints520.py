"""The 520 dense 3D keypoints of the dense-landmark paper (METHODS.md section B, seed 002).

The paper: start from key points of the 68 set on the jaw (and, per its Figure 1, the
forehead) and the nose tip, Delaunay-triangulate them in the frontal view, add the
triangle centroids, three times, snap the points to the template mesh, then finish by
hand in Blender. Here everything is automatic and deterministic
(:func:`select_dense_keypoints`):

1. chart: frontal projection (x, y) of the mean mesh (model space y up, z towards the
   viewer); only front-visible vertices are candidates (a coarse z-buffer on a grid of
   2 x the median 2D vertex spacing; a vertex is visible if it lies within 3 cells of the
   front-most depth of its cell).
2. ``rounds`` times: Delaunay of the current 2D points, append every triangle centroid.
3. snap each non-seed point to the nearest visible vertex in 2D; drop repeats (the first
   occurrence wins; seeds come first and are kept as given).
4. symmetrise (``symmetric=True``): add the mirror partner of every selected vertex
   (nearest mirror image across ``x = plane_x``, only mutual pairs count; unpaired
   non-seed vertices are dropped), so the set has an exact flip permutation.
5. exact count ``n``: if there are more than n points, keep the seeds and then the
   others in (mirror-pair) farthest-point order in the 2D chart, cutting at n; if fewer,
   extend by (mirror-pair) farthest-point sampling over the visible vertices inside the
   seeds' 2D convex hull. An odd remaining slot goes to a midline vertex.

Output order: seeds first, then points in selection order (not sorted).

Default seeds (``DEFAULT_SEED_LANDMARKS``): iBUG-68 jaw 0-16, nose tip 30, and the ten
brow points 17-26 standing in for the forehead points of the paper's figure (jaw and nose
tip alone span only the face below the eyes). Pass ``seed_landmarks=tuple(range(17)) +
(30,)`` for the text's literal "jaw + nose tip" start.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from facemodels.bfm import load_bfm_mean_and_keypoints
from facemodels.cache import cached_npz
from facemodels.mesh.sampling import farthest_point_order, symmetric_farthest_point_order
from facemodels.mirror import mirror_match
from facemodels.world import default_bfm_dir

__all__ = [
    "DEFAULT_SEED_LANDMARKS",
    "front_visible",
    "mirror_pairs",
    "select_dense_keypoints",
    "dense_keypoint_flip",
    "kp520_indices",
    "kp520_flip",
]

DEFAULT_SEED_LANDMARKS: tuple[int, ...] = tuple(range(17)) + (30,) + tuple(range(17, 27))
_CACHE_VERSION = 2


def front_visible(
    vertices: np.ndarray, cell_factor: float = 2.0, depth_cells: float = 3.0
) -> np.ndarray:
    """Vertices visible from the front (+z) in a coarse z-buffer.

    Args:
        vertices: (N, 3), z towards the viewer.
        cell_factor: grid cell = cell_factor * median 2D nearest-neighbour spacing
            (coincident 2D positions ignored).
        depth_cells: a vertex is visible if z >= (max z of its cell) - depth_cells * cell.
    Returns:
        (N,) bool.
    """
    v = np.asarray(vertices, dtype=np.float64)
    uv = v[:, :2]
    dist, _ = cKDTree(uv).query(uv, k=min(8, len(uv)))
    dist = np.where(dist > 0, dist, np.inf).min(1)  # nearest distinct 2D position
    spacing = float(np.median(dist[np.isfinite(dist)])) if np.isfinite(dist).any() else 1.0
    cell = max(cell_factor * spacing, 1e-12)
    ij = np.floor((uv - uv.min(0)) / cell).astype(np.int64)
    key = ij[:, 0] * (ij[:, 1].max() + 1) + ij[:, 1]
    zmax = np.full(key.max() + 1, -np.inf)
    np.maximum.at(zmax, key, v[:, 2])
    return v[:, 2] >= zmax[key] - depth_cells * cell


def mirror_pairs(vertices: np.ndarray, candidates: np.ndarray, plane_x: float) -> np.ndarray:
    """Mutual nearest-mirror pairing among candidate vertices.

    Args:
        vertices: (N, 3).
        candidates: (C,) vertex ids allowed in pairs.
        plane_x: symmetry plane x.
    Returns:
        (N,) int64: partner vertex id (itself on the midline), -1 if unpaired or not a
        candidate.
    """
    r = mirror_match(vertices[candidates], plane_x)
    mutual = r.perm[r.perm] == np.arange(len(candidates))
    out = np.full(len(vertices), -1, dtype=np.int64)
    out[candidates[mutual]] = candidates[r.perm[mutual]]
    return out


def _unique_in_order(ids: Sequence[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for i in ids:
        if i not in seen:
            seen.add(i)
            out.append(int(i))
    return out


def select_dense_keypoints(
    vertices: np.ndarray,
    seeds: np.ndarray,
    n: int = 520,
    rounds: int = 3,
    symmetric: bool = True,
    plane_x: float | None = None,
) -> np.ndarray:
    """Delaunay-centroid dense keypoint selection on a face mesh (see module doc).

    Args:
        vertices: (N, 3) mean-shape vertices (any unit; y up, z towards the viewer).
        seeds: (S,) seed vertex ids (e.g. jaw + nose tip + brows of the 68 keypoints).
        n: number of keypoints.
        rounds: Delaunay + centroid rounds.
        symmetric: make the set closed under the left-right mirror (exact flips).
        plane_x: symmetry plane; default the mean x of all vertices.
    Returns:
        (n,) int64 vertex ids, seeds first.
    """
    v = np.asarray(vertices, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"select_dense_keypoints: vertices must be (N, 3), got {v.shape}")
    if len(seeds) < 3 or len(np.unique(seeds)) != len(seeds):
        raise ValueError("select_dense_keypoints: need >= 3 distinct seeds")
    if not len(seeds) <= n <= len(v):
        raise ValueError(f"select_dense_keypoints: n must be in [{len(seeds)}, {len(v)}], got {n}")
    uv = v[:, :2]
    vis = front_visible(v)
    vis_ids = np.flatnonzero(vis)

    pts = uv[seeds]
    for _ in range(rounds):
        tri = Delaunay(pts).simplices
        pts = np.concatenate([pts, pts[tri].mean(1)], 0)
    _, nearest = cKDTree(uv[vis_ids]).query(pts[len(seeds) :])
    chosen = _unique_in_order(list(seeds) + vis_ids[nearest].tolist())

    hull = Delaunay(uv[seeds])
    inside = vis_ids[hull.find_simplex(uv[vis_ids]) >= 0]

    if symmetric:
        if plane_x is None:
            plane_x = float(v[:, 0].mean())
        cand = np.union1d(vis_ids, seeds)
        partner = mirror_pairs(v, cand, plane_x)
        seed_set = set(seeds.tolist())
        missing = [int(s) for s in seeds if partner[s] < 0 or int(partner[s]) not in seed_set]
        if missing:
            raise ValueError(
                f"select_dense_keypoints: seeds {missing} have no mirror partner among the seeds "
                f"(plane x = {plane_x:.4g}); pass symmetric=False or symmetric seeds"
            )
        chosen = [c for c in chosen if partner[c] >= 0 or c in seed_set]
        chosen = _unique_in_order(chosen + [int(partner[c]) for c in chosen])
        if len(chosen) >= n:
            pool = np.asarray(chosen)
            init = list(range(len(seeds)))
        else:
            rest = np.setdiff1d(inside[partner[inside] >= 0], chosen)
            pool = np.concatenate([np.asarray(chosen), rest])
            init = list(range(len(chosen)))
        pos = {int(c): i for i, c in enumerate(pool)}
        mirror_local = np.array([pos[int(partner[c])] for c in pool], dtype=np.int64)
        order = symmetric_farthest_point_order(uv[pool], mirror_local, [n], initial=init)
    else:
        if len(chosen) >= n:
            pool, init = np.asarray(chosen), list(range(len(seeds)))
        else:
            pool = np.concatenate([np.asarray(chosen), np.setdiff1d(inside, chosen)])
            init = list(range(len(chosen)))
        order = farthest_point_order(uv[pool], n, initial=init)
    return pool[order].astype(np.int64)


def dense_keypoint_flip(
    vertices: np.ndarray, indices: np.ndarray, plane_x: float | None = None
) -> tuple[np.ndarray, float]:
    """Flip permutation of a keypoint subset by nearest-mirror matching.

    Args:
        vertices: (N, 3) mean shape.
        indices: (L,) keypoint vertex ids.
        plane_x: symmetry plane; default mean x of all vertices.
    Returns:
        perm (L,) int64 involution, and the max mismatch (unit of vertices).
    Raises:
        ValueError: if the matching is not an involution.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if plane_x is None:
        plane_x = float(v[:, 0].mean())
    r = mirror_match(v[indices], plane_x)
    if not r.involution:
        raise ValueError(
            f"dense_keypoint_flip: keypoints are not left-right symmetric (max mismatch {r.max_mismatch:.3g})"
        )
    return r.perm, r.max_mismatch


# ----------------------------------------------------------------------------------------
# BFM folder + cache (facemodels.cache)
# ----------------------------------------------------------------------------------------
CACHE_FILE = "suite_kp520.npz"


def _kp520(
    bfm_dir: str | os.PathLike | None, n: int, rounds: int, seed_landmarks: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, float]:
    bfm_dir = Path(bfm_dir) if bfm_dir is not None else default_bfm_dir()
    mean, kp68 = load_bfm_mean_and_keypoints(bfm_dir)
    seeds = kp68[list(seed_landmarks)]

    def build() -> dict[str, np.ndarray]:
        idx = select_dense_keypoints(mean, seeds, n=n, rounds=rounds)
        flip, mismatch = dense_keypoint_flip(mean, idx)
        return {"indices": idx, "flip": flip, "flip_mismatch": np.array(mismatch)}

    z = cached_npz(bfm_dir, CACHE_FILE, (mean, seeds), f"{n}|{rounds}", _CACHE_VERSION, build)
    return z["indices"], z["flip"], float(z["flip_mismatch"])


def kp520_indices(
    bfm_dir: str | os.PathLike | None = None,
    n: int = 520,
    rounds: int = 3,
    seed_landmarks: Sequence[int] = DEFAULT_SEED_LANDMARKS,
) -> np.ndarray:
    """The kp520 vertex ids on a BFM-format folder (cached in ``<bfm_dir>/suite_kp520.npz``).

    Args:
        bfm_dir: 3DDFA-layout BFM folder; default ``facemodels.world.default_bfm_dir()``.
        n, rounds: see :func:`select_dense_keypoints`.
        seed_landmarks: iBUG-68 indices whose BFM keypoint vertices seed the selection.
    Returns:
        (n,) int64 vertex ids of the BFM mean shape.
    """
    return _kp520(bfm_dir, n, rounds, seed_landmarks)[0].copy()


def kp520_flip(
    bfm_dir: str | os.PathLike | None = None,
    n: int = 520,
    rounds: int = 3,
    seed_landmarks: Sequence[int] = DEFAULT_SEED_LANDMARKS,
) -> tuple[np.ndarray, float]:
    """Flip permutation (n,) of kp520 and its max mirror mismatch (BFM file unit, um)."""
    _, flip, mismatch = _kp520(bfm_dir, n, rounds, seed_landmarks)
    return flip.copy(), mismatch
