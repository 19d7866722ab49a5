"""FLAME-topology facts the loaders need, from a FLAME model folder (real or procedural).

- ``LandmarkSet(name, flame_dir)``: how to get the configured landmark set from FLAME
  vertices (vertex indices for the face-region sets, barycentric embedding for iBUG-68),
  and its horizontal-flip permutation (``facemodels.landmark_sets.flip_permutation``).
- ``landmarks68(vertices)``: iBUG-68 = cat(17 dynamic contour at zero pose, 51 static),
  barycentric in the FLAME triangles (FORMATS.md, DAD-3DHeads' definition).
- ``mesh_flip_permutation``: the 5023-vertex mirror correspondence (nearest mirrored
  template vertex), used to mirror ``vertices`` on a horizontal flip.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from facemodels.flame_files import ibug68_embedding, read_flame_template
from facemodels.landmark_sets import (
    flip_permutation,
    landmark_embedding,
    landmark_set,
    landmark_vertex_indices,
)

__all__ = ["FlameTopology", "flame_topology", "LandmarkSet"]


class FlameTopology:
    """Faces, template and the iBUG-68 embedding of a FLAME folder (numpy)."""

    def __init__(self, flame_dir: str | Path):
        self.template, self.faces = read_flame_template(flame_dir)  # (5023, 3) m, (9976, 3)
        self.lmk_faces, self.lmk_bary = ibug68_embedding(flame_dir)  # (68,), (68, 3)
        self._mesh_perm: np.ndarray | None = None

    def landmarks68(self, vertices: np.ndarray) -> np.ndarray:
        """(5023, 3) -> (68, 3) by barycentric interpolation (same units)."""
        tri = vertices[self.faces[self.lmk_faces]]  # (68, 3 corners, 3)
        return np.einsum("lc,lcd->ld", self.lmk_bary, tri)

    def landmark_vertices(self) -> np.ndarray:
        """(68, 3) vertex indices of each iBUG-68 landmark's triangle."""
        return self.faces[self.lmk_faces]

    @property
    def mesh_flip_permutation(self) -> np.ndarray:
        """(5023,) index of the mirror partner of every vertex: (F v)[perm] is the
        mirrored mesh in the original vertex order."""
        if self._mesh_perm is None:
            from scipy.spatial import cKDTree

            mirrored = self.template * np.array([-1.0, 1.0, 1.0])
            _, idx = cKDTree(mirrored).query(self.template)
            self._mesh_perm = idx.astype(np.int64)
        return self._mesh_perm


@lru_cache(maxsize=4)
def flame_topology(flame_dir: str) -> FlameTopology:
    return FlameTopology(flame_dir)


class LandmarkSet:
    """The configured landmark set on FLAME vertices.

    ``points(V)`` -> (L, 3) from (5023, 3) vertices (same frame and units);
    ``flip`` (L,) permutation; ``vertex_ids`` (L, k) vertex ids whose visibility decides
    the landmark's (k = 1 for vertex sets, 3 for barycentric iBUG-68).
    """

    def __init__(self, name: str, flame_dir: str | Path):
        self.name = name
        self.topo = flame_topology(str(flame_dir))
        if "flame" in landmark_set(name).embedding:  # barycentric (iBUG-68)
            self.indices = None
            self.lmk_faces, self.lmk_bary = landmark_embedding(name, flame_dir, model="flame")
            self.vertex_ids = self.topo.faces[self.lmk_faces]  # (L, 3)
        else:
            self.indices = landmark_vertex_indices(name, flame_dir, model="flame")
            self.vertex_ids = self.indices[:, None]
        self.flip = flip_permutation(name, flame_dir)
        self.flip68 = flip_permutation("ibug68", flame_dir)

    def points(self, vertices: np.ndarray) -> np.ndarray:
        if self.indices is None:
            tri = vertices[self.vertex_ids]  # (L, 3 corners, 3)
            return np.einsum("lc,lcd->ld", self.lmk_bary, tri)
        return vertices[self.indices]

    def visibility(self, vertex_visibility: np.ndarray) -> np.ndarray:
        """(5023,) 0/1 -> (L,) float32: majority of the landmark's vertices."""
        return (vertex_visibility[self.vertex_ids].mean(1) >= 0.5).astype(np.float32)
