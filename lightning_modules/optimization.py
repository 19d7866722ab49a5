"""What every system's ``configure_optimizers`` returns: the optimiser and, optionally, its LR scheduler.

One place decides how a scheduler is stepped, so a monitored scheduler (ReduceLROnPlateau) always
watches the system's ``monitor`` metric, the one the checkpoint callback and early stopping watch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

INTERVALS = ("epoch", "step")


def optimizer_config(optimizer: torch.optim.Optimizer, scheduler_factory: Callable[..., Any] | None,
                     monitor: str, interval: str = "epoch") -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` dict.

    Args:
        optimizer: the built optimiser.
        scheduler_factory: ``factory(optimizer=...) -> scheduler`` (a Hydra ``_partial_`` config), or None.
        monitor: the metric a ReduceLROnPlateau scheduler watches (the system's ``monitor``).
        interval: "epoch" (step the scheduler after every epoch) or "step" (after every optimiser step;
            schedules given in iterations, e.g. MobileFace's 1e-4 -> 1e-5 after 2e5 iterations). A
            ReduceLROnPlateau needs "epoch": its metric exists only after validation.
    """
    if interval not in INTERVALS:
        raise ValueError(f"scheduler interval must be one of {INTERVALS}, got {interval!r}")
    if scheduler_factory is None:
        return {"optimizer": optimizer}
    scheduler = scheduler_factory(optimizer=optimizer)
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau) and interval != "epoch":
        raise ValueError(f"ReduceLROnPlateau on {monitor!r} must step per epoch (the metric exists only after "
                         f"validation), got scheduler interval {interval!r}")
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": monitor, "interval": interval, "frequency": 1}}
