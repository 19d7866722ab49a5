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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from facemodels.flame_files import FlameArrays, load_flame_arrays
from facemodels.landmark_sets import landmark_embedding, landmark_set, landmark_vertex_indices
from facemodels.world import default_flame_dir

from .config import fitter_config
from .flame_fit import FitterConfig, LandmarkFitter
from .landmark_model import LandmarkSelection, LBSArrays

__all__ = ["flame_selection", "build_flame_fitter", "flame_lbs_arrays", "fitter_from_config"]


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
        flame_dir = default_flame_dir()
    flame = load_flame_arrays(flame_dir)
    if isinstance(landmark_set, str):
        sel = flame_selection(landmark_set, flame, Path(flame_dir))
    else:
        sel = LandmarkSelection(vertex_idx=np.asarray(landmark_set, dtype=np.int64))
    return LandmarkFitter(flame_lbs_arrays(flame, n_shape, n_expr), sel, config, free_joints=(1, 2))


def fitter_from_config(
    block: Mapping[str, Any],
    image_size: int | tuple[int, int],
    landmark_set: str | None = None,
    iterations: int | None = None,
    origin: str = "configs/fitting",
) -> tuple[LandmarkFitter, Path]:
    """The fitter of a ``configs/fitting`` block (keys landmark_set, flame_dir, n_shape, n_expr, config)
    for crops of ``image_size`` px; -> (fitter, the FLAME folder it uses).

    landmark_set: the network's set, used when the block's ``landmark_set`` is null; iterations:
    overrides both LM stages; ``config.image_size`` null -> ``image_size``. Unknown or ill-typed
    ``config`` keys raise a ValueError naming ``origin`` and the key (:func:`fitting.config.fitter_config`).
    """
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    config = dict(block.get("config") or {})
    if config.get("image_size") is None:
        config["image_size"] = tuple(int(v) for v in size)
    if iterations is not None:
        config["rigid_iterations"] = config["nonrigid_iterations"] = int(iterations)
    lset = block.get("landmark_set") or landmark_set
    if lset is None:
        raise ValueError(f"{origin}: no landmark_set (neither the fitting config nor the network gives one)")
    flame_dir = Path(block.get("flame_dir") or default_flame_dir())
    fitter = build_flame_fitter(flame_dir, lset, fitter_config(config, origin=origin),
                                int(block.get("n_shape", 100)), int(block.get("n_expr", 100)))
    return fitter, flame_dir
