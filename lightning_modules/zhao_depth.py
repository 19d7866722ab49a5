"""Zhao et al. (2016) depth stage: 2D iBUG-68 landmarks -> per-landmark depth (METHODS.md D).

Inputs are standardised per face (Eq. 9/12), the MLP regresses the standardised depth,
the loss is the sum over landmarks of squared depth errors (mean over faces). RMSProp
lr 0.01 and early stopping with patience 10 come from configs/model/zhao_depth.yaml.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from lightning_modules.components.depth_mlp import DepthMLP, standardise_2d
from lightning_modules.lifting_base import LiftingModule, centred_depth


class ZhaoDepthLifter(LiftingModule):
    """Batch keys: `landmarks_px` (B, 68, 2) input px, `landmarks3d` (B, 68, 3) targets
    (x, y px, z px towards the camera)."""

    def __init__(
        self,
        net: DepthMLP,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        landmark_set: str = "ibug68",
        image_size: int = 256,
        early_stopping_patience: int | None = 10,
        monitor: str = "val/gte",
        num_threads: int | None = None,
        monitor_mode: str = "min",
    ) -> None:
        super().__init__(net, optimizer, scheduler, landmark_set, image_size, early_stopping_patience, monitor,
                         num_threads, monitor_mode)
        self.save_hyperparameters(ignore=["net"])

    def lift(self, xy_px: Tensor) -> Tensor:
        """(B, 68, 2) px -> (B, 68, 3): x, y unchanged, zero-mean z in px towards the camera."""
        xy_std, _, scale = standardise_2d(xy_px)
        z = self.net(xy_std) * scale.view(-1, 1)
        return centred_depth(torch.cat([xy_px, z.unsqueeze(-1)], -1))

    def model_step(self, batch: dict[str, Tensor], full: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        xy = batch["landmarks_px"]
        target = batch["landmarks3d"]
        xy_std, _, scale = standardise_2d(xy)
        z_gt = target[..., 2] - target[..., 2].mean(1, keepdim=True)
        z_gt_std = z_gt / scale.view(-1, 1)
        z_std = self.net(xy_std)  # (B, 68)
        loss = ((z_std - z_gt_std) ** 2).sum(1).mean()
        preds = centred_depth(torch.cat([xy, (z_std * scale.view(-1, 1)).unsqueeze(-1)], -1))
        return loss, preds, target
