"""Baselines of the lifting table (Deep-MDS Table 1): the mean shape under a fitted view, and a
constant output.

Both estimate the mean 3D shape of the training faces during one training epoch (running sum of
the centred `landmarks3d_model` (B, 68, 3), metres; no gradient step, no optimiser) and keep it
in buffers (saved in checkpoints):
- `MeanShapeLifter`: the mean shape fitted to the input 2D landmarks under weak perspective
  (scaled orthographic Procrustes, fitting/weak_perspective.py), depth read off (px, towards the
  camera); x, y are the inputs.
- `ConstantLifter`: the same 3D shape for every input ("a method that outputs one specific
  solution"): the mean shape seen frontally (x right, y down, z towards the camera), scaled by
  the input's Zhao scale and placed at the input centroid; nothing is fitted to the input's pose.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fitting.weak_perspective import lift_with_shape
from lightning_modules.components.depth_mlp import standardise_2d
from lightning_modules.lifting_base import LiftingModule, centred_depth


class _MeanShapeModule(LiftingModule):
    """Batch keys: `landmarks_px` (B, 68, 2) px, `landmarks3d` (B, 68, 3) px and, in training,
    `landmarks3d_model` (B, 68, 3) metres."""

    def __init__(self, landmark_set: str = "ibug68", image_size: int = 256, monitor: str = "val/gte",
                 n_landmarks: int = 68, monitor_mode: str = "min") -> None:
        super().__init__(nn.Identity(), optimizer=None, landmark_set=landmark_set, image_size=image_size,
                         early_stopping_patience=None, monitor=monitor, monitor_mode=monitor_mode)
        self.save_hyperparameters()
        self.register_buffer("shape_sum", torch.zeros(n_landmarks, 3, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @property
    def mean_shape(self) -> Tensor:
        """(68, 3) mean centred training shape, metres (model space)."""
        if self.count <= 0:
            raise RuntimeError(f"{type(self).__name__}: no training faces seen yet (fit for one epoch first)")
        return self.shape_sum / self.count

    def configure_optimizers(self):
        return None  # nothing to optimise

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if "landmarks3d_model" not in batch:
            raise KeyError(f"{type(self).__name__}: training batches need 'landmarks3d_model' (B, 68, 3)")
        s = batch["landmarks3d_model"].detach().double()
        self.shape_sum += (s - s.mean(1, keepdim=True)).sum(0)
        self.count += s.shape[0]
        return None

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        if self.count > 0:  # nothing to evaluate in the sanity check before the first epoch
            super().validation_step(batch, batch_idx)

    def model_step(self, batch: dict[str, Tensor], full: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        xy, target = batch["landmarks_px"], batch["landmarks3d"]
        preds = self.lift(xy)
        loss = ((preds[..., 2] - (target[..., 2] - target[..., 2].mean(1, keepdim=True))) ** 2).sum(1).mean()
        return loss, preds, target


class MeanShapeLifter(_MeanShapeModule):
    def lift(self, xy_px: Tensor) -> Tensor:
        """(B, 68, 2) px -> (B, 68, 3) px: x, y unchanged, zero-mean z towards the camera."""
        shape = self.mean_shape.to(xy_px.device).expand(xy_px.shape[0], -1, -1)
        return centred_depth(lift_with_shape(shape.double(), xy_px.double()).to(xy_px.dtype))


class ConstantLifter(_MeanShapeModule):
    def lift(self, xy_px: Tensor) -> Tensor:
        """(B, 68, 2) px -> (B, 68, 3) px: the frontal mean shape at the input's centroid / scale."""
        m = self.mean_shape.to(device=xy_px.device, dtype=xy_px.dtype)
        frontal = torch.stack([m[:, 0], -m[:, 1], m[:, 2]], -1)  # image orientation, z towards the camera
        _, _, s_ref = standardise_2d(frontal[None, :, :2])
        _, mean, scale = standardise_2d(xy_px)
        out = frontal[None] / s_ref * scale  # (B, 68, 3)
        return torch.cat([out[..., :2] + mean, out[..., 2:]], -1)
