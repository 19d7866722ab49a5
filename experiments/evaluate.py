"""Evaluate a checkpoint on a datamodule's test split.

    make eval CKPT=logs/train/runs/<run>/checkpoints/best-epoch010.ckpt [DATA=aflw2000]

The model config is the one the checkpoint carries (experiments.checkpoints) unless `model=` is given,
so the network that is rebuilt is the one that was trained.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from experiments.checkpoints import run_config
from experiments.harness.checkpoint_io import AtomicCheckpointIO
from experiments.harness.loggers import instantiate_loggers
from experiments.harness.resolvers import register_resolvers
from experiments.harness.summary import print_summary
from experiments.train import instantiate_model

log = logging.getLogger("experiments.evaluate")
register_resolvers()


def evaluate(cfg: DictConfig, model_from_run: bool = True) -> dict[str, float]:
    ckpt = Path(cfg.ckpt_path)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    if model_from_run:
        with open_dict(cfg):
            cfg.model = run_config(ckpt).model
        log.info("Model config taken from the training run of %s", ckpt)
    OmegaConf.resolve(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="partial")
    model = instantiate_model(cfg.model)
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=instantiate_loggers(cfg.get("logger")) or False, plugins=[AtomicCheckpointIO()]
    )
    trainer.test(model, datamodule=datamodule, ckpt_path=str(ckpt))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    print_summary(metrics, cfg.paths.output_dir, str(ckpt), [])
    return metrics


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    overrides = HydraConfig.get().overrides.task
    evaluate(cfg, model_from_run=not any(o.startswith("model=") for o in overrides))


if __name__ == "__main__":
    main()
