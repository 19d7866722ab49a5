"""Shipped pretrained weights from the command line: retrain, export, list, re-measure a card.

    python -m experiments.pretrained train zhao_depth_ibug68     # retrain a shipped model (make pretrained)
    python -m experiments.pretrained export --ckpt RUN/checkpoints/best.ckpt --name my_model
    python -m experiments.pretrained list
    python -m experiments.pretrained card zhao_depth_ibug68 --minutes 20  # re-measure on the current world

The weights files and how they are read: experiments.shipped_weights.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from experiments.reports.pretrained_card import card
from experiments.reproduce import best_checkpoint, last_metrics
from experiments.shipped_weights import (
    REPO_ROOT,
    WEIGHTS_DIR,
    available,
    export,
    provenance,
    trainable,
    training_overrides,
)


def train(name: str) -> Path:
    """Train shipped model `name` from its experiment file (``training_overrides``) into
    logs/pretrained/<name> (resumes a killed run), export its best checkpoint with its test metrics, and
    write the model card. Returns the weights file."""
    run = REPO_ROOT / "logs" / "pretrained" / name
    cmd = [sys.executable, "-m", "experiments.train", *training_overrides(name), "task_name=pretrained",
           f"hydra.run.dir={run}"]
    print("$", " ".join(cmd), flush=True)
    start = time.time()
    subprocess.check_call(cmd, cwd=REPO_ROOT)
    minutes = (time.time() - start) / 60
    ckpt = best_checkpoint(run)
    if ckpt is None:
        raise FileNotFoundError(f"{run / 'checkpoints'}: the run wrote no checkpoint")
    metrics = {k: v for k, v in last_metrics(run).items() if k.startswith("test/")}
    out = export(ckpt, name, metrics=metrics)
    write_card(name, minutes)
    return out


def write_card(name: str, minutes: float | None = None) -> Path:
    """<name>.md beside the weights: how it was trained, where the weights came from, what they measure."""
    path = WEIGHTS_DIR / f"{name}.md"
    path.write_text(card(name, training_overrides(name), provenance(name), minutes))
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("export", help="checkpoint -> experiments/weights/<name>.pt")
    ex.add_argument("--ckpt", required=True)
    ex.add_argument("--name", required=True)
    ex.add_argument("--config", help="Hydra run config (default: <ckpt>/../../.hydra/config.yaml)")
    ex.add_argument("--metric", action="append", default=[], help="key=value test metric to record")
    sub.add_parser("list", help="the shipped weights and where they came from")
    tr = sub.add_parser("train", help="retrain a shipped model from its experiment file and export it")
    tr.add_argument("name", choices=trainable())
    cd = sub.add_parser("card", help="re-measure the model card of shipped weights on the current world")
    cd.add_argument("name", choices=trainable())
    cd.add_argument("--minutes", type=float, help="the training time to keep on the card (minutes)")
    args = ap.parse_args(argv)
    if args.cmd == "train":
        print(f"wrote {train(args.name)} and its model card")
    elif args.cmd == "card":
        print(f"wrote {write_card(args.name, args.minutes)}")
    elif args.cmd == "export":
        metrics = {k: float(v) for k, v in (m.split("=", 1) for m in args.metric)}
        print(f"wrote {export(args.ckpt, args.name, args.config, metrics)}")
    else:
        for name in available():
            p = provenance(name)
            print(f"{name}: epoch {p['epoch']}, {p['checkpoint']} of {p['run_dir']}; test {p['test_metrics']}")


if __name__ == "__main__":
    main()
