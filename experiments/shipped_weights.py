"""Shipped pretrained weights: export a trained run's module to one small file, load it back by name.

A weights file (experiments/weights/<name>.pt) holds `model` (the run's resolved Hydra model config, plain
containers), `state_dict` (float32 tensors, no optimiser state) and `provenance` (run directory, checkpoint,
command, test metrics): everything needed to rebuild the LightningModule without the run directory. It
is read with `torch.load(weights_only=True)` (experiments.checkpoints), so a weights file cannot run code.
The model card beside it (<name>.md, experiments.reports.pretrained_card) says how it was trained and what
it measures. The command line is experiments.pretrained.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments import experiment_files
from experiments.checkpoints import load_system, read_checkpoint, run_config
from experiments.harness.resolvers import REPO_ROOT

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"



def training_overrides(name: str) -> list[str]:
    """The experiments.train overrides that retrain shipped model `name`: its experiment file
    configs/experiment/<name>.yaml (one experiment system: experiments/experiment_files.py), on the paper's
    full schedule on any machine (a shipped model is never trained on the CPU schedule's 8-minute cap)."""
    if name not in trainable():
        raise KeyError(f"no experiment file configs/experiment/{name}.yaml for shipped model {name!r}; "
                       f"trainable: {trainable()}")
    return [f"experiment={name}", "schedule=paper"]


def trainable() -> list[str]:
    """Shipped models that have an experiment file of their name (configs/experiment/<name>.yaml)."""
    return sorted(set(available()) & set(experiment_files.names("experiment")))


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def weights_path(name_or_path: str | Path) -> Path:
    """A path ending in .pt as given, else the shipped experiments/weights/<name>.pt."""
    return Path(name_or_path) if str(name_or_path).endswith(".pt") else WEIGHTS_DIR / f"{name_or_path}.pt"


def available() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))


def export(ckpt: str | Path, name: str, config: str | Path | None = None, metrics: dict | None = None,
           out_dir: Path | None = None) -> Path:
    """Write <out_dir or WEIGHTS_DIR>/<name>.pt from a Lightning checkpoint and its run's Hydra config
    (default <run>/.hydra/config.yaml, the run being the checkpoint folder's parent)."""
    ckpt = Path(ckpt).resolve()
    state = read_checkpoint(ckpt)
    cfg = run_config(ckpt, config, state)
    blob = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "state_dict": {k: v.float() if v.is_floating_point() else v for k, v in state["state_dict"].items()},
        "provenance": {"run_dir": _relative(ckpt.parent.parent), "checkpoint": ckpt.name,
                       "epoch": int(state.get("epoch", -1)), "global_step": int(state.get("global_step", -1)),
                       "command": " ".join(sys.argv), "test_metrics": dict(metrics or {})},
    }
    out = (out_dir or WEIGHTS_DIR) / f"{name}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    return out


def _existing(name_or_path: str | Path) -> Path:
    path = weights_path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file (shipped: {', '.join(available()) or 'none'})")
    return path


def load(name_or_path: str | Path) -> torch.nn.Module:
    """The LightningModule of a weights file (a name in experiments/weights/ or a path), in eval mode."""
    return load_system(_existing(name_or_path)).module


def provenance(name_or_path: str | Path) -> dict:
    return read_checkpoint(_existing(name_or_path))["provenance"]
