"""Checkpoint files: atomic writes (a kill during a save never leaves a corrupt checkpoint behind) and the
run config stored inside each checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning import Callback
from pytorch_lightning.plugins.io import TorchCheckpointIO


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes `<path>.tmp-<pid>`, fsyncs it, then renames it over `<path>` (atomic on POSIX)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        """Our checkpoints carry hyper-parameters as Python objects (e.g. the optimizer partial), so they
        are loaded with `weights_only=False`: load only checkpoints you trust (your own runs)."""
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=bool(weights_only))
        except TypeError:  # Lightning < 2.4: no weights_only argument
            return super().load_checkpoint(path, map_location=map_location)


RUN_CONFIG_KEY = "suite_config"  # the resolved run config inside every checkpoint (experiments.checkpoints)


class StoreRunConfig(Callback):
    """Stores the run's resolved Hydra config (plain containers) in every checkpoint under
    :data:`RUN_CONFIG_KEY`, so that a checkpoint alone rebuilds its system (experiments.checkpoints)."""

    def __init__(self, cfg: DictConfig | dict[str, Any]) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_CONFIG_KEY] = self.config
