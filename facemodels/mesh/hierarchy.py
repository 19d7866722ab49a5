"""Nested mesh hierarchy on a vertex region for spiral decoders (SpiralNet++-style up-sampling).

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
* flips per level: the horizontal-flip permutation (see :mod:`facemodels.mirror`).

:func:`facemodels.mesh.face_hierarchy.face_hierarchy` builds this for a FLAME-format
folder and caches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facemodels.mesh.sampling import farthest_point_order, symmetric_farthest_point_order
from facemodels.mesh.triangulation import chart_2d, triangulate_level, upsample_weights
from facemodels.mirror import mirror_match
from facemodels.spirals import spiral_indices

__all__ = ["FACE_LEVEL_SIZES", "MeshHierarchy", "build_hierarchy"]

FACE_LEVEL_SIZES: tuple[int, ...] = (1609, 805, 403, 202, 101)


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
