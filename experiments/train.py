"""Training entry point.

    python -m experiments.train model=resll_convnext [data=...] [trainer=...] [experiment=...] [key=value ...]
    make train MODEL=resll_convnext

Instantiates datamodule, model, callbacks and loggers from the Hydra config, seeds everything, fits
(resuming from the run's last checkpoint when the same command ran before), tests with the best
checkpoint and prints the final metrics and where the run's files are.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

import datamodules.registry  # noqa: F401 - registers the datasets (and any data configs they store in Hydra)
from experiments.harness.checkpoint_io import AtomicCheckpointIO, StoreRunConfig
from experiments.harness.loggers import instantiate_callbacks, instantiate_loggers
from experiments.harness.resolvers import register_resolvers
from experiments.harness.run_config import check_same_run, record
from experiments.harness.summary import print_summary
from experiments.models import instantiate_model  # other entry points import it from here too

log = logging.getLogger("experiments.train")
register_resolvers()

def resume_checkpoint(cfg: DictConfig) -> str | None:
    """The checkpoint to start from: `ckpt_path` if given, else the run's last.ckpt when resuming.

    A resume first checks that the run directory was started with the same model, data and seed
    (experiments/harness/run_config.py); a start records them there.
    """
    run_dir = Path(cfg.paths.output_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    if not cfg.get("ckpt_path") and cfg.get("resume", True) and last.is_file():
        check_same_run(cfg, run_dir, last)
        log.info("Resuming from %s", last)
        return str(last)
    record(cfg, run_dir)
    return str(cfg.ckpt_path) if cfg.get("ckpt_path") else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configuration; returns the final metrics (floats) and paths."""
    OmegaConf.resolve(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    if cfg.get("deterministic"):
        torch.use_deterministic_algorithms(True, warn_only=True)

    datamodule: pl.LightningDataModule = hydra.utils.instantiate(cfg.data, _convert_="partial")
    model = instantiate_model(cfg.model)
    callbacks = [*instantiate_callbacks(cfg.get("callbacks")), StoreRunConfig(cfg)]
    loggers = instantiate_loggers(cfg.get("logger"))
    trainer: pl.Trainer = hydra.utils.instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()]
    )
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]

    notes = [f"Schedule: {cfg.get('schedule_name', 'as configured')}"]
    log.info(notes[0])
    if cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume_checkpoint(cfg))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}

    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("test", True):
        if not best:
            notes.append("No best checkpoint was written: testing the current weights.")
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1})

    if "test/mlme" in metrics and metrics.get("test/mlme_mean_baseline"):
        ours, base = metrics["test/mlme"], metrics["test/mlme_mean_baseline"]
        notes.append(f"Test MLME {ours:.2f} px vs {base:.2f} px for the training set's mean layout "
                     f"({base / max(ours, 1e-9):.1f}x better).")
    if trainer.is_global_zero:
        shown = {k: v for k, v in metrics.items() if k.startswith(("test/", "val/"))} or metrics
        print_summary(shown, cfg.paths.output_dir, best or None, notes)
    return {"metrics": metrics, "best_ckpt": best, "output_dir": cfg.paths.output_dir,
            "global_step": trainer.global_step}


def _choose_schedule(argv: list[str]) -> list[str]:
    """Without an explicit `schedule=`, use the paper's schedule on a GPU and the CPU one otherwise."""
    if any(a.startswith(("schedule=", "+schedule=", "debug=")) for a in argv):
        return argv
    if any(a in ("-h", "--help", "--cfg", "--info") or a.startswith("--cfg") for a in argv):
        return argv
    choice = "paper" if torch.cuda.is_available() else "cpu"
    if choice == "cpu":
        print("No CUDA device: using the CPU schedule (configs/schedule/cpu.yaml; `schedule=paper` for the "
              "paper's full schedule).", flush=True)
    return [*argv, f"schedule={choice}"]


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    result = train(cfg)
    monitor = cfg.model.get("monitor")
    return result["metrics"].get(monitor) if monitor else None


def main() -> None:
    sys.argv = [sys.argv[0], *_choose_schedule(sys.argv[1:])]
    _hydra_main()


if __name__ == "__main__":
    main()
