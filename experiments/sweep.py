"""W&B sweeps with an offline fallback.

    make sweep SWEEP=thesis_t41_losses      # == python -m experiments.sweep thesis_t41_losses

Online (API key and server reachable): creates the sweep from experiments/sweeps/<name>.yaml and starts
an agent; the agent calls `python -m experiments.train key=value ...` (`${args_no_hyphens}`), the form
Hydra parses. Offline: runs the same grid as a Hydra multirun, each run logged to W&B offline
(`make sync` uploads them later).
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
from pathlib import Path

from experiments import experiment_files
from experiments.harness.resolvers import wandb_offline_reason

SWEEPS = experiment_files.folder("sweep")


def load_sweep(name_or_path: str) -> dict:
    """experiments/sweeps/<name>.yaml (or a path), validated (experiments/experiment_files.py)."""
    return experiment_files.load("sweep", name_or_path)


def grid_points(spec: dict) -> list[list[str]]:
    """Every grid point as the `key=value` arguments a W&B agent passes with ${args_no_hyphens}."""
    names = list(spec["parameters"])
    values = [p.get("values", [p.get("value")]) for p in spec["parameters"].values()]
    return [[f"{n}={v}" for n, v in zip(names, combo, strict=True)] for combo in itertools.product(*values)]


def multirun_args(spec: dict) -> list[str]:
    """The same grid as Hydra multirun arguments: key=v1,v2,..."""
    args = []
    for name, p in spec["parameters"].items():
        vals = p.get("values", [p.get("value")])
        args.append(f"{name}={','.join(str(v) for v in vals)}")
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="name of experiments/sweeps/<name>.yaml or a path")
    parser.add_argument("--offline", action="store_true", help="force the Hydra multirun fallback")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    spec = load_sweep(args.sweep)
    reason = "--offline" if args.offline else wandb_offline_reason()
    if reason is None:
        path = args.sweep if Path(args.sweep).is_file() else str(SWEEPS / f"{args.sweep}.yaml")
        cmd = ["wandb", "sweep", "--project", spec.get("project", "dense-face-suite"), path]
        print(" ".join(cmd))
        if args.dry_run:
            return 0
        out = subprocess.run(cmd, capture_output=True, text=True)
        print(out.stdout + out.stderr)
        match = re.search(r"wandb agent (\S+)", out.stdout + out.stderr)
        if out.returncode != 0 or not match:
            print("could not create the sweep; rerun with --offline for the Hydra multirun", file=sys.stderr)
            return 1
        return subprocess.call(["wandb", "agent", match.group(1)])
    print(f"W&B offline ({reason}): running the same grid ({len(grid_points(spec))} runs) as a Hydra multirun.")
    cmd = [sys.executable, "-m", "experiments.train", "-m", *multirun_args(spec), *spec.get("fixed", [])]
    print(" ".join(cmd))
    return 0 if args.dry_run else subprocess.call(cmd)


if __name__ == "__main__":
    raise SystemExit(main())
