"""Compose the real Hydra configs the way `python -m experiments.train` does, for tests."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from experiments.harness.resolvers import REPO_ROOT, register_resolvers

CONFIG_DIR = str(REPO_ROOT / "configs")


def compose_config(name: str, overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The composed config with hydra's runtime set, so `${hydra:...}` interpolations resolve.

    `output_dir` replaces the run directory (tests write into tmp_path, never into logs/).
    """
    register_resolvers()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.output_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO_ROOT / "configs" / group).glob("*.yaml"))
