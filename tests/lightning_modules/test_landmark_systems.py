"""The LightningModules end to end on the synthetic DataModule: fit, validation overlays, test
metrics (MLME, mean-layout baseline, NME, calibration figure), predict, checkpointed buffers; and an
overfit check (a tiny batch driven below 1 px MLME)."""

from __future__ import annotations

import functools

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from datamodules.synthetic import SyntheticDataModule
from experiments.train import instantiate_model
from lightning_modules.components.backbones import TimmBackbone
from lightning_modules.components.flows import RealNVPFlow
from lightning_modules.components.heads import LinearHead
from lightning_modules.components.landmark_net import LandmarkNet
from lightning_modules.dense_landmarks import DenseLandmarkModule
from lightning_modules.losses.resll import ResLLExpLoss
from tests.harness.compose import compose_config


def _tiny_module(tmp_path, size: int = 32) -> DenseLandmarkModule:
    cfg = compose_config("train", ["model=tiny", f"model.image_size={size}"], tmp_path)
    OmegaConf.resolve(cfg)
    return instantiate_model(cfg.model)


def test_dense_module_fit_test_predict_on_synthetic_data(tmp_path):
    torch.manual_seed(0)
    model = _tiny_module(tmp_path)
    dm = SyntheticDataModule(landmark_set="ibug68", image_size=32, num_train=8, num_val=4, num_test=4, batch_size=4)
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        default_root_dir=tmp_path, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.layout_count.item() == 8  # every training image went into the mean layout
    assert (tmp_path / "overlays" / "val_epoch000.png").stat().st_size > 1000
    assert "val/mlme" in trainer.callback_metrics

    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    for key in ("test/mlme", "test/mlme_mean_baseline", "test/nme", "test/loss", "test/sigma_px"):
        assert key in metrics and torch.isfinite(torch.tensor(metrics[key])), key
    assert -1.0 <= metrics["test/sigma_error_corr"] <= 1.0
    assert (tmp_path / "figures" / "test_calibration.png").is_file()

    preds = trainer.predict(model, datamodule=dm)
    assert preds[0]["landmarks_px"].shape == (4, 68, 2)
    conf = preds[0]["confidences"]
    assert conf.shape == (4, 68) and conf.min() >= 0 and conf.max() <= 1

    # the mean-layout buffers survive a checkpoint round trip
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    fresh = _tiny_module(tmp_path)
    fresh.load_state_dict(torch.load(path, map_location="cpu", weights_only=False)["state_dict"])
    assert torch.equal(fresh.layout_sum, model.layout_sum) and fresh.layout_count.item() == 8


def test_mean_baseline_equals_hand_computed_mlme(tmp_path):
    model = _tiny_module(tmp_path)
    lmk = torch.rand(3, 68, 2) - 0.5
    model.layout_sum.copy_(lmk.double().sum(0))
    model.layout_count.fill_(3)
    mean_px = (lmk.mean(0) + 0.5) * 32
    target_px = (lmk + 0.5) * 32
    expected = (mean_px - target_px).norm(dim=-1).mean()
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    batch = {"image": torch.randn(3, 3, 32, 32), "landmarks": lmk, "landmarks_px": target_px}
    loader = torch.utils.data.DataLoader([dict((k, v[i]) for k, v in batch.items()) for i in range(3)], batch_size=3)
    out = trainer.test(model, dataloaders=loader, verbose=False)[0]
    assert abs(out["test/mlme_mean_baseline"] - expected.item()) < 1e-4


# ~100 optimizer steps: ~2 s single-threaded (the folder conftest), even on a loaded 2-core
# machine; it was 15-35 s with two OpenMP threads spin-waiting for busy cores
def test_overfit_tiny_batch_below_one_pixel():
    """ResLL Exp + flow on a LayerNorm ConvNeXt (no BatchNorm: train/eval agree), 4 images of 32 px."""
    torch.manual_seed(0)
    net = LandmarkNet(TimmBackbone("test_convnext"), functools.partial(LinearHead, num_landmarks=68, channels=4))
    model = DenseLandmarkModule(
        net, functools.partial(torch.optim.Adam, lr=2e-3), ResLLExpLoss(flow=RealNVPFlow()),
        landmark_set="ibug68", image_size=32,
    )
    g = torch.Generator().manual_seed(0)
    lmk = torch.rand(4, 68, 2, generator=g) * 0.8 - 0.4
    batch = {"image": torch.randn(4, 3, 32, 32, generator=g), "landmarks": lmk, "landmarks_px": (lmk + 0.5) * 32}
    opt = model.configure_optimizers()["optimizer"]
    best = float("inf")
    for step in range(300):  # noqa: B007 - reported in the assertion message
        loss, preds, targets = model.model_step(batch)
        mlme = (preds["landmarks_px"] - targets["landmarks_px"]).norm(dim=-1).mean().item()
        best = min(best, mlme)
        if mlme < 1.0:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert best < 1.0, f"MLME {best:.2f} px after {step + 1} steps"
