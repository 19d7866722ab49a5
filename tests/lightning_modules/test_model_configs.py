"""Every model config (configs/model/*.yaml, discovered by experiments.list_models) composes with the
real Hydra configs, instantiates through experiments.create_model's path, and trains one step on a
tiny batch of the data its config selects (the procedural datasets, shrunk): finite loss, every
parameter gets a finite gradient, the step changes the system's state. And the monitored metric is
defined once: the checkpoint callback, early stopping and the LR scheduler watch the model's
`monitor`."""

from __future__ import annotations

import functools

import hydra
import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from experiments import create_model, list_models
from experiments.harness.loggers import instantiate_callbacks
from experiments.models import instantiate_model
from tests.harness.compose import compose_config
from tests.harness.test_experiments import shrink

MODELS = list_models()
IMAGE_SIZE = 64
# Landmark sets replaced by a smaller one with the same code path: 1609 FLAME vertices -> 202 (the
# 520-point models train on their own set, on the 300W-LP-format data their config selects).
SMALLER_SET = {"face1609": "face202"}
PLATEAU = {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "_partial_": True, "mode": "min"}


@functools.cache
def _tiny_settings(name: str) -> dict[str, object]:
    """Model keys that make a config cheap: small images for every model, and SMALLER_SET's landmark set."""
    settings: dict[str, object] = {"image_size": IMAGE_SIZE}
    landmark_set = compose_config("train", [f"model={name}"]).model.landmark_set
    if landmark_set in SMALLER_SET:
        settings["landmark_set"] = SMALLER_SET[landmark_set]
    return settings


def tiny_settings(name: str) -> dict[str, object]:
    return dict(_tiny_settings(name))


def tiny_overrides(name: str) -> list[str]:
    """`tiny_settings` as Hydra command-line overrides."""
    return [f"model={name}", *(f"model.{k}={v}" for k, v in tiny_settings(name).items())]


class GradientCheck(pl.Callback):
    """Records the parameters without a gradient, or with a non-finite one, after every backward."""

    def __init__(self) -> None:
        self.missing: set[str] = set()
        self.non_finite: set[str] = set()
        self.backwards = 0

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.backwards += 1
        for k, p in pl_module.named_parameters():
            if p.requires_grad and p.grad is None:
                self.missing.add(k)
            elif p.requires_grad and not torch.isfinite(p.grad).all():
                self.non_finite.add(k)


def test_the_models_are_discovered():
    assert {"resll_convnext", "tiny", "zhao2d", "kp520_mobilenetv2", "kp520_resnet18", "kp520_resnet50",
            "deep_mds", "zhao_depth", "mobileface", "lift_meanshape"} <= set(MODELS)
    assert len(list_models("thesis_t4*")) == 16
    assert list_models("kp520_*") == ["kp520_mobilenetv2", "kp520_resnet18", "kp520_resnet50"]


@pytest.mark.parametrize("name", MODELS)
def test_model_config_trains_one_step(name, tmp_path):
    cfg = compose_config("train", tiny_overrides(name), tmp_path)
    shrink(cfg.data)
    OmegaConf.resolve(cfg)
    torch.manual_seed(0)
    model = instantiate_model(cfg.model)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="partial")
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    check = GradientCheck()
    trainer = pl.Trainer(fast_dev_run=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[check])
    trainer.fit(model, datamodule=datamodule)
    if any(p.requires_grad for p in model.parameters()):  # the lifting baselines only accumulate a mean shape
        loss = trainer.callback_metrics.get("train/loss")
        assert loss is not None and torch.isfinite(loss), f"{name}: train/loss {loss}"
        assert check.backwards == 1, f"{name}: {check.backwards} backward passes"
        assert not check.missing, f"{name}: parameters without a gradient: {sorted(check.missing)[:5]}"
        assert not check.non_finite, f"{name}: non-finite gradients: {sorted(check.non_finite)[:5]}"
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k].detach().cpu())]
    assert changed, f"{name}: one training step changed no parameter or buffer"
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def lr_scheduler_monitor(model: pl.LightningModule) -> str:
    """The metric the system's LR scheduler watches."""
    out = model.configure_optimizers()
    assert isinstance(out, dict) and "lr_scheduler" in out, f"{type(model).__name__}: no LR scheduler configured"
    return out["lr_scheduler"]["monitor"]


@pytest.mark.parametrize("name", MODELS)
def test_the_monitored_metric_is_defined_once(name, tmp_path):
    """ModelCheckpoint, EarlyStopping (configs/callbacks) and the system's own LR scheduler (a
    ReduceLROnPlateau set in for the check) and EarlyStopping all watch `model.monitor`."""
    cfg = compose_config("train", [*tiny_overrides(name), "callbacks=[model_checkpoint,early_stopping]"], tmp_path)
    OmegaConf.resolve(cfg)
    monitor, mode = cfg.model.monitor, cfg.model.monitor_mode
    callbacks = {type(c).__name__: c for c in instantiate_callbacks(cfg.callbacks)}
    assert callbacks["ModelCheckpoint"].monitor == monitor and callbacks["ModelCheckpoint"].mode == mode
    assert callbacks["EarlyStopping"].monitor == monitor
    assert callbacks["EarlyStopping"].mode == mode

    overrides = tiny_settings(name)
    if "scheduler" in cfg.model:
        overrides["scheduler"] = PLATEAU
    if "scheduler_interval" in cfg.model:  # MobileFace steps its scheduler per iteration; a plateau needs epochs
        overrides["scheduler_interval"] = "epoch"
    if "lr_schedule" in cfg.model:  # Deep-MDS: the `scheduler` partial is used only with lr_schedule=scheduler
        overrides["lr_schedule"] = "scheduler"
    model = create_model(name, **overrides)
    if "scheduler" in cfg.model:
        assert lr_scheduler_monitor(model) == monitor
    else:  # the lifting baselines: no optimizer, no scheduler
        assert model.configure_optimizers() is None
    for callback in model.configure_callbacks() or []:  # a system's own EarlyStopping (the lifting systems)
        assert callback.monitor == monitor, f"{name}: {type(callback).__name__} watches {callback.monitor}"
