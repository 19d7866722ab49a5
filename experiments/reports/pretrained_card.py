"""Model card of a shipped lifting model (experiments/weights/<name>.md), measured when it is written.

    python -m experiments.reports.pretrained_card --aflw2000 /path/to/AFLW2000   # the shipped model on real data

Measures the shipped lifter against the mean-face baseline of `make lift METHOD=meanshape` on faces no
training split used: fresh FLAME- and BFM-format identities under the data config's realistic views
(per |yaw| bin), and the procedural AFLW2000-3D-format set read by the real loader (exact 2D from
pt3d_68, the 3DDFA conventions). Error: shape3d.depth_error (mean |depth error| after removing each
face's mean depth, / the 3D outer-eye distance).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from omegaconf import OmegaConf

from datamodules.aflw2000 import Aflw2000DataModule
from datamodules.landmarks3d import ViewConfig, bfm_in_flame_frame, flame_landmarks68, sample_views
from datamodules.writers.threeddfa import EXP_INTENSITY_MAX
from experiments import shipped_weights
from experiments.lifting import lift_meanshape, mean_face_landmarks
from lightning_modules.metrics.shape3d import depth_error

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.01))
N_FACES, SEED = 1000, 9001  # seeds no training split uses (splits use seed * 101 + 1..3)


@torch.no_grad()
def _errors(lift, xy: torch.Tensor, gt: torch.Tensor, mean_face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mlp = lift(xy.float()).double()
    base = lift_meanshape(xy.double(), mean_face)
    return depth_error(mlp, gt.double()), depth_error(base, gt.double())


def procedural_rows(lift, mean_face: torch.Tensor) -> list[tuple[str, float, float]]:
    """(label, model error, mean-face error) per source and |yaw| bin, on fresh identities."""
    cfg = OmegaConf.load(CONFIGS / "data" / "landmarks3d.yaml")
    fk, bk = OmegaConf.to_container(cfg.flame_kwargs), OmegaConf.to_container(cfg.bfm_kwargs)
    view = ViewConfig(**OmegaConf.to_container(cfg.view))
    rows = []
    for source, faces in (("FLAME-format", flame_landmarks68(N_FACES, SEED, **fk)),
                          ("BFM-format", bfm_in_flame_frame(N_FACES, SEED, fk, bk))):
        v = sample_views(faces, view, torch.Generator().manual_seed(SEED))
        e_model, e_base = _errors(lift, v["landmarks_px"], v["landmarks3d"], mean_face)
        rows.append((f"{source}, all views", e_model.mean().item(), e_base.mean().item()))
        for lo, hi in YAW_BINS:
            m = (v["yaw"].abs() >= lo) & (v["yaw"].abs() < hi)
            rows.append((f"{source}, yaw +-{lo:.0f}-{min(hi, 90):.0f} deg", e_model[m].mean().item(), e_base[m].mean().item()))
    return rows


def aflw2000_row(lift, mean_face: torch.Tensor, n: int = 200, data_dir: str | None = None) -> tuple[str, float, float]:
    """AFLW2000-3D via its loader: the real folder (`data_dir`), or the procedural AFLW2000-3D-format set
    (n images, cached under data/procedural). Lifts the exact 2D of pt3d_68; (label, model, mean face)."""

    dm = Aflw2000DataModule(data_dir=data_dir, n=n, image_size=128, batch_size=256, num_workers=0)
    dm.setup("test")
    e_model, e_base = [], []
    for batch in dm.test_dataloader():
        a, b = _errors(lift, batch["landmarks_px"], batch["landmarks3d"], mean_face)
        e_model.append(a)
        e_base.append(b)
    e_model, e_base = torch.cat(e_model), torch.cat(e_base)
    label = (f"AFLW2000-3D ({data_dir}, {e_model.numel()} images, exact 2D)" if data_dir else
             f"AFLW2000-3D format ({n} images, exact 2D; expressions neutral to strong: N(0, 1) x "
             f"U(0, {EXP_INTENSITY_MAX:g}) sd; mouths closed to open)")
    return label, e_model.mean().item(), e_base.mean().item()


def card(name: str, overrides: list[str] | None, prov: dict, minutes: float | None = None) -> str:
    module = shipped_weights.load(name)
    mean_face = mean_face_landmarks()
    rows = [*procedural_rows(module.lift, mean_face), aflw2000_row(module.lift, mean_face)]
    n_params = sum(p.numel() for p in module.parameters())
    lines = [
        f"# {name}",
        "",
        f"`{type(module).__name__}` ({n_params:,} parameters), weights in `experiments/weights/{name}.pt`. Used by",
        "`make lift INPUT=in.npy OUTPUT=out.npy` when no `CKPT` is given; in Python:",
        f"`experiments.shipped_weights.load({name!r}).lift(xy_px)` ((N, 68, 2) px -> (N, 68, 3) px).",
        "",
        "## Training",
        "",
        f"- command: `python -m experiments.pretrained train {name}` (`make pretrained`)",
        f"- experiment: `configs/experiment/{name}.yaml`; overrides `{' '.join(overrides or [])}`",
        f"- run: `{prov['run_dir']}`, checkpoint `{prov['checkpoint']}` (epoch {prov['epoch']}, "
        f"step {prov['global_step']})" + (f", {minutes:.0f} min on this machine" if minutes else ""),
        "- test split of the run (held-out identities, both face models): "
        + ", ".join(f"{k} {v:.4g}" for k, v in sorted(prov["test_metrics"].items())),
        "",
        "## On faces it never saw",
        "",
        f"Depth error / outer-eye distance ({__name__}), against the mean face fitted under weak",
        "perspective (`make lift METHOD=meanshape`); ratio < 1: the model is better.",
        "",
        "| faces | model | mean face | ratio |",
        "| --- | --- | --- | --- |",
        *[f"| {label} | {m:.4f} | {b:.4f} | {m / b:.2f} |" for label, m, b in rows],
        "",
        "Real faces come from neither face model: the model-to-model rows of docs/reproduce/zhao_t1_quick.md",
        "(trained on one, tested on the other) are the closest stand-in measured here. On the real AFLW2000-3D:",
        "`python -m experiments.reports.pretrained_card --aflw2000 /path/to/AFLW2000`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="A shipped lifter against the mean face on AFLW2000-3D.")
    ap.add_argument("--name", default="zhao_depth_ibug68")
    ap.add_argument("--aflw2000", help="the real AFLW2000 folder (image0XXXX.mat); default: the procedural set")
    args = ap.parse_args(argv)
    label, m, b = aflw2000_row(shipped_weights.load(args.name).lift, mean_face_landmarks(), data_dir=args.aflw2000)
    print(f"{label}: depth error / outer-eye distance {m:.4f} ({args.name}) vs {b:.4f} (mean face), ratio {m / b:.2f}")


if __name__ == "__main__":
    main()
