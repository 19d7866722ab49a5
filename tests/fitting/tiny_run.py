"""An untrained tiny training run on disk (checkpoint + .hydra/config.yaml), for the fit CLI tests."""

from __future__ import annotations

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.harness.resolvers import register_resolvers
from experiments.train import instantiate_model

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_untrained_tiny_run(folder: Path, seed: int = 0) -> Path:
    """Write ``folder``/checkpoints/last.ckpt (the tiny model, random weights of ``seed``) and the
    run config ``folder``/.hydra/config.yaml; returns the checkpoint's path."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO_ROOT / "configs"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["model=tiny", "data=synthetic"])
    model_cfg = OmegaConf.create({"model": OmegaConf.to_container(cfg.model, resolve=False)})
    OmegaConf.resolve(model_cfg)
    (folder / "checkpoints").mkdir(parents=True)
    (folder / ".hydra").mkdir()
    torch.manual_seed(seed)
    ckpt = folder / "checkpoints" / "last.ckpt"
    torch.save({"state_dict": instantiate_model(model_cfg.model).state_dict()}, ckpt)
    OmegaConf.save(model_cfg, folder / ".hydra" / "config.yaml")
    return ckpt
