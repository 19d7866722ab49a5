"""Zhao et al. 2016 (method D), 2D stage: a small CNN regressing l landmarks with L_local + L_pairs."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from lightning_modules.landmark_system import GPU_PATH_ARGS, LandmarkSystem, normalised_to_px


class Zhao2DModule(LandmarkSystem):
    """net: image (B, 3, H, W) -> (B, l, 2) normalised crop coords (ZhaoCNN).

    loss: ZhaoPairsLoss, applied to normalised coordinates (the paper does not fix the unit).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        loss: nn.Module,
        scheduler: functools.partial | None = None,
        landmark_set: str = "ibug68",
        image_size: int = 128,
        num_overlays: int = 4,
        monitor: str | None = "val/mlme",
        monitor_mode: str | None = "min",
        channels_last: bool | None = None,
        compile: bool | str | None = False,
    ) -> None:
        super().__init__(net, optimizer, scheduler, landmark_set, image_size, num_overlays, monitor, monitor_mode,
                         channels_last=channels_last, compile=compile)
        self.save_hyperparameters(ignore=["net", "loss", *GPU_PATH_ARGS])
        self.loss = loss

    def forward_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = batch["image"]
        lmk = self.net(image)  # (B, l, 2)
        if lmk.ndim != 3 or lmk.shape[1:] != (self.num_landmarks, 2):
            raise ValueError(f"Zhao2DModule: net output {tuple(lmk.shape)}, expected (B, {self.num_landmarks}, 2)")
        h, w = image.shape[-2:]
        preds = {"landmarks": lmk, "landmarks_px": normalised_to_px(lmk, h, w)}
        if self.num_landmarks == 68:
            preds["landmarks68_px"] = preds["landmarks_px"]
        return preds

    def compute_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"loss": self.loss(preds["landmarks"], batch["landmarks"])}
