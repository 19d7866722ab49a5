"""Shared LightningModule for landmark regressors: one model_step, metrics per stage, overlays,
the mean-layout baseline, optimizer set-up. Subclasses define `forward_batch` and `compute_loss`.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from facemodels.landmark_sets import landmark_count
from lightning_modules.metrics.landmark_error import MeanLandmarkError
from lightning_modules.metrics.nme import AFLW2000NME, YAW_BIN_NAMES
from lightning_modules.optimization import optimizer_config
from lightning_modules.overlays import draw_landmark_overlay, overlay_grid, save_png

log = logging.getLogger(__name__)

def normalised_to_px(xy: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., 2) normalised crop coords [-0.5, 0.5] -> crop px: x_px = (x_n + 0.5) W, y_px = (y_n + 0.5) H."""
    scale = xy.new_tensor([width, height])
    return (xy + 0.5) * scale


# The GPU-path arguments of every LandmarkSystem. Subclasses take them as keyword arguments,
# pass them to LandmarkSystem.__init__ and leave them out of their saved hyper-parameters (they say how
# a run executes, not what the model is).
GPU_PATH_ARGS = ("channels_last", "compile")


def _compile_backend(value: bool | str | None) -> str | None:
    """`compile` key -> torch.compile backend: false/None -> None, true -> "inductor", a string -> itself."""
    if value is None or value is False:
        return None
    if value is True:
        return "inductor"
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"model config key 'compile': expected true, false or a torch.compile backend name, got {value!r}")


class LandmarkSystem(pl.LightningModule):
    """Base system. Args (shared by all subclasses):

    net: the nn.Module (image (B, 3, H, W) -> raw outputs).
    optimizer: a partial taking `params` (Hydra `_partial_: true`).
    scheduler: optional partial taking `optimizer`; stepped per epoch, monitoring `monitor`.
    landmark_set, image_size: the data contract (configs interpolate them into the data config).
    num_overlays: validation images drawn per epoch (0 disables overlays).
    monitor, monitor_mode: the metric the system is judged by ("min" or "max"): its LR scheduler watches
        it, and configs/callbacks/*.yaml read it (`${model.monitor}`) for checkpointing and early stopping.

    Logged: train/loss, val/loss, val/mlme, test/loss, test/mlme, test/mlme_mean_baseline and,
    where the batch has `landmarks68_px` and `yaw` and the model predicts 68 points, test/nme,
    test/nme_<bin> (AFLW2000-3D protocol). MLME is in crop px.

    GPU path (GPU_PATH_ARGS, keyword arguments of every subclass):
    channels_last: None (default) = on when training / predicting on CUDA, off on CPU; True / False
        force it. On: the net's 4-D weights and the `image` of every model_step / predict_step use torch.channels_last
        (NHWC; faster convolutions with bf16 on tensor cores); outputs are unchanged.
    compile: false (default) | true (torch.compile, inductor) | a backend name: `net.compile()` in
        place at setup, so state_dict keys and checkpoints stay those of the plain net.

    The mean-layout baseline: the training landmarks (normalised) are summed over every training
    batch into the buffers `layout_sum` / `layout_count` (so they survive checkpoints); at test
    time predicting their mean for every image gives test/mlme_mean_baseline.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        landmark_set: str = "ibug68",
        image_size: int = 256,
        num_overlays: int = 4,
        monitor: str | None = "val/mlme",
        monitor_mode: str | None = "min",
        channels_last: bool | None = None,
        compile: bool | str | None = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.landmark_set = landmark_set
        self.image_size = int(image_size)
        self.num_landmarks = landmark_count(landmark_set)
        self.num_overlays = num_overlays
        self.monitor = monitor or "val/mlme"
        self.monitor_mode = monitor_mode or "min"
        self.val_mlme = MeanLandmarkError()
        self.test_mlme = MeanLandmarkError()
        self.test_baseline = MeanLandmarkError()
        self.test_nme = AFLW2000NME()
        self.register_buffer("layout_sum", torch.zeros(self.num_landmarks, 2, dtype=torch.float64))
        self.register_buffer("layout_count", torch.zeros((), dtype=torch.float64))
        self._overlay_batch: dict[str, torch.Tensor] | None = None
        self._layout_epoch: list | None = None  # [(L, 2) float64 sum, count] of this epoch, this process
        self.channels_last: bool | None = channels_last
        self.compile_backend: str | None = _compile_backend(compile)
        self._channels_last_active = False

    # ----------------------------------------------------------------------------- GPU path
    def apply_gpu_path(self, device: torch.device | str) -> None:
        """Converts the net to channels_last (per `channels_last` and the device type) and compiles
        it when `compile` is set. Called by `setup()`; scripts outside a Trainer call it themselves."""
        on_cuda = torch.device(device).type == "cuda"
        use = on_cuda if self.channels_last is None else bool(self.channels_last)
        if use and not self._channels_last_active:
            self.net.to(memory_format=torch.channels_last)
        elif not use and self._channels_last_active:
            self.net.to(memory_format=torch.contiguous_format)
        self._channels_last_active = use
        if self.compile_backend is not None and not getattr(self.net, "_compiled_call_impl", None):
            self.net.compile(backend=self.compile_backend)

    def setup(self, stage: str) -> None:
        trainer = self._trainer
        device = trainer.strategy.root_device if trainer is not None else self.device
        self.apply_gpu_path(device)

    def channels_last_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch with `image` (B, 3, H, W) in channels_last when the GPU path is on (a shallow
        copy), else the batch itself. Applied by model_step and predict_step."""
        image = batch.get("image") if isinstance(batch, dict) else None
        if not self._channels_last_active or not torch.is_tensor(image) or image.ndim != 4:
            return batch
        return {**batch, "image": image.contiguous(memory_format=torch.channels_last)}

    # ----------------------------------------------------------------------------- hooks to define
    def forward_batch(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Runs the net; returns at least `landmarks` (B, L, 2) normalised and `landmarks_px`."""
        raise NotImplementedError

    def compute_loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Returns {"loss": scalar, other named terms...}."""
        raise NotImplementedError

    # ----------------------------------------------------------------------------- shared logic
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)

    def _check_batch(self, batch: dict[str, Any]) -> None:
        for key in ("image", "landmarks"):
            if key not in batch:
                raise KeyError(f"{type(self).__name__}: batch lacks {key!r} (keys: {sorted(batch)})")
        lmk = batch["landmarks"]
        if lmk.ndim != 3 or lmk.shape[1] != self.num_landmarks:
            raise ValueError(
                f"{type(self).__name__}: batch['landmarks'] is {tuple(lmk.shape)}, expected "
                f"(B, {self.num_landmarks}, 2) for landmark_set={self.landmark_set!r}"
            )

    def model_step(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """-> (loss, preds, targets); preds/targets hold `landmarks_px` (B, L, 2) crop px."""
        self._check_batch(batch)
        batch = self.channels_last_batch(batch)
        preds = self.forward_batch(batch)
        terms = self.compute_loss(preds, batch)
        preds["loss_terms"] = terms  # type: ignore[assignment]
        h, w = batch["image"].shape[-2:]
        target_px = batch.get("landmarks_px")
        if target_px is None:
            target_px = normalised_to_px(batch["landmarks"], h, w)
        return terms["loss"], preds, {"landmarks_px": target_px}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss, preds, _ = self.model_step(batch)
        self._accumulate_layout(batch["landmarks"])
        bs = batch["image"].shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=bs)
        for name, value in preds["loss_terms"].items():
            if name != "loss":
                self.log(f"train/{name}", value, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    @torch.no_grad()
    def _accumulate_layout(self, landmarks: torch.Tensor) -> None:
        """Add a training batch's landmarks (B, L, 2) to this process's running sum for the epoch.

        Kept outside the module's buffers (DDP broadcasts buffers from rank 0 at every forward);
        merged across processes into `layout_sum` / `layout_count` at the end of the epoch.
        """
        s, n = landmarks.detach().double().sum(0), float(landmarks.shape[0])
        if self._layout_epoch is None:
            self._layout_epoch = [torch.zeros_like(s), 0.0]
        self._layout_epoch[0] += s
        self._layout_epoch[1] += n

    def on_train_epoch_end(self) -> None:
        if self._layout_epoch is None:
            return
        s, n = self._layout_epoch
        self._layout_epoch = None
        n_t = torch.tensor(n, dtype=torch.float64, device=s.device)
        self.layout_sum += self.trainer.strategy.reduce(s, reduce_op="sum").to(self.layout_sum)
        self.layout_count += self.trainer.strategy.reduce(n_t, reduce_op="sum").to(self.layout_count)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, preds, targets = self.model_step(batch)
        self.val_mlme(preds["landmarks_px"], targets["landmarks_px"])
        bs = batch["image"].shape[0]
        self.log("val/loss", loss, on_epoch=True, prog_bar=False, batch_size=bs, sync_dist=True)
        self.log("val/mlme", self.val_mlme, on_epoch=True, prog_bar=True, batch_size=bs)
        if batch_idx == 0 and self.num_overlays > 0 and not self.trainer.sanity_checking:
            k = self.num_overlays
            self._overlay_batch = {
                "image": batch["image"][:k].detach().cpu(),
                "pred": preds["landmarks_px"][:k].detach().cpu(),
                "target": targets["landmarks_px"][:k].detach().cpu(),
                "confidences": preds["confidences"][:k].detach().cpu() if "confidences" in preds else None,
            }

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        loss, preds, targets = self.model_step(batch)
        bs = batch["image"].shape[0]
        self.test_mlme(preds["landmarks_px"], targets["landmarks_px"])
        self.log("test/loss", loss, on_epoch=True, batch_size=bs, sync_dist=True)
        self.log("test/mlme", self.test_mlme, on_epoch=True, batch_size=bs)
        if self.layout_count > 0:
            mean = (self.layout_sum / self.layout_count).float()  # (L, 2) normalised
            h, w = batch["image"].shape[-2:]
            baseline = normalised_to_px(mean, h, w).expand_as(targets["landmarks_px"])
            self.test_baseline(baseline, targets["landmarks_px"])
            self.log("test/mlme_mean_baseline", self.test_baseline, on_epoch=True, batch_size=bs)
        pred68 = preds.get("landmarks68_px")
        if pred68 is not None and "landmarks68_px" in batch and "yaw" in batch:
            self.test_nme.update(pred68, batch["landmarks68_px"], batch["yaw"])
        self.update_test_extras(preds, targets)

    def update_test_extras(self, preds: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> None:
        """Subclasses update further test metrics here (no second forward pass needed)."""

    def on_test_epoch_end(self) -> None:
        if self.test_nme.update_called:
            out = self.test_nme.compute()
            self.log("test/nme", out["all"])
            for name in YAW_BIN_NAMES:
                if torch.isfinite(out[name]):
                    self.log(f"test/nme_{name}", out[name])
            self.test_nme.reset()

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        """-> {"landmarks_px": (B, L, 2) crop px, "confidences": (B, L) in [0, 1], ...}."""
        preds = self.forward_batch(self.channels_last_batch(batch))
        out = {"landmarks_px": preds["landmarks_px"]}
        if "confidences" in preds:
            out["confidences"] = preds["confidences"]
        for key in ("sigma_px", "landmarks3d_px", "landmarks68_px"):
            if key in preds:
                out[key] = preds[key]
        if "index" in batch:
            out["index"] = batch["index"]
        return out

    # ----------------------------------------------------------------------------- overlays
    def run_dir(self) -> Path:
        """Where overlays and figures go: the trainer's log_dir, else default_root_dir."""
        trainer = self.trainer
        return Path(trainer.log_dir or trainer.default_root_dir)

    def on_validation_epoch_end(self) -> None:
        batch, self._overlay_batch = self._overlay_batch, None
        out_dir = self.run_dir()  # every rank: trainer.log_dir is a collective (broadcast) under DDP
        if batch is None or not self.trainer.is_global_zero:
            return
        conf = batch["confidences"]
        pictures = [
            draw_landmark_overlay(
                batch["image"][i], batch["pred"][i], None if conf is None else conf[i], batch["target"][i]
            )
            for i in range(batch["image"].shape[0])
        ]
        grid = overlay_grid(pictures)
        path = save_png(grid, out_dir / "overlays" / f"val_epoch{self.current_epoch:03d}.png")
        for logger in self.loggers:
            if type(logger).__name__ == "WandbLogger":
                logger.log_image(key="val/overlays", images=[grid], step=self.global_step,
                                 caption=[f"epoch {self.current_epoch}: colour = confidence"])
        log.debug("wrote %s", path)

    # ----------------------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        return optimizer_config(self.optimizer_factory(params=self.parameters()), self.scheduler_factory,
                                self.monitor)
