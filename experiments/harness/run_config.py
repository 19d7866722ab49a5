"""What a run directory was started with, so that a rerun resumes only the run it names.

A run directory is named by the command-line overrides (configs/hydra/default.yaml), so the same
command after a change of a config file's default (a loss option, a data setting) lands in the same
directory. Resuming its last.ckpt there would silently continue a run of the old configuration. At
the first start `<run_dir>/run_config.yaml` records the resolved `model`, `data` and `seed`; a resume
compares the current ones with it and stops with the keys that differ.

Not compared: how data is loaded (workers, pinning), CPU threads, and folders (`*_dir`, `*_root`:
data may move), nor `trainer` (a longer `trainer.max_epochs` extends a finished run).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf

FILENAME = "run_config.yaml"
COMPARED = ("model", "data", "seed")
IGNORED_KEYS = ("num_workers", "pin_memory", "persistent_workers", "prefetch_factor", "num_threads")
IGNORED_SUFFIXES = ("_dir", "_root")


def _ignored(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf in IGNORED_KEYS or leaf.endswith(IGNORED_SUFFIXES)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def snapshot(cfg: DictConfig) -> dict[str, Any]:
    """The compared part of a resolved run config, flattened: {'model.loss.beta': 0.5, ...}."""
    tree = {k: OmegaConf.to_container(cfg[k], resolve=True) if isinstance(cfg[k], DictConfig) else cfg[k]
            for k in COMPARED if k in cfg}
    return {k: v for k, v in _flatten(tree).items() if not _ignored(k)}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key whose value differs or exists on one side only."""
    missing = "<absent>"
    return [f"{k}: {old.get(k, missing)!r} -> {new.get(k, missing)!r}"
            for k in sorted(old.keys() | new.keys()) if old.get(k, missing) != new.get(k, missing)]


def record(cfg: DictConfig, run_dir: str | Path) -> Path:
    """Write `<run_dir>/run_config.yaml` (atomically; on rank 0 only under DDP)."""
    path = Path(run_dir) / FILENAME
    if os.environ.get("LOCAL_RANK", "0") != "0" or os.environ.get("NODE_RANK", "0") != "0":
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{FILENAME}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump(snapshot(cfg), sort_keys=True))
    os.replace(tmp, path)
    return path


def check_same_run(cfg: DictConfig, run_dir: str | Path, checkpoint: str | Path) -> None:
    """Raise ValueError if `run_dir` was started with another model / data / seed than `cfg`.

    A run directory without run_config.yaml (written before this check existed) passes.
    """
    path = Path(run_dir) / FILENAME
    if not path.is_file():
        return
    old = yaml.safe_load(path.read_text())
    if not isinstance(old, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(old).__name__}")
    diff = differences(old, snapshot(cfg))
    if diff:
        shown = "\n  ".join(diff[:12]) + (f"\n  ... and {len(diff) - 12} more" if len(diff) > 12 else "")
        raise ValueError(
            f"{path}: this run directory was started with another configuration, so {checkpoint} is not "
            f"this run's checkpoint. Changed since it started:\n  {shown}\n"
            "Rerun with resume=false to start this run over here (its checkpoints are replaced), or move "
            f"{Path(run_dir)} aside to keep the old run."
        )
