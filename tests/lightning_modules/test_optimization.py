"""lightning_modules.optimization.optimizer_config: the one place a system's scheduler is configured."""

from __future__ import annotations

import functools

import pytest
import torch

from lightning_modules.optimization import optimizer_config


def _opt():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)


def test_without_a_scheduler_only_the_optimiser():
    opt = _opt()
    assert optimizer_config(opt, None, "val/loss") == {"optimizer": opt}


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_the_scheduler_watches_the_monitor_at_its_interval(interval):
    cfg = optimizer_config(_opt(), functools.partial(torch.optim.lr_scheduler.StepLR, step_size=3), "val/mlme",
                           interval)
    sched = cfg["lr_scheduler"]
    assert isinstance(sched["scheduler"], torch.optim.lr_scheduler.StepLR) and sched["scheduler"].step_size == 3
    assert (sched["monitor"], sched["interval"], sched["frequency"]) == ("val/mlme", interval, 1)


def test_a_plateau_scheduler_per_step_and_an_unknown_interval_are_refused():
    plateau = functools.partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="min")
    assert optimizer_config(_opt(), plateau, "val/dist")["lr_scheduler"]["interval"] == "epoch"
    with pytest.raises(ValueError, match="ReduceLROnPlateau on 'val/dist' must step per epoch"):
        optimizer_config(_opt(), plateau, "val/dist", "step")
    with pytest.raises(ValueError, match="interval must be one of"):
        optimizer_config(_opt(), None, "val/dist", "batch")
