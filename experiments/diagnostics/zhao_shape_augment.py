"""Diagnostic: does training-time shape augmentation make Zhao's depth MLP generalise to another face model?

For each `ShapeAugment` setting (per-axis proportions `scale_xyz`, per-landmark 3D `jitter_iod`) trains the
MLP on one source and tests on held-out faces of every direction asked for (FLAME -> BFM, BFM -> FLAME,
both -> both: the stand-in for real faces, which come from neither model), and prints the depth error
(shape3d.depth_error, / outer-eye distance) of the MLP and of the mean shape of its training faces, and
their ratio (lower: the MLP is better).

Usage: .venv/bin/python -m experiments.diagnostics.zhao_shape_augment --aug 0,0 0.1,0 0,0.03
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from experiments.reports.zhao_factors import compare
from experiments.train import instantiate_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DIRECTIONS = {"flame_to_bfm": (0.0, 1.0), "bfm_to_flame": (1.0, 0.0), "both": (0.5, 0.5)}


def train(train_bfm: float, eval_bfm: float, scale: float, jitter: float, n_train: int, epochs: int,
          seed: int = 0):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train.yaml", overrides=[
            "model=zhao_depth", f"data.n_train={n_train}", "data.n_val=300", "data.n_test=1000",
            f"data.bfm_fraction={train_bfm}", f"data.eval_bfm_fraction={eval_bfm}",
            f"data.augment.scale_xyz={scale}", f"data.augment.jitter_iod={jitter}", f"seed={seed}",
        ])
    pl.seed_everything(seed)
    dm = instantiate(cfg.data, _convert_="partial")
    dm.setup()
    module = instantiate_model(cfg.model)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=2)
    trainer.fit(module, datamodule=dm)
    return module.eval(), dm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--aug", nargs="+", default=["0,0", "0.1,0", "0,0.03"], help="scale_xyz,jitter_iod pairs")
    ap.add_argument("--directions", nargs="+", default=list(DIRECTIONS), choices=list(DIRECTIONS))
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| scale_xyz | jitter_iod | direction | depth err MLP | depth err mean shape | ratio | minutes |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for aug in args.aug:
        scale, jitter = (float(x) for x in aug.split(","))
        for name in args.directions:
            t0 = time.time()
            module, dm = train(*DIRECTIONS[name], scale, jitter, args.n_train, args.epochs)
            res = compare(module.lift, dm.shapes["train"].mean(0), dm.shapes["test"], dm.view, seed=3)
            mlp, base = res["model"].mean().item(), res["meanshape"].mean().item()
            print(f"| {scale} | {jitter} | {name} | {mlp:.4f} | {base:.4f} | {mlp / base:.3f} | "
                  f"{(time.time() - t0) / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
