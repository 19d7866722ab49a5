"""Zhao's depth MLP, trained for real (a small run through the Hydra config, the Lightning module and
the Landmarks3DDataModule on the procedural world: FLAME + BFM-format identities, random expressions,
yaw +-90, pitch, roll, perspective, 2D noise), lifts held-out identities far better than the
mean-shape baselines fitted under weak perspective."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from experiments.lift import lift_meanshape, mean_face_landmarks
from experiments.train import instantiate_model
from lightning_modules.metrics.shape3d import depth_corr, gte

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def depth_error(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean |z - z_gt| over landmarks after removing each face's mean depth, / the 3D outer-eye
    distance of gt. (B, 68, 3) px x2 -> (B,)."""
    z = pred[..., 2] - pred[..., 2].mean(1, keepdim=True)
    zg = gt[..., 2] - gt[..., 2].mean(1, keepdim=True)
    return (z - zg).abs().mean(1) / (gt[:, 36] - gt[:, 45]).norm(dim=-1)


@pytest.fixture
def one_thread():
    """Tiny MLP on 2 shared cores: one intra-op thread is ~40x faster than two under load."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.slow
def test_zhao_depth_beats_meanshape_on_held_out_faces(tmp_path: Path, one_thread: None) -> None:
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train.yaml", overrides=[
            "model=zhao_depth", "data.n_train=3000", "data.n_val=200", "data.n_test=400",
            "data.views_per_shape=1", "data.batch_size=100",
        ])
    assert cfg.data._target_.endswith("Landmarks3DDataModule")  # the model config selects its data
    pl.seed_everything(0)
    dm = instantiate(cfg.data, _convert_="partial")
    dm.setup()
    module = instantiate_model(cfg.model)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=30, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)

    batch = dm.test_dataloader().dataset.items  # all 400 fixed test views
    xy, gt = batch["landmarks_px"].double(), batch["landmarks3d"].double()
    module.eval()
    with torch.no_grad():
        pred = module.lift(xy.float()).double()
    # baselines: the FLAME mean face (the lift CLI's `meanshape`) and the mean of the training
    # identities (FLAME + BFM, the stronger one), each fitted under weak perspective
    base_flame = lift_meanshape(xy, mean_face_landmarks())
    base_train = lift_meanshape(xy, dm.shapes["train"].double().mean(0))
    err = {k: depth_error(p, gt).mean().item() for k, p in
           [("mlp", pred), ("flame_mean", base_flame), ("train_mean", base_train)]}
    print({k: round(v, 4) for k, v in err.items()}, "epochs", trainer.current_epoch)
    assert err["mlp"] < 0.75 * min(err["flame_mean"], err["train_mean"]), err
    # the same on the 3D error (x, y are the noisy inputs for every method) and DepthCorr
    assert gte(pred, gt).mean() < gte(base_train, gt).mean()
    assert depth_corr(pred, gt).mean() > depth_corr(base_train, gt).mean()
    # the held-out identities are new: no test face equals a training face
    d = torch.cdist(dm.shapes["test"].flatten(1), dm.shapes["train"].flatten(1))
    assert d.min() > 1e-4
