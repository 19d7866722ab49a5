"""Per-factor evaluation of a 2D -> 3D landmark lifter against the mean-shape baseline.

Test faces of one source (FLAME- or BFM-format, datamodules/landmarks3d.py) in which one factor
varies at a time, seen under the random views of a `ViewConfig` (yaw +-90, pitch, roll, perspective,
2D noise):
- `identity`: identity coefficients only (neutral expression, mouth closed);
- `expression`: expression coefficients only (per-face intensity, mouth closed);
- `mouth open`: the mouth opened on every face, nothing else (FLAME: the jaw U(0, max); BFM-format:
  the basis' mouth-opening mode, |N(0, 1)| sd times the source's per-face intensity);
- `all`: the realistic mix (the data config's kwargs).
Error: `shape3d.depth_error` (mean |depth error| after removing each face's mean depth, / the 3D
outer-eye distance). Baseline: the given mean shape fitted under weak perspective, depth read off
(experiments.lift.lift_meanshape). Yaw bins split the `all` faces by |yaw|.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from datamodules.landmarks3d import ViewConfig, bfm_in_flame_frame, flame_landmarks68, sample_views
from experiments.lifting import lift_meanshape
from lightning_modules.metrics.shape3d import depth_error

FACTORS = ("identity", "expression", "mouth open", "all")
YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.01))


def factor_kwargs(source: str, factor: str, kwargs: dict | None) -> dict:
    """Source kwargs (flame_landmarks68 / bfm_landmarks68) for one factor, starting from `kwargs`."""
    if source not in ("flame", "bfm") or factor not in FACTORS:
        raise ValueError(f"zhao_factors: source must be flame|bfm and factor one of {FACTORS}, got {source!r}, {factor!r}")
    kw = dict(kwargs or {})
    ident = "shape_std" if source == "flame" else "id_std"
    # the FLAME-format head opens its mouth with the jaw joint, the BFM-format one with its mouth mode
    if source == "flame":
        closed, opened = {"jaw_max_deg": 0.0}, {"jaw_max_deg": kw.get("jaw_max_deg", 30.0), "jaw_open_prob": 1.0}
    else:
        closed, opened = {"mouth_std": 0.0}, {"mouth_std": 1.0}
    if factor == "identity":
        kw.update({"exp_std": 0.0, **closed})
    elif factor == "expression":
        kw.update({ident: 0.0, **closed})
    elif factor == "mouth open":
        kw.update({ident: 0.0, "exp_std": 0.0, **opened})
    return kw


def factor_shapes(source: str, factor: str, n: int, seed: int, flame_kwargs: dict | None = None,
                  bfm_kwargs: dict | None = None) -> Tensor:
    """(n, 68, 3) model-space test faces (metres, FLAME frame) of one source and factor."""
    if source == "flame":
        return flame_landmarks68(n, seed, **factor_kwargs("flame", factor, flame_kwargs))
    return bfm_in_flame_frame(n, seed, flame_kwargs, factor_kwargs("bfm", factor, bfm_kwargs))


@torch.no_grad()
def compare(lift: Callable[[Tensor], Tensor], mean_shape: Tensor, shapes: Tensor, view: ViewConfig,
            seed: int = 0) -> dict[str, Tensor]:
    """Lift one seeded random view of each face. lift: (B, 68, 2) px -> (B, 68, 3) px;
    mean_shape (68, 3) metres. Returns per-face `model`, `meanshape` depth errors (B,) and `yaw` (B,)."""
    v = sample_views(shapes, view, torch.Generator().manual_seed(seed))
    xy, gt = v["landmarks_px"], v["landmarks3d"].double()
    pred = lift(xy.float()).double()
    base = lift_meanshape(xy.double(), mean_shape.double())
    return {"model": depth_error(pred, gt), "meanshape": depth_error(base, gt), "yaw": v["yaw"]}


def factor_table(lift: Callable[[Tensor], Tensor], mean_shape: Tensor, view: ViewConfig, n: int = 500,
                 seed: int = 0, sources: tuple[str, ...] = ("flame", "bfm"), flame_kwargs: dict | None = None,
                 bfm_kwargs: dict | None = None) -> list[dict[str, object]]:
    """Rows {source, factor, model, meanshape, ratio, n}: mean depth errors per source x factor, then
    per |yaw| bin of the `all` faces (factor 'yaw a-b')."""
    rows: list[dict[str, object]] = []
    for si, source in enumerate(sources):
        for fi, factor in enumerate(FACTORS):
            shapes = factor_shapes(source, factor, n, seed * 1000 + 10 * si + fi + 1, flame_kwargs, bfm_kwargs)
            res = compare(lift, mean_shape, shapes, view, seed=seed * 1000 + 10 * si + fi + 5)
            groups = [(factor, torch.ones_like(res["yaw"], dtype=torch.bool))]
            if factor == "all":
                groups += [(f"yaw {lo:.0f}-{min(hi, 90):.0f}", (res["yaw"].abs() >= lo) & (res["yaw"].abs() < hi))
                           for lo, hi in YAW_BINS]
            for name, m in groups:
                a, b = res["model"][m].mean().item(), res["meanshape"][m].mean().item()
                rows.append({"source": source, "factor": name, "model": a, "meanshape": b, "ratio": a / b,
                             "n": int(m.sum())})
    return rows
