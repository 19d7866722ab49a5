"""Instantiate loggers and callbacks from config; W&B never blocks or fails a run."""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig
from pytorch_lightning import Callback
from pytorch_lightning.loggers import Logger

from experiments.harness.resolvers import wandb_offline_reason

log = logging.getLogger(__name__)


def instantiate_callbacks(cfg: DictConfig | None) -> list[Callback]:
    """One callback per entry of the `callbacks` group (entries without `_target_` are skipped)."""
    if not cfg:
        return []
    return [hydra.utils.instantiate(c) for c in cfg.values() if isinstance(c, DictConfig) and "_target_" in c]


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    """Loggers of the `logger` group. W&B goes offline without network or key, and is dropped
    (with a warning, never an exception) if it cannot start at all."""
    loggers: list[Logger] = []
    if not cfg:
        return loggers
    for lcfg in cfg.values():
        if not isinstance(lcfg, DictConfig) or "_target_" not in lcfg:
            continue
        if "wandb" in str(lcfg._target_).lower():
            logger = _start_wandb(lcfg)
            if logger is not None:
                loggers.append(logger)
            continue
        loggers.append(hydra.utils.instantiate(lcfg))
    return loggers


def _start_wandb(lcfg: DictConfig) -> Logger | None:
    reason = wandb_offline_reason()
    try:
        logger = hydra.utils.instantiate(lcfg, offline=reason is not None or bool(lcfg.get("offline")))
        _ = logger.experiment  # start the run now, so a failure surfaces here and not mid-training
    except Exception as err:  # noqa: BLE001 - W&B must never fail a run
        log.warning("W&B logger disabled: %s: %s. The CSV logger still records the run.", type(err).__name__, err)
        return None
    if reason is not None:
        log.info("W&B is logging offline (%s). Upload later with `make sync`.", reason)
    return logger
