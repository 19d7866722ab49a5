"""The one system loader: rebuild a trained LightningModule from a file alone.

Two kinds of file hold a system:

- a Lightning checkpoint (``.ckpt``) written by ``experiments.train``: ``state_dict`` plus, under
  :data:`RUN_CONFIG_KEY`, the run's resolved Hydra config (``model``, ``data``, ...), stored by
  :class:`experiments.harness.checkpoint_io.StoreRunConfig`. Checkpoints written before that key
  existed fall back to the run folder's ``<run>/.hydra/config.yaml`` (the checkpoint sitting in
  ``<run>/checkpoints/``);
- a shipped weights file (``.pt``, :mod:`experiments.pretrained`): ``model`` (the resolved model
  config), ``state_dict`` (float32) and ``provenance``, read with ``weights_only=True``.

Every entry point (eval, fit, predict, lift, pretrained, reproduce) reads systems through
:func:`load_system` / :func:`run_config`; errors name the file and the missing key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from experiments.harness.checkpoint_io import RUN_CONFIG_KEY
from experiments.harness.resolvers import register_resolvers
from experiments.train import instantiate_model
from lightning_modules.checkpoint_file import WEIGHTS_KEYS, is_weights_file, read_checkpoint

__all__ = [
    "RUN_CONFIG_KEY",
    "WEIGHTS_KEYS",
    "LoadedSystem",
    "build_system",
    "load_system",
    "read_checkpoint",
    "run_config",
]

@dataclass
class LoadedSystem:
    """A rebuilt system: ``module`` in eval mode on the asked device, ``config`` the run config
    (a DictConfig with at least ``model``; ``data`` where the file records it)."""

    module: torch.nn.Module
    config: DictConfig


def run_config(
    ckpt: str | os.PathLike,
    config: str | os.PathLike | None = None,
    blob: dict[str, Any] | None = None,
) -> DictConfig:
    """The run config of a checkpoint: ``config`` if given (a Hydra run config YAML), else the one the
    file carries, else ``<run>/.hydra/config.yaml`` beside it. KeyError / FileNotFoundError name the file."""
    ckpt = Path(ckpt)
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such run config (given for checkpoint {ckpt})")
        cfg = OmegaConf.load(path)
        source = str(path)
    else:
        blob = read_checkpoint(ckpt) if blob is None else blob
        if is_weights_file(ckpt):
            cfg, source = OmegaConf.create({"model": blob["model"]}), str(ckpt)
        elif RUN_CONFIG_KEY in blob:
            cfg, source = OmegaConf.create(blob[RUN_CONFIG_KEY]), f"{ckpt} [{RUN_CONFIG_KEY}]"
        else:
            path = ckpt.resolve().parent.parent / ".hydra" / "config.yaml"
            if not path.is_file():
                raise FileNotFoundError(
                    f"{ckpt}: the checkpoint holds no run config (key {RUN_CONFIG_KEY!r}) and there is no "
                    f"{path} beside it; pass the run's config (model= / --config)"
                )
            cfg, source = OmegaConf.load(path), str(path)
    if not isinstance(cfg, DictConfig) or "model" not in cfg:
        raise KeyError(f"{source}: missing key 'model' (a Hydra run config is expected)")
    return cfg


def build_system(model_cfg: DictConfig | dict, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Instantiate the model config and load ``state_dict`` into it; the module in eval mode."""
    register_resolvers()
    cfg = model_cfg if isinstance(model_cfg, DictConfig) else OmegaConf.create(model_cfg)
    module = instantiate_model(OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)))
    module.load_state_dict(state_dict)
    return module.eval()


def load_system(
    ckpt: str | os.PathLike,
    device: torch.device | str = "cpu",
    config: str | os.PathLike | None = None,
    model_cfg: DictConfig | dict | None = None,
) -> LoadedSystem:
    """Rebuild the system a checkpoint or weights file holds (see the module doc).

    config: a run config YAML to use instead of the file's; model_cfg: a model config to use instead of
    the run's (``model=`` given on a command line). On CUDA the module's GPU path (channels_last) is on.
    """
    ckpt = Path(ckpt)
    blob = read_checkpoint(ckpt)
    cfg = run_config(ckpt, config, blob) if model_cfg is None else OmegaConf.create({"model": model_cfg})
    module = build_system(cfg.model, blob["state_dict"]).to(device)
    if hasattr(module, "apply_gpu_path"):
        module.apply_gpu_path(device)
    return LoadedSystem(module, cfg)
