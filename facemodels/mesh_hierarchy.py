"""Nested face-region mesh hierarchy for spiral decoders (SpiralNet++-style up-sampling).

On a vertex region of a template mesh (FLAME: the 1609 ``FLAME_masks.pkl['face']``
vertices) this builds nested levels of 805, 403, 202 and 101 vertices:

* selection: farthest-point sampling (3D Euclidean, on the mean shape) started at the
  (midline) region vertex closest to the region centroid; ties go to the lowest index.
  For a left-right symmetric region every pick also takes its mirror partner (odd slots
  go to midline vertices), so each level is mirror-closed and has an exact flip
  permutation. The FPS order is computed once and level ``l`` is its first ``n_l``
  points: nested by construction and deterministic. Each level's vertex ids are stored
  sorted ascending (indices into the full mesh).
* chart (default ``"auto"``): the frontal projection (x, y) (model space y up, z out of
  the face) when it is fold-free on the region, i.e. every region triangle faces +z;
  otherwise (e.g. a region reaching under the chin, where the surface turns back and
  two vertices can share (x, y)) the orthographic projection along the view direction
  from which every region triangle is seen front-facing with the largest margin (a linear
  then a quadratic programme in 3 unknowns; see :func:`view_direction`; for the
  procedural world's face region: seen from 9 degrees below straight ahead, margin 0.08). A chart
  that folds would drop
  coincident points from the Delaunay triangulation (vertices without any triangle) and
  make the barycentric up-sampling and spiral order ambiguous.
* triangulation: level 0 keeps the template's own triangles (those with all three
  vertices in the region). Coarser levels are a Delaunay triangulation of the 2D chart
  from which we drop (1) triangles whose 2D centroid is not covered by the level-0 surface (holes such
  as the eyes, and the concave parts of the convex hull), (2) triangles with a 3D edge
  longer than ``long_edge`` times the median edge, (3) then, repeatedly, boundary
  slivers (min 3D angle below ``sliver_deg``); a triangle is never dropped if that
  would leave one of its vertices without any triangle (so every level vertex is in a
  triangle; checked, a violation raises).
* down-sampling ``D_l`` (n_{l+1}, n_l): pure selection (one 1 per row).
* up-sampling ``U_l`` (n_l, n_{l+1}): each fine vertex gets the barycentric coordinates
  (in the 2D chart) of the coarse triangle containing it; fine vertices outside every
  coarse triangle use the triangle maximising the smallest barycentric coordinate (the
  nearest one), with the unclamped (extrapolating) coordinates. Rows sum to 1 and any
  affine function of the chart coordinates is reproduced exactly; fine vertices that are
  also coarse vertices get a one-hot row.
* spirals per level from :mod:`facemodels.spirals` (angular order in the same chart).
* flips per level: the horizontal-flip permutation (see :mod:`facemodels.landmarks`).

``face_hierarchy(flame_dir)`` builds this for a FLAME-format folder and caches it in
``<flame_dir>/suite_mesh_hierarchy.npz`` (falling back to ``~/.cache/facesuite`` when the
folder is read-only), keyed by a hash of the template, region and parameters.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import Delaunay

from facemodels.spirals import spiral_indices

__all__ = [
    "FACE_LEVEL_SIZES",
    "MeshHierarchy",
    "farthest_point_order",
    "symmetric_farthest_point_order",
    "chart_2d",
    "view_direction",
    "fold_free",
    "orient_faces",
    "barycentric_2d",
    "triangulate_level",
    "upsample_weights",
    "build_hierarchy",
    "face_hierarchy",
    "read_flame_template",
    "read_flame_face_region",
]

FACE_LEVEL_SIZES: tuple[int, ...] = (1609, 805, 403, 202, 101)
_CACHE_VERSION = 3


@dataclass
class MeshHierarchy:
    """Nested mesh levels, finest first.

    Attributes:
        vertex_ids: per level (n_l,) int64 indices into the full template mesh; sorted
            ascending, except level 0 which keeps the region's given order.
        faces: per level (T_l, 3) int64 triangles indexing level l's vertices.
        uv: per level (n_l, 2) float64 chart coordinates (model units, e.g. metres).
        down_index: per transition l -> l+1, (n_{l+1},) int64 positions in level l:
            ``D_l[i, down_index[l][i]] = 1``.
        up_index: per transition, (n_l, 3) int64 positions in level l+1.
        up_weight: per transition, (n_l, 3) float64 barycentric weights (rows sum to 1).
        spirals: per level (n_l, L) int64 spiral sequences (column 0 = the vertex).
        names: per level, e.g. "face1609".
        flips: per level (n_l,) int64 horizontal-flip permutation (positions in the level).
        flip_mismatch: per level, max distance between a mirrored vertex and its partner
            (model units; 0 for an exactly symmetric mean shape).
        symmetric: True when the region's nearest-mirror matching is an involution within
            tolerance; then every level is mirror-closed and ``flips`` are involutions.
    """

    vertex_ids: list[np.ndarray]
    faces: list[np.ndarray]
    uv: list[np.ndarray]
    down_index: list[np.ndarray]
    up_index: list[np.ndarray]
    up_weight: list[np.ndarray]
    spirals: list[np.ndarray]
    names: list[str]
    flips: list[np.ndarray]
    flip_mismatch: list[float]
    symmetric: bool

    @property
    def sizes(self) -> list[int]:
        return [len(v) for v in self.vertex_ids]

    @property
    def num_levels(self) -> int:
        return len(self.vertex_ids)

    def down_matrix(self, level: int, sparse: bool = True) -> torch.Tensor:
        """Selection matrix D_l, (n_{l+1}, n_l) float32 (sparse COO or dense)."""
        n_out, n_in = self.sizes[level + 1], self.sizes[level]
        rows = torch.arange(n_out)
        cols = torch.as_tensor(self.down_index[level], dtype=torch.long)
        return _matrix(rows, cols, torch.ones(n_out), (n_out, n_in), sparse)

    def up_matrix(self, level: int, sparse: bool = True) -> torch.Tensor:
        """Barycentric up-sampling U_l, (n_l, n_{l+1}) float32 (sparse COO or dense)."""
        n_out, n_in = self.sizes[level], self.sizes[level + 1]
        rows = torch.arange(n_out).repeat_interleave(3)
        cols = torch.as_tensor(self.up_index[level], dtype=torch.long).reshape(-1)
        vals = torch.as_tensor(self.up_weight[level], dtype=torch.float32).reshape(-1)
        return _matrix(rows, cols, vals, (n_out, n_in), sparse)

    def level_of(self, name: str) -> int:
        if name not in self.names:
            raise KeyError(f"MeshHierarchy: no level named {name!r}; levels are {self.names}")
        return self.names.index(name)


def _matrix(rows, cols, vals, shape, sparse: bool) -> torch.Tensor:
    m = torch.sparse_coo_tensor(
        torch.stack([rows, cols]), vals.float(), shape, check_invariants=True
    )
    m = m.coalesce()
    return m if sparse else m.to_dense()


# ----------------------------------------------------------------------------------------
# building blocks
# ----------------------------------------------------------------------------------------
def farthest_point_order(
    points: np.ndarray, n: int, start: int | None = None, initial: Sequence[int] = ()
) -> np.ndarray:
    """Deterministic farthest-point sampling.

    Args:
        points: (N, D) float.
        n: number of points to select (<= N).
        start: first index; default the point closest to the centroid (ignored when
            ``initial`` is given).
        initial: indices selected first, in this order (their count may exceed n: then
            the first n are returned).
    Returns:
        (n,) int64 indices into ``points`` in selection order (every prefix after the
        initial ones is an FPS extension).
    """
    points = np.asarray(points, dtype=np.float64)
    N = len(points)
    if not 1 <= n <= N:
        raise ValueError(f"farthest_point_order: n must be in [1, {N}], got {n}")
    init = [int(i) for i in initial]
    if not init:
        init = [
            int(np.argmin(((points - points.mean(0)) ** 2).sum(1))) if start is None else int(start)
        ]
    if len(set(init)) != len(init):
        raise ValueError("farthest_point_order: initial indices repeat")
    order = list(init[:n])
    d = np.full(N, np.inf)
    for i in order:
        np.minimum(d, ((points - points[i]) ** 2).sum(1), out=d)
    d[order] = -1.0
    while len(order) < n:
        nxt = int(np.argmax(d))  # first maximum: lowest index on ties
        order.append(nxt)
        np.minimum(d, ((points - points[nxt]) ** 2).sum(1), out=d)
        d[nxt] = -1.0
    return np.asarray(order, dtype=np.int64)


def symmetric_farthest_point_order(
    points: np.ndarray, mirror: np.ndarray, targets: Sequence[int], initial: Sequence[int] = ()
) -> np.ndarray:
    """Farthest-point sampling that keeps left-right pairs together.

    Each pick of a vertex also picks its mirror partner, so every prefix whose length is
    in ``targets`` is closed under the mirror; when only one slot is left before a target
    the farthest unpicked self-symmetric (midline) vertex is taken instead.

    Args:
        points: (N, 3) positions.
        mirror: (N,) involution, ``mirror[i]`` = partner of i (``i`` on the midline).
        targets: sizes whose prefixes must be mirror-closed; the result has max(targets).
        initial: indices selected first, in this order (must be mirror-closed and no
            longer than the smallest target); default the midline vertex closest to the
            centroid (and its partner if there is no midline).
    Returns:
        (max(targets),) int64 indices in selection order.
    Raises:
        ValueError: if a target cannot be met (no midline vertex left for an odd slot).
    """
    p = np.asarray(points, dtype=np.float64)
    mirror = np.asarray(mirror, dtype=np.int64)
    N = len(p)
    if not (mirror[mirror] == np.arange(N)).all():
        raise ValueError("symmetric_farthest_point_order: mirror must be an involution")
    targets = sorted(int(t) for t in targets)
    if targets[0] < 1 or targets[-1] > N:
        raise ValueError(
            f"symmetric_farthest_point_order: targets must lie in [1, {N}], got {targets}"
        )
    mid = mirror == np.arange(N)
    d2c = ((p - p.mean(0)) ** 2).sum(1)
    start = int(np.argmin(np.where(mid, d2c, np.inf))) if mid.any() else int(np.argmin(d2c))
    order: list[int] = []
    d = np.full(N, np.inf)

    def add(i: int) -> None:
        order.append(i)
        np.minimum(d, ((p - p[i]) ** 2).sum(1), out=d)
        d[i] = -1.0  # picked

    init = [int(i) for i in initial]
    if init:
        if set(mirror[init].tolist()) != set(init) or len(set(init)) != len(init):
            raise ValueError(
                "symmetric_farthest_point_order: initial must be mirror-closed without repeats"
            )
        for i in init:
            add(i)
    else:
        add(start)
        if mirror[start] != start:
            add(int(mirror[start]))
    for t in targets:
        if len(order) > t:
            raise ValueError(
                f"symmetric_farthest_point_order: cannot stop at {t} (already {len(order)})"
            )
        while len(order) < t:
            cand = int(np.argmax(d))
            if mirror[cand] == cand:
                add(cand)
            elif t - len(order) >= 2:
                add(cand)
                add(int(mirror[cand]))
            else:
                dm = np.where(mid, d, -1.0)
                cand = int(np.argmax(dm))
                if dm[cand] < 0:
                    raise ValueError(
                        f"symmetric_farthest_point_order: no midline vertex left to reach {t}"
                    )
                add(cand)
    return np.asarray(order, dtype=np.int64)


def view_direction(
    points: np.ndarray, faces: np.ndarray, plane_x: float | None = None
) -> tuple[np.ndarray, float]:
    """The unit direction from which every triangle is seen front-facing, max-margin.

    Maximises ``min_t n_t . d`` over unit ``d`` for the unit normals ``n_t`` of the
    triangles (counter-clockwise seen from outside): a linear programme (``|d_i| <= 1``)
    decides feasibility, then the equivalent quadratic programme ``min |w|^2`` subject to
    ``n_t . w >= 1`` (a hard-margin SVM through the origin; ``d = w / |w|``, margin
    ``1 / |w|``) gives the rotation-invariant optimum. With ``plane_x`` given (a left-right
    symmetric surface, whose optimum has no x component) the x component is zeroed.

    Args:
        points: (N, 3) vertex positions.
        faces: (F, 3) triangles, oriented with normals pointing out of the surface.
        plane_x: symmetry plane x = plane_x of the surface, or None.
    Returns:
        (d (3,) unit float64, margin): the smallest ``n_t . d``; margin > 0 iff the
        orthographic projection along d is fold-free (no triangle seen from behind).
    """
    from scipy.optimize import linprog, minimize

    p = np.asarray(points, dtype=np.float64)
    t = p[np.asarray(faces, dtype=np.int64)]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    nrm = np.linalg.norm(n, axis=1)
    n = n[nrm > 1e-12 * max(nrm.max(initial=0.0), 1e-300)]
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    # LP over (d, s): minimise -s subject to s - n_t . d <= 0, |d_i| <= 1
    res = linprog(
        c=np.array([0.0, 0.0, 0.0, -1.0]),
        A_ub=np.concatenate([-n, np.ones((len(n), 1))], 1),
        b_ub=np.zeros(len(n)),
        bounds=[(-1.0, 1.0)] * 3 + [(None, 1.0)],
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"view_direction: linear programme failed: {res.message}")
    d, s = np.asarray(res.x[:3], dtype=np.float64), float(res.x[3])
    if s > 0:
        qp = minimize(
            lambda w: float(w @ w),
            d / s,  # feasible: n_t . d / s >= 1
            jac=lambda w: 2.0 * w,
            constraints=[{"type": "ineq", "fun": lambda w: n @ w - 1.0, "jac": lambda w: n}],
            method="SLSQP",
            options={"ftol": 1e-12, "maxiter": 200},
        )
        if qp.success and (n @ qp.x).min() > 1.0 - 1e-6:
            d = np.asarray(qp.x, dtype=np.float64)
    if plane_x is not None:
        d[0] = 0.0
    if np.linalg.norm(d) < 1e-12:
        d = np.array([0.0, 0.0, 1.0])
    d = d / np.linalg.norm(d)
    return d, float((n @ d).min(initial=np.inf))


def orient_faces(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Consistently oriented copy of a manifold triangle list, normals mostly towards +z.

    Orientation is propagated across shared edges (breadth-first, per connected
    component: neighbours must traverse a shared edge in opposite directions); each
    component is then flipped if its area-weighted normal has a negative z component.

    Args:
        points: (N, 3); faces: (F, 3) int triangles in any orientation.
    Returns:
        (F, 3) int64.
    """
    faces = np.array(faces, dtype=np.int64, copy=True)
    p = np.asarray(points, dtype=np.float64)
    edge_faces: dict[tuple[int, int], list[int]] = {}
    for t, f in enumerate(faces):
        for i, j in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            edge_faces.setdefault((min(i, j), max(i, j)), []).append(t)
    done = np.zeros(len(faces), dtype=bool)
    for seed in range(len(faces)):
        if done[seed]:
            continue
        done[seed] = True
        comp, queue = [seed], [seed]
        while queue:
            t = queue.pop()
            f = faces[t]
            for i, j in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
                for u in edge_faces[(min(i, j), max(i, j))]:
                    if done[u]:
                        continue
                    g = faces[u]
                    # u must traverse the edge j -> i
                    if any(
                        a == i and b == j for a, b in ((g[0], g[1]), (g[1], g[2]), (g[2], g[0]))
                    ):
                        faces[u] = g[[0, 2, 1]]
                    done[u] = True
                    comp.append(u)
                    queue.append(u)
        t = p[faces[comp]]
        if np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])[:, 2].sum() < 0:
            faces[comp] = faces[comp][:, [0, 2, 1]]
    return faces


def fold_free(uv: np.ndarray, faces: np.ndarray, rel_tol: float = 1e-9) -> bool:
    """True iff the chart shows the (consistently oriented) triangles without folds.

    No triangle may be flipped (signed area below ``-rel_tol`` times the largest) and no
    two vertices may coincide (closer than ``rel_tol`` times the chart's extent); zero-area
    slivers (collinear corners, e.g. on a grid's rim) are no fold.

    Args:
        uv: (N, 2) chart coordinates; faces: (F, 3) triangles, oriented as in
            :func:`orient_faces` (counter-clockwise = facing the viewer).
    """
    from scipy.spatial import cKDTree

    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    area = (b - a)[:, 0] * (c - a)[:, 1] - (c - a)[:, 0] * (b - a)[:, 1]
    if (area < -rel_tol * np.abs(area).max(initial=0.0)).any():
        return False
    extent = float(np.ptp(uv, axis=0).max()) if len(uv) else 0.0
    return not cKDTree(uv).query_pairs(rel_tol * extent)


def _projection_along(d: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking unit d to +z by the smallest angle (R @ d = e_z)."""
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(d, z)
    c = float(d @ z)
    if np.linalg.norm(v) < 1e-15:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    vx = np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return np.eye(3) + vx + vx @ vx / (1.0 + c)


def chart_2d(
    points: np.ndarray,
    mode: str = "frontal",
    faces: np.ndarray | None = None,
    plane_x: float | None = None,
) -> np.ndarray:
    """2D chart of a face-like surface (model space: y up, z out of the face).

    Args:
        points: (N, 3).
        mode: "frontal" = (x, y); "cylindrical" = (r * atan2(x - cx, z - cz), y) about a
            vertical axis behind the surface (cx = mean x, r = half the x extent,
            cz = mean z - r); keeps the sides of a head from folding; "auto" = "frontal"
            if that is fold-free on ``faces``, else the orthographic projection along
            :func:`view_direction` (first two coordinates after the smallest rotation
            taking the view direction to +z; x stays x for a pure pitch).
        faces: (F, 3) triangles over ``points`` (any orientation; see
            :func:`orient_faces`); needed for "auto".
        plane_x: symmetry plane for "auto" (see :func:`view_direction`).
    Returns:
        (N, 2) float64, same unit as ``points``.
    Raises:
        ValueError: unknown mode, "auto" without faces, or a surface that no orthographic
            projection shows without folds.
    """
    p = np.asarray(points, dtype=np.float64)
    if mode == "frontal":
        return p[:, :2].copy()
    if mode == "cylindrical":
        cx = p[:, 0].mean()
        r = 0.5 * (p[:, 0].max() - p[:, 0].min())
        cz = p[:, 2].mean() - r
        return np.stack([r * np.arctan2(p[:, 0] - cx, p[:, 2] - cz), p[:, 1]], 1)
    if mode == "auto":
        if faces is None:
            raise ValueError("chart_2d: mode 'auto' needs the surface's faces (F, 3)")
        faces = orient_faces(p, faces)
        uv = p[:, :2].copy()
        if fold_free(uv, faces):
            return uv
        d, margin = view_direction(p, faces, plane_x)
        if margin <= 0:
            raise ValueError(
                "chart_2d: no orthographic projection shows every triangle front-facing "
                f"(best margin {margin:.3g}); use mode='cylindrical' or a smaller region"
            )
        return (p @ _projection_along(d).T)[:, :2]
    raise ValueError(f"chart_2d: mode must be 'frontal', 'cylindrical' or 'auto', got {mode!r}")


def barycentric_2d(
    p: np.ndarray, tri_uv: np.ndarray, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """For each point, the triangle maximising the smallest barycentric coordinate.

    Args:
        p: (N, 2) query points.
        tri_uv: (T, 3, 2) triangle corners.
        chunk: points per vectorised block.
    Returns:
        tri: (N,) int64 best triangle; bary: (N, 3) its barycentric coordinates
        (sum 1; all >= 0 iff the point is inside). Degenerate (zero-area) triangles are
        never chosen.
    """
    a, b, c = tri_uv[:, 0], tri_uv[:, 1], tri_uv[:, 2]  # (T, 2)
    v0, v1 = b - a, c - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]  # (T,) twice the signed area
    scale = max(np.abs(den).max(initial=0.0), 1e-300)
    ok = np.abs(den) > 1e-12 * scale
    den_safe = np.where(ok, den, 1.0)
    tri = np.empty(len(p), dtype=np.int64)
    bary = np.empty((len(p), 3))
    for s in range(0, len(p), chunk):
        q = p[s : s + chunk, None, :] - a[None]  # (n, T, 2)
        l1 = (q[..., 0] * v1[:, 1] - v1[:, 0] * q[..., 1]) / den_safe
        l2 = (v0[:, 0] * q[..., 1] - q[..., 0] * v0[:, 1]) / den_safe
        l0 = 1.0 - l1 - l2
        m = np.minimum(np.minimum(l0, l1), l2)
        m[:, ~ok] = -np.inf
        best = np.argmax(m, axis=1)
        r = np.arange(len(best))
        tri[s : s + chunk] = best
        bary[s : s + chunk] = np.stack([l0[r, best], l1[r, best], l2[r, best]], 1)
    return tri, bary


def _edge_counts(faces: np.ndarray) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for f in faces:
        for i, j in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            k = (min(i, j), max(i, j))
            counts[k] = counts.get(k, 0) + 1
    return counts


def _min_angle_deg(tri_xyz: np.ndarray) -> np.ndarray:
    """(T, 3, 3) -> (T,) smallest interior angle in degrees."""
    angs = []
    for i in range(3):
        u = tri_xyz[:, (i + 1) % 3] - tri_xyz[:, i]
        v = tri_xyz[:, (i + 2) % 3] - tri_xyz[:, i]
        cos = (u * v).sum(1) / np.maximum(
            np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-300
        )
        angs.append(np.degrees(np.arccos(np.clip(cos, -1, 1))))
    return np.min(np.stack(angs, 1), 1)


def triangulate_level(
    uv: np.ndarray,
    xyz: np.ndarray,
    domain_uv: np.ndarray,
    domain_faces: np.ndarray,
    long_edge: float = 3.0,
    sliver_deg: float = 12.0,
) -> np.ndarray:
    """Delaunay triangulation of a coarse level restricted to the surface's domain.

    Args:
        uv: (n, 2) chart coordinates of the level's vertices.
        xyz: (n, 3) their 3D positions (for edge lengths and angles).
        domain_uv: (M, 2) chart coordinates of the fine surface's vertices.
        domain_faces: (F, 3) fine triangles (indices into domain_uv) defining the domain.
        long_edge: drop triangles with a 3D edge > long_edge * median 3D edge length.
        sliver_deg: peel boundary triangles whose smallest 3D angle is below this.
    Returns:
        (T, 3) int64 triangles, counter-clockwise in the chart.
    """
    faces = np.asarray(Delaunay(uv).simplices, dtype=np.int64)
    # orient counter-clockwise in uv
    a, b, c = uv[faces[:, 0]], uv[faces[:, 1]], uv[faces[:, 2]]
    cw = ((b - a)[:, 0] * (c - a)[:, 1] - (c - a)[:, 0] * (b - a)[:, 1]) < 0
    faces[cw] = faces[cw][:, [0, 2, 1]]
    n = len(uv)

    def droppable(mask_drop: np.ndarray, current: np.ndarray) -> np.ndarray:
        # keep a triangle if dropping it would leave a vertex with no triangle
        keep = ~mask_drop
        count = np.bincount(current[keep].reshape(-1), minlength=n)
        out = mask_drop.copy()
        for t in np.flatnonzero(mask_drop):
            if (count[current[t]] == 0).any():
                out[t] = False
                count[current[t]] += 1
        return out

    # (1) centroid inside the fine surface
    cen = uv[faces].mean(1)
    _, bary = barycentric_2d(cen, domain_uv[domain_faces])
    outside = bary.min(1) < -1e-9
    # (2) long 3D edges
    tri = xyz[faces]  # (T, 3, 3)
    elen = np.linalg.norm(tri - tri[:, [1, 2, 0]], axis=2)  # (T, 3)
    med = np.median(elen[~outside]) if (~outside).any() else np.median(elen)
    long = elen.max(1) > long_edge * med
    faces = faces[~droppable(outside | long, faces)]
    # (3) peel boundary slivers
    while True:
        counts = _edge_counts(faces)
        ang = _min_angle_deg(xyz[faces])
        on_boundary = np.array(
            [
                any(
                    counts[(min(i, j), max(i, j))] == 1
                    for i, j in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0]))
                )
                for f in faces
            ]
        )
        drop = droppable(on_boundary & (ang < sliver_deg), faces)
        if not drop.any():
            break
        faces = faces[~drop]
    bare = np.flatnonzero(np.bincount(faces.reshape(-1), minlength=n) == 0)
    if len(bare):
        raise RuntimeError(
            f"triangulate_level: vertices {bare[:10].tolist()} (of {len(bare)}) are in no "
            "triangle; coincident chart points? (the chart folds: use chart='auto')"
        )
    return faces


def upsample_weights(
    fine_uv: np.ndarray,
    coarse_uv: np.ndarray,
    coarse_faces: np.ndarray,
    coarse_pos_in_fine: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric interpolation of fine vertices from a coarse triangulation.

    Args:
        fine_uv: (n_f, 2).
        coarse_uv: (n_c, 2).
        coarse_faces: (T, 3) triangles over the coarse vertices.
        coarse_pos_in_fine: (n_c,) position of each coarse vertex in the fine level.
    Returns:
        index (n_f, 3) int64 coarse vertex positions and weight (n_f, 3) float64, rows
        summing to 1; coarse vertices get a one-hot row.
    """
    tri, bary = barycentric_2d(fine_uv, coarse_uv[coarse_faces])
    index = coarse_faces[tri].copy()
    weight = bary.copy()
    index[coarse_pos_in_fine] = np.arange(len(coarse_uv))[:, None]
    weight[coarse_pos_in_fine] = np.array([1.0, 0.0, 0.0])
    return index, weight


# ----------------------------------------------------------------------------------------
# the hierarchy
# ----------------------------------------------------------------------------------------
def build_hierarchy(
    vertices: np.ndarray,
    faces: np.ndarray,
    region: np.ndarray,
    sizes: Sequence[int] = FACE_LEVEL_SIZES,
    spiral_length: int = 9,
    chart: str = "auto",
    names: Sequence[str] | None = None,
    plane_x: float | None = None,
    symmetry_tol: float = 1e-3,
) -> MeshHierarchy:
    """Build nested levels on a vertex region of a template mesh.

    If the region is left-right symmetric (nearest-mirror matching across ``x = plane_x``
    is an involution with max mismatch <= ``symmetry_tol`` times the region's bounding-box
    diagonal) the levels come from :func:`symmetric_farthest_point_order` and are closed
    under the mirror; otherwise plain FPS is used and ``symmetric`` is False.

    Args:
        vertices: (V, 3) template (mean shape) vertices.
        faces: (F, 3) template triangles.
        region: (R,) vertex ids of the region (level 0, kept in the given order).
        sizes: level sizes, finest first; ``sizes[0]`` must equal R, strictly decreasing.
        spiral_length: L of the spirals on every level.
        chart: 2D chart for Delaunay, barycentric weights and spiral order (see chart_2d;
            default "auto": frontal unless that folds on the region).
        names: optional level names; default ``face{n}``.
        plane_x: symmetry plane; default the mean x of all template vertices.
        symmetry_tol: relative tolerance of the symmetry test (see above).
    Returns:
        MeshHierarchy.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    region = np.asarray(region, dtype=np.int64).reshape(-1)
    sizes = [int(s) for s in sizes]
    if sizes[0] != len(region):
        raise ValueError(
            f"build_hierarchy: sizes[0] = {sizes[0]} but the region has {len(region)} vertices"
        )
    if any(b >= a for a, b in zip(sizes[:-1], sizes[1:], strict=True)) or sizes[-1] < 3:
        raise ValueError(f"build_hierarchy: sizes must strictly decrease and end >= 3, got {sizes}")
    if len(np.unique(region)) != len(region):
        raise ValueError("build_hierarchy: region has repeated vertex ids")
    names = list(names) if names is not None else [f"face{s}" for s in sizes]

    # level 0: template triangles inside the region, reindexed
    pos = np.full(len(vertices), -1, dtype=np.int64)
    pos[region] = np.arange(len(region))
    inside = (pos[faces] >= 0).all(1)
    faces0 = pos[faces[inside]]
    xyz0 = vertices[region]

    from facemodels.landmarks import mirror_match

    if plane_x is None:
        plane_x = float(vertices[:, 0].mean())
    mm = mirror_match(xyz0, plane_x)
    diag = float(np.linalg.norm(xyz0.max(0) - xyz0.min(0)))
    symmetric = mm.involution and mm.max_mismatch <= symmetry_tol * diag
    uv0 = chart_2d(xyz0, chart, faces=faces0, plane_x=plane_x if symmetric else None)
    if symmetric:
        order = symmetric_farthest_point_order(xyz0, mm.perm, sizes[1:])
    else:
        order = farthest_point_order(xyz0, sizes[1])  # positions in level 0
    vertex_ids = [region.copy()]
    level_pos0 = [np.arange(len(region))]  # positions in level 0 of each level's vertices
    for s in sizes[1:]:
        sel = order[:s]
        sel = sel[np.argsort(region[sel])]  # vertex ids ascending
        level_pos0.append(sel)
        vertex_ids.append(region[sel])

    all_faces = [faces0]
    uvs = [uv0]
    for lp in level_pos0[1:]:
        uvs.append(uv0[lp])
        all_faces.append(triangulate_level(uv0[lp], xyz0[lp], uv0, faces0))

    down_index, up_index, up_weight = [], [], []
    for lvl in range(len(sizes) - 1):
        fine_ids, coarse_ids = vertex_ids[lvl], vertex_ids[lvl + 1]
        lookup = {int(v): i for i, v in enumerate(fine_ids)}
        d = np.array([lookup[int(v)] for v in coarse_ids], dtype=np.int64)
        down_index.append(d)
        idx, w = upsample_weights(uvs[lvl], uvs[lvl + 1], all_faces[lvl + 1], d)
        up_index.append(idx)
        up_weight.append(w)

    spirals = [spiral_indices(f, uv, spiral_length) for f, uv in zip(all_faces, uvs, strict=True)]

    flips, mismatch = [], []
    for lp in level_pos0:
        if symmetric:
            where = np.full(len(region), -1, dtype=np.int64)
            where[lp] = np.arange(len(lp))
            fl = where[mm.perm[lp]]
            mirrored = xyz0[lp].copy()
            mirrored[:, 0] = 2.0 * plane_x - mirrored[:, 0]
            mismatch.append(float(np.linalg.norm(mirrored - xyz0[lp][fl], axis=1).max()))
        else:
            r = mirror_match(xyz0[lp], plane_x)
            fl = r.perm
            mismatch.append(r.max_mismatch)
        flips.append(fl)
    return MeshHierarchy(
        vertex_ids, all_faces, uvs, down_index, up_index, up_weight, spirals, names,
        flips, mismatch, bool(symmetric),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# FLAME folder + cache
# ----------------------------------------------------------------------------------------
def _load_pickle(path: Path) -> object:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except ModuleNotFoundError as e:  # real FLAME files pickle chumpy arrays
        raise ModuleNotFoundError(
            f"{path}: unpickling needs module {e.name!r} (real FLAME files need chumpy)"
        ) from e


def read_flame_template(flame_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(v_template (5023, 3) float64 metres, f (9976, 3) int64) from ``FLAME_NEUTRAL.pkl``."""
    path = Path(flame_dir) / "FLAME_NEUTRAL.pkl"
    data = _load_pickle(path)
    if not isinstance(data, dict) or "v_template" not in data or "f" not in data:
        raise KeyError(f"{path}: expected a dict with keys 'v_template' (V, 3) and 'f' (F, 3)")
    v = np.asarray(data["v_template"], dtype=np.float64)
    f = np.asarray(data["f"], dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(
            f"{path}: 'v_template' must be (V, 3) and 'f' (F, 3), got {v.shape}, {f.shape}"
        )
    return v, f


def read_flame_face_region(flame_dir: str | os.PathLike) -> np.ndarray:
    """``FLAME_masks.pkl['face']`` as (R,) int64 vertex ids (1609 for FLAME)."""
    path = Path(flame_dir) / "FLAME_masks.pkl"
    masks = _load_pickle(path)
    if not isinstance(masks, dict) or "face" not in masks:
        keys = sorted(masks) if isinstance(masks, dict) else type(masks).__name__
        raise KeyError(f"{path}: expected key 'face' (face-region vertex ids); found {keys}")
    return np.asarray(masks["face"], dtype=np.int64).reshape(-1)


def hash_arrays(*arrays: np.ndarray, extra: str = "") -> str:
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(extra.encode())
    return h.hexdigest()


def _cache_candidates(model_dir: Path, filename: str, key: str) -> list[Path]:
    user = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facesuite" / key[:16]
    return [model_dir / filename, user / filename]


def save_npz_atomic(path: Path, **arrays: np.ndarray) -> None:
    """Write ``path`` via a temporary file + rename (safe against concurrent readers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _to_arrays(h: MeshHierarchy, key: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {
        "version": np.array(_CACHE_VERSION),
        "key": np.array(key),
        "names": np.array(h.names),
        "flip_mismatch": np.array(h.flip_mismatch, dtype=np.float64),
        "symmetric": np.array(h.symmetric),
    }
    for lvl in range(h.num_levels):
        out[f"vertex_ids_{lvl}"] = h.vertex_ids[lvl]
        out[f"faces_{lvl}"] = h.faces[lvl]
        out[f"uv_{lvl}"] = h.uv[lvl]
        out[f"spirals_{lvl}"] = h.spirals[lvl]
        out[f"flip_{lvl}"] = h.flips[lvl]
    for lvl in range(h.num_levels - 1):
        out[f"down_index_{lvl}"] = h.down_index[lvl]
        out[f"up_index_{lvl}"] = h.up_index[lvl]
        out[f"up_weight_{lvl}"] = h.up_weight[lvl]
    return out


def _from_arrays(z: dict[str, np.ndarray]) -> MeshHierarchy:
    names = [str(s) for s in z["names"]]
    n = len(names)
    return MeshHierarchy(
        vertex_ids=[z[f"vertex_ids_{i}"] for i in range(n)],
        faces=[z[f"faces_{i}"] for i in range(n)],
        uv=[z[f"uv_{i}"] for i in range(n)],
        down_index=[z[f"down_index_{i}"] for i in range(n - 1)],
        up_index=[z[f"up_index_{i}"] for i in range(n - 1)],
        up_weight=[z[f"up_weight_{i}"] for i in range(n - 1)],
        spirals=[z[f"spirals_{i}"] for i in range(n)],
        names=names,
        flips=[z[f"flip_{i}"] for i in range(n)],
        flip_mismatch=[float(x) for x in z["flip_mismatch"]],
        symmetric=bool(z["symmetric"]),
    )


_MEMO: dict[str, MeshHierarchy] = {}


def face_hierarchy(
    flame_dir: str | os.PathLike | None = None,
    spiral_length: int = 9,
    chart: str = "auto",
    sizes: Sequence[int] = FACE_LEVEL_SIZES,
) -> MeshHierarchy:
    """The face-region hierarchy of a FLAME-format folder, cached on disk and in memory.

    Args:
        flame_dir: folder with FLAME_NEUTRAL.pkl and FLAME_masks.pkl; default
            ``facemodels.world.default_flame_dir()``.
        spiral_length, chart, sizes: see :func:`build_hierarchy`.
    Returns:
        MeshHierarchy with levels named face1609, face805, face403, face202, face101.
    """
    if flame_dir is None:
        from facemodels.world import default_flame_dir

        flame_dir = default_flame_dir()
    flame_dir = Path(flame_dir)
    v, f = read_flame_template(flame_dir)
    region = read_flame_face_region(flame_dir)
    key = hash_arrays(
        v, f, region, extra=f"v{_CACHE_VERSION}|{spiral_length}|{chart}|{list(sizes)}"
    )
    if key in _MEMO:
        return _MEMO[key]
    candidates = _cache_candidates(flame_dir, "suite_mesh_hierarchy.npz", key)
    for path in candidates:
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                if str(arrays.get("key")) == key:
                    _MEMO[key] = _from_arrays(arrays)
                    return _MEMO[key]
            except (OSError, ValueError, KeyError):
                pass  # unreadable or stale: rebuild
    h = build_hierarchy(v, f, region, sizes=sizes, spiral_length=spiral_length, chart=chart)
    arrays = _to_arrays(h, key)
    for path in candidates:
        try:
            save_npz_atomic(path, **arrays)
            break
        except OSError:
            continue
    _MEMO[key] = h
    return h
