"""Per-face test errors written beside a run, for paired statistics (Wilcoxon tests, CED curves)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch


def write_test_errors(trainer: pl.Trainer, batches: list[dict[str, torch.Tensor]]) -> Path | None:
    """Concatenates the per-batch dicts of (B, ...) CPU tensors and saves them as
    ``<default_root_dir>/test_errors.npz`` (``test_errors_rank<r>.npz`` under DDP: each rank's own
    faces). Returns the path, or None when there is nothing to write."""
    if not batches or trainer is None:
        return None
    out = {k: torch.cat([b[k] for b in batches]).numpy() for k in batches[0]}
    name = "test_errors.npz" if trainer.world_size == 1 else f"test_errors_rank{trainer.global_rank}.npz"
    path = Path(trainer.default_root_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    return path
