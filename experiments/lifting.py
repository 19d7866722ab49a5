"""Lifting 2D iBUG-68 landmarks to 3D: input checks, the mean-face baseline, trained lifters.

Landmarks in image pixels, (N, 68, 2), x right, y down; lifted (N, 68, 3): x, y unchanged, z in the
same pixel scale, positive towards the camera, zero mean per face.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from datamodules.landmarks3d import flame_landmarks68
from experiments.checkpoints import load_system
from fitting.weak_perspective import lift_with_shape

__all__ = ["load_input", "mean_face_landmarks", "lift_meanshape", "load_lifter"]


def load_input(path: str | Path) -> Tensor:
    arr = np.load(path)
    if arr.ndim != 3 or arr.shape[1:] != (68, 2):
        raise ValueError(f"{path}: expected an (N, 68, 2) array of iBUG-68 landmarks in px, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: landmarks contain NaN or inf")
    return torch.as_tensor(arr, dtype=torch.float64)


def mean_face_landmarks(flame_dir: str | None = None) -> Tensor:
    """(68, 3) iBUG-68 landmarks of the FLAME mean face (zero parameters), metres, model space."""
    return flame_landmarks68(1, 0, shape_std=0.0, exp_std=0.0, jaw_max_deg=0.0, folder=flame_dir)[0].double()


def lift_meanshape(xy: Tensor, mean_face: Tensor) -> Tensor:
    """(N, 68, 2) px -> (N, 68, 3) px using the mean face's depth under the fitted view."""
    return lift_with_shape(mean_face.to(xy.dtype).expand(xy.shape[0], -1, -1), xy)


def load_lifter(ckpt: str | os.PathLike, config: str | os.PathLike | None = None) -> torch.nn.Module:
    """A lifting LightningModule (zhao_depth, deep_mds, ...) from a checkpoint or weights file, eval mode.

    config: a Hydra run config to use instead of the one the checkpoint carries."""
    return load_system(ckpt, config=config).module
