"""Models by name, in the manner of timm: `create_model("resll_convnext", image_size=128)`.

A model is a config file, configs/model/<name>.yaml. `create_model` composes configs/train.yaml with
`model=<name>` through Hydra's compose API (as `python -m experiments.train model=<name>` does), sets
the overrides (dotted keys under `model`) and instantiates the LightningModule its `_target_` names.
`list_models("thesis_*")` lists the names; `instantiate_model(cfg.model)` builds a system from a
model config (the one every entry point uses).

    from experiments import create_model, list_models
    model = create_model("tiny", image_size=32, **{"optimizer.lr": 1e-3})
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Any

import hydra
import pytorch_lightning as pl
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from experiments.harness.resolvers import REPO_ROOT, register_resolvers

CONFIG_DIR = REPO_ROOT / "configs"
MODEL_DIR = CONFIG_DIR / "model"
_ABSENT = object()


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the model configs (configs/model/<name>.yaml) matching the shell pattern."""
    return sorted(p.stem for p in MODEL_DIR.glob("*.yaml") if fnmatch.fnmatchcase(p.stem, pattern))


def compose_train_config(overrides: Sequence[str] = ()) -> DictConfig:
    """configs/train.yaml composed with Hydra's compose API and the command-line style `overrides`.

    Hydra's global state of a caller (e.g. a running `@hydra.main` app) is restored afterwards.
    `${hydra:...}` interpolations (run directory names) are not resolvable in the result.
    """
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides))


def model_config(name: str, hydra_overrides: Sequence[str] = (), **overrides: Any) -> DictConfig:
    """The resolved model config of configs/model/<name>.yaml with `overrides` applied.

    overrides: dotted keys below `model` -> Python values, e.g. `image_size=64`,
        `**{"net.backbone.pretrained_path": None}`. A key must exist in the config unless it starts
        with "+" (Hydra's "add" prefix), so a misspelt key fails instead of being ignored. None values
        are dropped, as timm's create_model does, so the config's values stay in effect.
    hydra_overrides: further Hydra command-line overrides (`data=...`, `model/...`).
    """
    known = list_models()
    if name not in known:
        raise ValueError(f"unknown model {name!r}: no {MODEL_DIR / (name + '.yaml')}; known models: {', '.join(known)}")
    cfg = compose_train_config([f"model={name}", *hydra_overrides])
    for key, value in overrides.items():
        if value is None:
            continue
        add = key.startswith("+")
        key = key.lstrip("+")
        if not add and OmegaConf.select(cfg.model, key, default=_ABSENT) is _ABSENT:
            raise KeyError(f"create_model({name!r}): configs/model/{name}.yaml has no key {key!r} "
                           f"(top-level keys: {sorted(cfg.model)}); prefix it with '+' to add it")
        OmegaConf.update(cfg.model, key, value, merge=False, force_add=add)
    resolved = OmegaConf.to_container(cfg.model, resolve=True)  # the model node only: no ${hydra:...} there
    return OmegaConf.create(resolved)  # type: ignore[return-value]


def instantiate_model(model_cfg: DictConfig) -> pl.LightningModule:
    """The LightningModule of a model config (`_target_` and its keyword arguments, `monitor` included)."""
    return hydra.utils.instantiate(model_cfg, _convert_="partial")


def create_model(name: str, hydra_overrides: Sequence[str] = (), **overrides: Any) -> pl.LightningModule:
    """The LightningModule of configs/model/<name>.yaml with `overrides` (see `model_config`)."""
    return instantiate_model(model_config(name, hydra_overrides, **overrides))
