"""Zhao's depth MLP, trained for real (Hydra config, Lightning module, Landmarks3DDataModule on the
realistic procedural world: FLAME + BFM-format identities, expressions of per-face intensity, the mouth
open on half the FLAME faces (jaw joint) and from closed to open on the BFM-format ones (the basis' mouth
mode), yaw +-90, pitch, roll, perspective, 2 % 2D noise), lifts held-out faces far
better than the mean shape of its training faces fitted under weak perspective where the 2D tells about
the 3D (expression, open mouth), measured per factor (experiments/reports/zhao_factors.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from experiments.reports.zhao_factors import compare, factor_table
from lightning_modules.metrics.shape3d import depth_corr
from tests.lifting.test_zhao_cross_source import one_thread, train_zhao  # noqa: F401 (fixture)


@pytest.mark.slow
def test_zhao_depth_beats_meanshape_per_factor(tmp_path: Path, one_thread: None) -> None:  # noqa: F811
    module, dm = train_zhao(tmp_path, train_bfm=0.5, eval_bfm=0.5)
    mean_shape = dm.shapes["train"].mean(0)
    hp = dm.hparams
    rows = factor_table(module.lift, mean_shape, dm.view, n=300, seed=1,
                        flame_kwargs=hp.flame_kwargs, bfm_kwargs=hp.bfm_kwargs)
    for r in rows:
        print(f"{r['source']:6s} {r['factor']:12s} MLP {r['model']:.4f}  mean shape {r['meanshape']:.4f}  ratio {r['ratio']:.2f}")
    ratio = {(r["source"], r["factor"]): r["ratio"] for r in rows}
    # measured: all 0.57 (FLAME), 0.76 (BFM-format: its mouths open less, to 12 deg of jaw at 3 sd, so
    # the mean shape is a stronger baseline there; 0.69 when a landmark-level jaw opened them up to 25 deg)
    for source, all_max in (("flame", 0.75), ("bfm", 0.82)):
        assert ratio[(source, "mouth open")] < 0.6, ratio  # the 2D shows the open mouth: far better
        assert ratio[(source, "expression")] < 0.8, ratio
        assert ratio[(source, "all")] < all_max, ratio
    # the held-out identities are new: no test face equals a training face
    d = torch.cdist(dm.shapes["test"].flatten(1), dm.shapes["train"].flatten(1))
    assert d.min() > 1e-4
    # DepthCorr over the test faces: the MLP's depths follow the GT's better than the mean shape's
    res = compare(module.lift, mean_shape, dm.shapes["test"], dm.view, seed=2)
    assert res["model"].mean() < res["meanshape"].mean()
    from datamodules.landmarks3d import sample_views
    from experiments.lifting import lift_meanshape

    v = sample_views(dm.shapes["test"], dm.view, torch.Generator().manual_seed(2))
    gt = v["landmarks3d"].double()
    with torch.no_grad():
        pred = module.lift(v["landmarks_px"]).double()
    base = lift_meanshape(v["landmarks_px"].double(), mean_shape.double())
    assert depth_corr(pred, gt) > depth_corr(base, gt)
