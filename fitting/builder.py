"""Build a FLAME fitter from a FLAME-format folder and a landmark-set name.

    fitter = build_flame_fitter(landmark_set="face1609")      # the procedural world
    result = fitter.fit(landmarks_px, confidences)

Landmark sets (docs/ARCHITECTURE.md): face1609 / face805 / face403 / face202 / face101
(vertex ids), ibug68 (FLAME barycentric embeddings: 17 contour landmarks of the zero-yaw
dynamic row, then the 51 static ones); any set of :mod:`facemodels.landmark_sets` defined
on FLAME.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facemodels.flame_files import FlameArrays, load_flame_arrays
from facemodels.landmark_sets import landmark_embedding, landmark_set, landmark_vertex_indices

from .flame_fit import FitterConfig, LandmarkFitter
from .landmark_model import LandmarkSelection, LBSArrays

__all__ = ["flame_selection", "build_flame_fitter", "flame_lbs_arrays"]


def flame_selection(name: str, flame: FlameArrays, folder: str | os.PathLike) -> LandmarkSelection:
    """The :class:`LandmarkSelection` of a named landmark set on a FLAME folder."""
    if "flame" in landmark_set(name).embedding:
        faces, bary = landmark_embedding(name, folder, model="flame")
        return LandmarkSelection(face_idx=faces, bary=bary)
    return LandmarkSelection(vertex_idx=landmark_vertex_indices(name, folder, model="flame"))


def flame_lbs_arrays(flame: FlameArrays, n_shape: int = 100, n_expr: int = 100) -> LBSArrays:
    """FLAME arrays -> the fitter's :class:`LBSArrays` (first n_shape / n_expr components)."""
    return LBSArrays.from_flame(flame, n_shape=n_shape, n_expr=n_expr)


def build_flame_fitter(
    flame_dir: str | os.PathLike | None = None,
    landmark_set: str | np.ndarray = "face1609",
    config: FitterConfig | None = None,
    n_shape: int = 100,
    n_expr: int = 100,
) -> LandmarkFitter:
    """A :class:`LandmarkFitter` for FLAME (free joints: neck and jaw).

    Args:
        flame_dir: FLAME folder; default ``facemodels.world.default_flame_dir()``.
        landmark_set: a set name, or an explicit (L,) array of vertex ids.
        config: fitter hyper-parameters.
        n_shape, n_expr: coefficients fitted (thesis: 100 + 100).
    """
    if flame_dir is None:
        from facemodels.world import default_flame_dir

        flame_dir = default_flame_dir()
    flame = load_flame_arrays(flame_dir)
    if isinstance(landmark_set, str):
        sel = flame_selection(landmark_set, flame, Path(flame_dir))
    else:
        sel = LandmarkSelection(vertex_idx=np.asarray(landmark_set, dtype=np.int64))
    return LandmarkFitter(flame_lbs_arrays(flame, n_shape, n_expr), sel, config, free_joints=(1, 2))
