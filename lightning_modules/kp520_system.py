"""The 520-point paper's system (method B, a LightningModule): backbone + linear regressor to dense 3D keypoints, Wing + MSE loss."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from torch import nn

from lightning_modules.landmark_system import GPU_PATH_ARGS, LandmarkSystem, normalised_to_px


class Keypoints520Module(LandmarkSystem):
    """The net outputs (B, L + num_sparse, 3): rows :L are the dense keypoints (x_n, y_n, z_n in
    normalised crop units; x, y px = (x_n + 0.5) * size, z px = z_n * size), rows L: are the extra
    iBUG-68 points (x_n, y_n; the third channel unused) the paper's public code supervises with MSE.

    Args (beyond LandmarkSystem's, whose arguments it passes on):
        loss: WingMSELoss (target sets "dense" (B, L, 3) px from batch["landmarks3d"] or
            (B, L, 2) from batch["landmarks_px"] when there is no depth; "sparse68" (B, 68, 2) px
            from batch["landmarks68_px"]).
        num_sparse: 68 (predict the extra iBUG-68 head) or 0.

    When a batch lacks `landmarks68_px` (e.g. synthetic smoke data) the sparse term falls back
    to the dense set, with a warning.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        loss: nn.Module,
        scheduler: functools.partial | None = None,
        landmark_set: str = "kp520",
        image_size: int = 256,
        num_sparse: int = 68,
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
        self.num_sparse = int(num_sparse)
        self._warned_sparse = False

    def forward_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = batch["image"]
        out = self.net(image)  # (B, L + S, 3)
        expected = self.num_landmarks + self.num_sparse
        if out.ndim != 3 or out.shape[1:] != (expected, 3):
            raise ValueError(f"Keypoints520Module: net output {tuple(out.shape)}, expected (B, {expected}, 3)")
        h, w = image.shape[-2:]
        dense = out[:, : self.num_landmarks]
        xy_px = normalised_to_px(dense[..., :2], h, w)
        preds = {
            "landmarks": dense[..., :2],
            "landmarks_px": xy_px,
            "landmarks3d_px": torch.cat([xy_px, dense[..., 2:] * w], -1),  # (B, L, 3)
        }
        if self.num_sparse:
            preds["landmarks68_px"] = normalised_to_px(out[:, self.num_landmarks :, :2], h, w)
        elif self.num_landmarks == 68:
            preds["landmarks68_px"] = xy_px
        return preds

    def compute_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        if "landmarks3d" in batch:
            dense_pred, dense_gt = preds["landmarks3d_px"], batch["landmarks3d"]
        else:
            h, w = batch["image"].shape[-2:]
            dense_pred = preds["landmarks_px"]
            dense_gt = batch.get("landmarks_px", normalised_to_px(batch["landmarks"], h, w))
        p = {"dense": dense_pred}
        t = {"dense": dense_gt}
        if "landmarks68_px" in preds and "landmarks68_px" in batch:
            p["sparse68"], t["sparse68"] = preds["landmarks68_px"], batch["landmarks68_px"]
        else:
            if not self._warned_sparse:
                warnings.warn(
                    "Keypoints520Module: batch has no 'landmarks68_px'; the sparse68 loss term uses the dense set",
                    stacklevel=2,
                )
                self._warned_sparse = True
            p["sparse68"], t["sparse68"] = dense_pred[..., :2], dense_gt[..., :2]
        return {"loss": self.loss(p, t)}
