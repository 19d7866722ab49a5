"""Lifting baselines (mean shape, constant), per-face test errors, the NMDS + weak-perspective lift
with exact distances on the procedural BFM world, and the Deep-MDS Table 1 Wilcoxon report rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from datamodules.landmarks3d import Landmarks3DDataModule, ViewConfig, bfm_landmarks68, sample_views
from experiments.reports.deep_mds_t1 import wilcoxon_rows
from fitting.nmds import pairwise_distances, smacof_nmds
from fitting.weak_perspective import fix_chirality_ibug68, lift_with_shape
from lightning_modules.lifting_baselines import ConstantLifter, MeanShapeLifter
from lightning_modules.metrics.shape3d import depth_corr_from_depths, mse_procrustes
from tests.lifting.synthetic_faces import synthetic_faces


def _dm() -> Landmarks3DDataModule:
    shapes = {"train": synthetic_faces(40, 1), "val": synthetic_faces(8, 2), "test": synthetic_faces(24, 3)}
    return Landmarks3DDataModule(shapes=shapes, batch_size=16, view={"noise_iod": 0.0, "perspective_prob": 0.0})


@pytest.mark.filterwarnings("ignore:`training_step` returned `None`")
@pytest.mark.parametrize("cls", [MeanShapeLifter, ConstantLifter])
def test_baseline_learns_the_mean_and_writes_per_face_errors(cls, tmp_path: Path) -> None:
    dm = _dm()
    module = cls()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    train = dm.shapes["train"].double()
    expected = (train - train.mean(1, keepdim=True)).mean(0)
    torch.testing.assert_close(module.mean_shape, expected)  # 1 view per face: every face once
    res = trainer.test(module, datamodule=dm, verbose=False)[0]
    errs = np.load(tmp_path / "test_errors.npz")
    assert sorted(errs["index"].tolist()) == list(range(24))
    np.testing.assert_allclose(errs["mse_procrustes"].mean(), res["test/mse_procrustes"], rtol=1e-5)
    np.testing.assert_allclose(depth_corr_from_depths(errs["z_pred"], errs["z_gt"]), res["test/depth_corr"], rtol=1e-5)


def test_constant_output_ignores_the_pose_and_meanshape_follows_it() -> None:
    module = MeanShapeLifter()
    const = ConstantLifter()
    faces = synthetic_faces(6, 4)
    for m in (module, const):
        m.shape_sum += (faces - faces.mean(1, keepdim=True)).double().sum(0)
        m.count += 6
    v = sample_views(faces, ViewConfig(noise_iod=0.0, perspective_prob=0.0), torch.Generator().manual_seed(0))
    out_c, out_m = const.lift(v["landmarks_px"]), module.lift(v["landmarks_px"])
    # constant: the same shape for every face up to translation and scale
    a = out_c - out_c.mean(1, keepdim=True)
    a = a / a.flatten(1).norm(dim=1).view(-1, 1, 1)
    torch.testing.assert_close(a, a[:1].expand_as(a), atol=1e-5, rtol=0)
    # the fitted mean shape is better than the constant after Procrustes (it sees the pose)
    gt = v["landmarks3d"].double()
    assert mse_procrustes(out_m.double(), gt).mean() < mse_procrustes(out_c.double(), gt).mean()


def test_nmds_lift_recovers_depth_from_exact_distances() -> None:
    """Deep-MDS' back end on the procedural BFM world (yaw +-90): exact 3D distances -> NMDS ->
    chirality fix -> weak-perspective fit reproduces the depth exactly; 2 % distance noise stays
    well below the mean shape's error."""
    faces = bfm_landmarks68(32, 5).double()
    v = sample_views(faces.float(), ViewConfig(noise_iod=0.0, perspective_prob=0.0), torch.Generator().manual_seed(0))
    xy, gt = v["landmarks_px"].double(), v["landmarks3d"].double()
    d = pairwise_distances(faces)
    lifted = lift_with_shape(fix_chirality_ibug68(smacof_nmds(d, dim=3, n_iter=50).points), xy)
    assert mse_procrustes(lifted, gt).max() < 1e-10
    noisy = d * (1 + 0.02 * torch.randn(d.shape, generator=torch.Generator().manual_seed(1), dtype=d.dtype))
    lifted_n = lift_with_shape(fix_chirality_ibug68(smacof_nmds(0.5 * (noisy + noisy.transpose(1, 2)), 3, 50).points), xy)
    mean = lift_with_shape(faces.mean(0, keepdim=True).expand_as(faces), xy)
    assert mse_procrustes(lifted_n, gt).mean() < 0.25 * mse_procrustes(mean, gt).mean()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's normal approximation when all differences are 0
def test_wilcoxon_report_rows_pair_runs_by_face_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 600
    base = rng.uniform(1e-4, 2e-4, n)
    dirs = {}
    for name, mse in [("deep_mds_ortho", base), ("zhao_ortho", base + 1e-4), ("constant_ortho", base)]:
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        perm = rng.permutation(n)  # written in another order: the report must pair by index
        zg = rng.normal(size=(n, 68))
        zp = zg + 1e3 * mse[:, None] * rng.normal(size=(n, 68))
        np.savez(dirs[name] / "test_errors.npz", index=perm, mse_procrustes=mse[perm], gte=mse[perm],
                 z_pred=zp[perm], z_gt=zg[perm])
    runs = [{"name": k, "label": k} for k in dirs] + [{"name": "meanshape_ortho", "label": "m"}]
    dirs["meanshape_ortho"] = tmp_path / "missing"
    rows = wilcoxon_rows(runs, dirs)
    assert len(rows) == 3
    zhao = rows[0].split(" | ")
    assert zhao[0] == "| zhao_ortho" and float(zhao[2]) == pytest.approx(2 / 1024, rel=0.05)  # exact test, 10 pairs all one way
    assert "0.0002" in zhao[1] and "0.00015" in zhao[1]
    assert float(rows[1].split(" | ")[2]) == 1.0  # identical errors: no evidence of a difference
    assert "no paired" in rows[2]


def test_per_yaw_report_rows_by_hand(tmp_path: Path) -> None:
    from experiments.reports.deep_mds_t1 import per_yaw_rows

    d = tmp_path / "deep_mds_ortho"
    d.mkdir()
    np.savez(d / "test_errors.npz", index=np.array([2, 0, 1, 3]), mse_procrustes=np.array([1.0, 3.0, 5.0, 8.0]),
             yaw=np.array([0.0, -45.0, 0.0, 45.0]))
    old = tmp_path / "zhao_ortho"  # a run written before `yaw` was saved: left out
    old.mkdir()
    np.savez(old / "test_errors.npz", index=np.arange(2), mse_procrustes=np.ones(2))
    runs = [{"name": "deep_mds_ortho", "label": "D"}, {"name": "zhao_ortho", "label": "Z"}]
    yaws, rows = per_yaw_rows(runs, {"deep_mds_ortho": d, "zhao_ortho": old})
    assert yaws == [-45.0, 0.0, 45.0]
    assert rows == ["| D | 3 | 3 | 8 |"]  # yaw 0: (1 + 5) / 2
