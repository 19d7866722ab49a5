"""Shared LightningModule plumbing of the 2D -> 3D landmark lifting methods (Zhao, Deep-MDS).

A subclass implements `model_step(batch) -> (loss, preds, targets)` with preds / targets
(B, 68, 3) in image px (x right, y down, z towards the camera) and `lift(xy_px)`.
This base logs train/loss, val/loss, and val|test/{gte, cvgtce, ape, mse_procrustes,
depth_corr} (one torchmetrics object per stage), configures the optimizer partial and,
when `early_stopping_patience` is set, adds an EarlyStopping callback on `monitor`.
At the end of testing it writes the per-face errors to `<trainer.default_root_dir>/test_errors.npz`
(`index` (N,), `mse_procrustes` (N,), `gte` (N,), `depth_error` (N,), and `z_pred`, `z_gt` (N, 68): the
depths centred per face and divided by the gt's outer-eye distance, from which DepthCorr of any subset
is computed; `yaw` (N,) degrees when the batches carry it (shape3d.depth_corr_from_depths); for paired tests across runs, e.g. Deep-MDS' Wilcoxon
test over subsets). DepthCorr is a statistic of a set of faces (shape3d.depth_corr), not a per-face mean.
"""

from __future__ import annotations

import functools

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping
from torch import Tensor, nn

from lightning_modules.metrics.shape3d import (
    APE,
    CVGTCE,
    GTE,
    DepthCorr,
    ProcrustesMSE,
    depth_error,
    gte,
    mse_procrustes,
    normalised_depth,
)
from lightning_modules.optimization import optimizer_config
from lightning_modules.test_errors import write_test_errors


def _stage_metrics() -> nn.ModuleDict:
    return nn.ModuleDict(
        {"gte": GTE(), "cvgtce": CVGTCE(), "ape": APE(), "mse_procrustes": ProcrustesMSE(), "depth_corr": DepthCorr()}
    )


class LiftingModule(pl.LightningModule):
    """Base of the lifting systems. `monitor` / `monitor_mode` ("min" or "max"): the metric the system is
    judged by; its LR scheduler and the EarlyStopping it adds watch it, and configs/callbacks/*.yaml read it
    (`${model.monitor}`) for checkpointing. Subclasses call `save_hyperparameters`, which these hooks read."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        landmark_set: str = "ibug68",
        image_size: int = 256,
        early_stopping_patience: int | None = None,
        monitor: str = "val/gte",
        num_threads: int | None = None,
        monitor_mode: str = "min",
    ) -> None:
        super().__init__()
        self._num_threads = num_threads
        if landmark_set != "ibug68":
            raise ValueError(f"{type(self).__name__}: landmark_set must be 'ibug68', got {landmark_set!r}")
        self.net = net
        self.metrics = nn.ModuleDict({"val": _stage_metrics(), "test": _stage_metrics()})
        self._test_errors: list[dict[str, Tensor]] = []

    def setup(self, stage: str) -> None:
        """`num_threads` (hyper-parameter): torch intra-op threads for this process. These nets are
        tiny: on a shared CPU one thread is much faster than two (docs/DECISIONS.md)."""
        if self._num_threads:
            torch.set_num_threads(int(self._num_threads))

    # subclasses: model_step, lift
    def model_step(self, batch: dict[str, Tensor], full: bool) -> tuple[Tensor, Tensor | None, Tensor]:
        raise NotImplementedError

    def lift(self, xy_px: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, xy_px: Tensor) -> Tensor:
        """(B, 68, 2) image px -> (B, 68, 3) px, z towards the camera."""
        return self.lift(xy_px)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.model_step(batch, full=False)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch["landmarks_px"].shape[0])
        return loss

    def _eval_step(self, stage: str, batch: dict[str, Tensor]) -> None:
        loss, preds, targets = self.model_step(batch, full=True)
        bsz = targets.shape[0]
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val", batch_size=bsz)
        for name, metric in self.metrics[stage].items():
            metric(preds, targets)
            self.log(f"{stage}/{name}", metric, on_epoch=True, prog_bar=name == "gte", batch_size=bsz)
        if stage == "test":
            p, g = preds.detach().double(), targets.detach().double()
            idx = batch.get("index", torch.full((bsz,), -1, dtype=torch.int64))
            zp, zg = normalised_depth(p, g)
            rec = {"index": idx.detach().cpu(), "mse_procrustes": mse_procrustes(p, g).cpu(),
                   "gte": gte(p, g).cpu(), "depth_error": depth_error(p, g).cpu(), "z_pred": zp.cpu(), "z_gt": zg.cpu()}
            if "yaw" in batch:  # (B,) degrees, where the data module gives it (per-view breakdowns)
                rec["yaw"] = batch["yaw"].detach().reshape(-1).double().cpu()
            self._test_errors.append(rec)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_start(self) -> None:
        self._test_errors = []

    def on_test_epoch_end(self) -> None:
        """Write the per-face test errors (single process; under DDP each rank's own faces)."""
        write_test_errors(self.trainer, self._test_errors)
        self._test_errors = []

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        return self.lift(batch["landmarks_px"])

    def configure_optimizers(self):
        return optimizer_config(self.hparams.optimizer(params=self.parameters()), self.hparams.get("scheduler"),
                                self.hparams.monitor)

    def configure_callbacks(self):
        patience = self.hparams.get("early_stopping_patience")
        if patience is None:
            return []
        return [EarlyStopping(monitor=self.hparams.monitor, mode=self.hparams.get("monitor_mode", "min"),
                              patience=int(patience), check_on_train_epoch_end=False)]


def centred_depth(preds: Tensor) -> Tensor:
    """Subtract each face's mean depth (depth is only defined up to a constant). (B, L, 3)."""
    z = preds[..., 2:] - preds[..., 2:].mean(1, keepdim=True)
    return torch.cat([preds[..., :2], z], -1)
