"""BFM landmark fitting (MobileFace's E1) with the same batched Theseus LM machinery.

    E1 = E_lands + r_id sum_i alpha_id,i^2 / sigma_id,i^2 + r_exp sum_j alpha_exp,j^2 / sigma_exp,j^2
    E_lands = || L - P_L ||^2   (px^2, perspective camera)       r_id = 0.001, r_exp = 0.1

The linear BFM (``facemodels.bfm``; files in micrometres) becomes a joint-free
:class:`fitting.landmark_model.LBSArrays` in METRES with coefficients in units of their
standard deviation (``a = alpha / sigma``), so the priors are ``r * sum a^2`` and the fit
minimises ``0.5 * E1`` (same minimiser). Rigid init, rigid stage, non-rigid stage as for FLAME.
Convert back with :func:`to_3ddfa_params` (Shape_Para / Exp_Para in 3DDFA scale).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor

from facemodels.bfm import BfmArrays, load_bfm_arrays
from facemodels.landmark_sets import landmark_vertex_indices
from facemodels.world import default_bfm_dir

from .flame_fit import FitResult, FitterConfig, LandmarkFitter
from .landmark_model import LandmarkSelection, LBSArrays

__all__ = ["UM_TO_M", "bfm_lbs_arrays", "build_bfm_fitter", "to_3ddfa_params"]

UM_TO_M = 1e-6


def bfm_lbs_arrays(bfm: BfmArrays, n_shape: int = 80, n_expr: int = 29) -> LBSArrays:
    """BFM arrays (micrometres) -> joint-free LBS arrays in metres, coefficients in std units."""
    N = bfm.mean.shape[0]
    S, E = bfm.shape_pc.shape[1], bfm.exp_pc.shape[1]
    if n_shape > S or n_expr > E:
        raise ValueError(
            f"bfm_lbs_arrays: {bfm.folder}: the model has {S} shape / {E} expression "
            f"modes, asked for {n_shape} / {n_expr}"
        )
    sd = (bfm.shape_pc[:, :n_shape] * bfm.shape_ev[:n_shape]).reshape(N, 3, n_shape) * UM_TO_M
    ed = (bfm.exp_pc[:, :n_expr] * bfm.exp_ev[:n_expr]).reshape(N, 3, n_expr) * UM_TO_M
    return LBSArrays(
        v_template=bfm.mean * UM_TO_M,
        shapedirs=sd,
        exprdirs=ed,
        posedirs=np.zeros((N, 3, 0)),
        J_regressor=np.full((1, N), 1.0 / N),
        weights=np.ones((N, 1)),
        parents=np.array([-1]),
        faces=bfm.tri,
    )


def build_bfm_fitter(
    bfm_dir: str | os.PathLike | None = None,
    landmarks: str | np.ndarray = "ibug68",
    config: FitterConfig | None = None,
    n_shape: int = 80,
    n_expr: int = 29,
    r_id: float = 0.001,
    r_exp: float = 0.1,
) -> LandmarkFitter:
    """A :class:`LandmarkFitter` minimising MobileFace's E1 on the BFM.

    Args:
        bfm_dir: BFM folder; default ``facemodels.world.default_bfm_dir()``.
        landmarks: 'ibug68' (the model's 68 keypoints), 'kp520', or (L,) vertex ids.
        config: camera / iteration settings; its w_shape / w_expr are replaced by r_id / r_exp.
        n_shape, n_expr: modes fitted (MobileFace: 80 + 29).
    """
    if bfm_dir is None:

        bfm_dir = default_bfm_dir()
    bfm = load_bfm_arrays(bfm_dir)
    if isinstance(landmarks, str):
        idx = landmark_vertex_indices(landmarks, bfm_dir, model="bfm")
    else:
        idx = np.asarray(landmarks, dtype=np.int64)
    cfg = config or FitterConfig()
    cfg.w_shape, cfg.w_expr = r_id, r_exp
    return LandmarkFitter(
        bfm_lbs_arrays(bfm, n_shape, n_expr), LandmarkSelection(vertex_idx=idx), cfg, free_joints=()
    )


def to_3ddfa_params(result: FitResult, bfm: BfmArrays) -> tuple[Tensor, Tensor]:
    """Fitted std-unit coefficients -> (Shape_Para (B, S), Exp_Para (B, E)) in 3DDFA scale."""
    S, E = result.shape.shape[1], result.expr.shape[1]
    ev = torch.as_tensor(bfm.shape_ev[:S], dtype=result.shape.dtype, device=result.shape.device)
    ee = torch.as_tensor(bfm.exp_ev[:E], dtype=result.expr.dtype, device=result.expr.device)
    return result.shape * ev, result.expr * ee
