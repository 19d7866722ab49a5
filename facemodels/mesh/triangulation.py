"""2D charts and triangulation of face-like surfaces (model space: y up, z out of the face).

* :func:`orient_faces`, :func:`fold_free`, :func:`chart_2d`: a fold-free 2D chart
  (frontal, cylindrical, or the orthographic projection along
  :func:`facemodels.mesh.sampling.view_direction`).
* :func:`barycentric_2d`: the containing (or nearest) triangle of 2D points.
* :func:`triangulate_level`: Delaunay triangulation of a vertex subset restricted to the
  fine surface's domain (holes and concave hull parts dropped, slivers peeled).
* :func:`upsample_weights`: barycentric interpolation of fine vertices from coarse ones.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay, cKDTree

from facemodels.mesh.sampling import view_direction

__all__ = [
    "orient_faces",
    "fold_free",
    "chart_2d",
    "barycentric_2d",
    "triangulate_level",
    "upsample_weights",
]


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
