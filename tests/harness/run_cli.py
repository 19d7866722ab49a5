"""Run the real training entry point in a subprocess (as `make train` does)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from experiments.harness.resolvers import REPO_ROOT


def train_cmd(overrides: list[str], run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "experiments.train", *overrides, f"hydra.run.dir={run_dir}"]


def env_for_tests(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(tmp_path),
               FACESUITE_DATA_ROOT=os.environ.get("FACESUITE_DATA_ROOT", str(REPO_ROOT / "data")),
               PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return env


def run_train(overrides: list[str], run_dir: Path, tmp_path: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(train_cmd(overrides, run_dir), cwd=REPO_ROOT, env=env_for_tests(tmp_path),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"train failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def csv_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of every metric in the CSV logger's metrics.csv."""
    files = list(run_dir.rglob("metrics.csv"))
    assert files, f"no metrics.csv under {run_dir}"
    out: dict[str, float] = {}
    with open(files[0]) as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if v not in ("", None):
                    out[k] = float(v)
    return out
