"""Thesis method A, landmark stage: image -> mu (L, 2) and sigma (L, 2) -> landmarks + confidences."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from lightning_modules.landmark_system import GPU_PATH_ARGS, LandmarkSystem, normalised_to_px
from lightning_modules.metrics.calibration import SigmaCalibration, calibration_figure


class DenseLandmarkModule(LandmarkSystem):
    """Backbone + head predicting q in R^{L x 4}: mu = q[..., :2] (normalised crop coords) and
    sigma = loss.activate_sigma(q[..., 2:]) (normalised units; sigmoid for ResLL, exp for ResLL
    Exp and NGLL).

    Args (beyond LandmarkSystem's, whose arguments it passes on):
        loss: NGLLLoss | ResLLLoss | ResLLExpLoss (an nn.Module; a flow inside it is trained too).
        vertex_edge: optional VertexEdgeLoss over mesh edges between the landmarks.
        vertex_edge_weight: its weight (0 disables it even when given).
        use_visibility: weight the likelihood by batch["visibility"] (default: all landmarks count,
            as the thesis' projected vertices).

    Confidences C = 1 - sigma clipped to [0, 1] (thesis Eq. 3.22), averaged over x and y:
    (B, L). predict_step returns landmarks px (B, L, 2), confidences (B, L), sigma px (B, L, 2).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        loss: nn.Module,
        scheduler: functools.partial | None = None,
        landmark_set: str = "face1609",
        image_size: int = 256,
        vertex_edge: nn.Module | None = None,
        vertex_edge_weight: float = 0.0,
        use_visibility: bool = False,
        num_overlays: int = 4,
        monitor: str | None = "val/mlme",
        monitor_mode: str | None = "min",
        channels_last: bool | None = None,
        compile: bool | str | None = False,
    ) -> None:
        super().__init__(net, optimizer, scheduler, landmark_set, image_size, num_overlays, monitor, monitor_mode,
                         channels_last=channels_last, compile=compile)
        self.save_hyperparameters(ignore=["net", "loss", "vertex_edge", *GPU_PATH_ARGS])
        if not hasattr(loss, "activate_sigma"):
            raise TypeError(f"DenseLandmarkModule: loss {type(loss).__name__} has no activate_sigma()")
        self.loss = loss
        self.vertex_edge = vertex_edge if vertex_edge_weight > 0 else None
        self.vertex_edge_weight = float(vertex_edge_weight)
        self.use_visibility = use_visibility
        self.test_calibration = SigmaCalibration()

    def forward_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        image = batch["image"]
        q = self.net(image)  # (B, L, 4)
        if q.ndim != 3 or q.shape[1:] != (self.num_landmarks, 4):
            raise ValueError(
                f"DenseLandmarkModule: net output {tuple(q.shape)}, expected (B, {self.num_landmarks}, 4)"
            )
        mu = q[..., :2]
        sigma = self.loss.activate_sigma(q[..., 2:])  # (B, L, 2) normalised units
        h, w = image.shape[-2:]
        sigma_px = sigma * sigma.new_tensor([w, h])
        preds = {
            "landmarks": mu,
            "sigma": sigma,
            "landmarks_px": normalised_to_px(mu, h, w),
            "sigma_px": sigma_px,
            "confidences": (1.0 - sigma).clamp(0.0, 1.0).mean(-1),  # (B, L)
        }
        if self.num_landmarks == 68:
            preds["landmarks68_px"] = preds["landmarks_px"]
        return preds

    def compute_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        target = batch["landmarks"]
        weight = batch.get("visibility") if self.use_visibility else None
        nll = self.loss(preds["landmarks"], preds["sigma"], target, weight)
        terms = {"nll": nll}
        total = nll
        if self.vertex_edge is not None:
            ve = self.vertex_edge(preds["landmarks"], target)
            terms["vertex_edge"] = ve
            total = total + self.vertex_edge_weight * ve
        terms["loss"] = total
        return terms

    def update_test_extras(self, preds: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        err = (preds["landmarks_px"] - targets["landmarks_px"]).norm(dim=-1)  # (B, L) px
        self.test_calibration.update(preds["sigma_px"].mean(-1), err)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        stats = self.test_calibration.compute()
        self.test_calibration.reset()
        # are the confidences informative? mean predicted sigma vs mean error, and their correlation
        self.log("test/sigma_px", stats["sigma_all"].float(), sync_dist=False)
        self.log("test/sigma_error_corr", stats["corr"].float(), sync_dist=False)
        out_dir = self.run_dir()  # every rank: trainer.log_dir is a collective (broadcast) under DDP
        if not self.trainer.is_global_zero or stats["count"].sum() == 0:
            return
        import matplotlib.pyplot as plt

        fig = calibration_figure(stats, title=f"{self.landmark_set}: sigma vs error")
        path = out_dir / "figures" / "test_calibration.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(key="test/calibration", images=[str(path)])
        plt.close(fig)
