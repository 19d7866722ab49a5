"""Lifting systems: every config trains a step; Zhao's MLP beats the mean face on held-out faces;
the mean-shape baseline and the lift CLI get the depth sign right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from datamodules.landmarks3d import Landmarks3DDataModule, ViewConfig, sample_views
from experiments import lift as lift_cli
from experiments.train import instantiate_model
from tests.lifting.synthetic_faces import synthetic_faces

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LIFTING_MODELS = ["zhao_depth", pytest.param("deep_mds", marks=pytest.mark.slow),
                  pytest.param("deep_mds_profile", marks=pytest.mark.slow)]


def _shapes(n_train: int = 64, n_val: int = 16, n_test: int = 16) -> dict[str, torch.Tensor]:
    return {"train": synthetic_faces(n_train, 1), "val": synthetic_faces(n_val, 2), "test": synthetic_faces(n_test, 3)}


def _compose(model: str):
    extra = ["model.nmds_iters=5"] if model.startswith("deep_mds") else []  # NMDS is slow on 2 CPU cores
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train.yaml", overrides=[f"model={model}", "data=landmarks3d_tiny", *extra])


@pytest.mark.parametrize("model", LIFTING_MODELS)
def test_every_lifting_config_trains_a_step(model: str, tmp_path: Path) -> None:
    cfg = _compose(model)
    dm = instantiate(cfg.data, shapes=_shapes(), _convert_="partial")
    module = instantiate_model(cfg.model)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=1, limit_val_batches=1, limit_test_batches=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path,
    )
    before = [p.detach().clone() for p in module.parameters()]
    trainer.fit(module, datamodule=dm)
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    res = trainer.test(module, datamodule=dm, verbose=False)[0]
    assert all(np.isfinite(res[k]) for k in ("test/gte", "test/cvgtce", "test/depth_corr"))


def test_views_are_weak_perspective_with_depth_towards_camera() -> None:
    faces = synthetic_faces(8, 0)
    cfg = ViewConfig(yaw_max=0.0, pitch_max=0.0, roll_max=0.0, perspective_prob=0.0, noise_iod=0.0,
                     px_per_metre=(1000.0, 1000.0), translation_px=0.0)
    v = sample_views(faces, cfg, torch.Generator().manual_seed(0))
    lm3 = v["landmarks3d"]
    assert torch.allclose(v["landmarks_px"], lm3[..., :2])
    # frontal: x right = model x, y down = -model y, nose tip (30) nearer than the jaw ends (0, 16)
    assert torch.all(lm3[:, 30, 2] > lm3[:, 0, 2]) and torch.all(lm3[:, 30, 2] > lm3[:, 16, 2])
    assert torch.all(lm3[:, 8, 1] > lm3[:, 27, 1])  # chin below the nose bridge in the image
    assert torch.all(lm3[:, 45, 0] > lm3[:, 36, 0])  # subject's left eye on the image right


def test_meanshape_baseline_depth_sign() -> None:
    faces = synthetic_faces(20, 5)
    cfg = ViewConfig(yaw_max=60.0, perspective_prob=0.0, noise_iod=0.0)
    v = sample_views(faces, cfg, torch.Generator().manual_seed(1))
    mean_face = synthetic_faces(1, 99)[0].double()
    out = lift_cli.lift_meanshape(v["landmarks_px"].double(), mean_face)
    assert torch.allclose(out[..., :2], v["landmarks_px"].double())
    nose, ears = out[:, 30, 2], out[:, [0, 16], 2].mean(1)
    assert torch.all(nose > ears)
    corr = np.corrcoef(out[..., 2].flatten().numpy(), v["landmarks3d"][..., 2].flatten().numpy())[0, 1]
    assert corr > 0.8


def tiny_zhao_run(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    """A run directory as experiments.train writes it (<run>/.hydra/config.yaml, <run>/checkpoints/last.ckpt)
    of Zhao's MLP after 2 steps on synthetic faces; returns (checkpoint, module in eval mode)."""
    cfg = _compose("zhao_depth")
    dm = instantiate(cfg.data, shapes=_shapes(), _convert_="partial")
    module = instantiate_model(cfg.model)
    trainer = pl.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml")
    trainer.save_checkpoint(run / "checkpoints" / "last.ckpt")
    return run / "checkpoints" / "last.ckpt", module.eval()


def test_lift_cli_model_and_meanshape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt, module = tiny_zhao_run(tmp_path)
    v = sample_views(synthetic_faces(5, 7), ViewConfig(), torch.Generator().manual_seed(0))
    np.save(tmp_path / "in.npy", v["landmarks_px"].numpy())
    lift_cli.main(["--ckpt", str(ckpt), "--input", str(tmp_path / "in.npy"),
                   "--output", str(tmp_path / "out.npy")])
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (5, 68, 3)
    np.testing.assert_allclose(out[..., :2], v["landmarks_px"].numpy(), atol=1e-4)
    with torch.no_grad():
        np.testing.assert_allclose(out, module.lift(v["landmarks_px"]).numpy(), atol=1e-4)
    # meanshape through the CLI (mean face injected: the procedural FLAME folder is not needed here)
    monkeypatch.setattr(lift_cli, "mean_face_landmarks", lambda flame_dir=None: synthetic_faces(1, 99)[0].double())
    lift_cli.main(["--method", "meanshape", "--input", str(tmp_path / "in.npy"), "--output", str(tmp_path / "m.npy")])
    m = np.load(tmp_path / "m.npy")
    assert m.shape == (5, 68, 3)
    np.save(tmp_path / "bad.npy", np.zeros((5, 51, 2)))
    with pytest.raises(ValueError, match="bad.npy"):
        lift_cli.main(["--method", "meanshape", "--input", str(tmp_path / "bad.npy"), "--output", str(tmp_path / "x.npy")])


def test_datamodule_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="shapes"):
        Landmarks3DDataModule(shapes={"train": torch.zeros(4, 51, 3)})


def test_training_batches_cover_every_face_with_fresh_views() -> None:
    from datamodules.landmarks3d import FixedViewsDataset, RandomViewBatches

    faces = synthetic_faces(10, 0)
    ds = RandomViewBatches(faces, ViewConfig(), batch_size=4, views_per_shape=3)
    assert len(ds) == 8  # ceil(30 / 4)
    torch.manual_seed(0)
    first = list(ds)
    idx = torch.cat([b["index"] for b in first])
    assert sorted(idx.tolist()) == sorted(list(range(10)) * 3)
    assert first[0]["landmarks_px"].shape == (4, 68, 2) and first[-1]["landmarks3d"].shape == (2, 68, 3)
    # the batch's model-space shapes are the indexed faces (centred)
    b = first[0]
    ref = faces[b["index"]] - faces[b["index"]].mean(1, keepdim=True)
    torch.testing.assert_close(b["landmarks3d_model"], ref)
    second = list(ds)  # a new pass: new order and new views
    assert not torch.equal(torch.cat([x["yaw"] for x in first]), torch.cat([x["yaw"] for x in second]))
    # fixed views: the same every time, one per face
    fa, fb = FixedViewsDataset(faces, ViewConfig(), seed=3), FixedViewsDataset(faces, ViewConfig(), seed=3)
    assert len(fa) == 10 and torch.equal(fa[4]["landmarks_px"], fb[4]["landmarks_px"]) and int(fa[4]["index"]) == 4
    with pytest.raises(ValueError, match="batch_size"):
        RandomViewBatches(faces, ViewConfig(), batch_size=0)


def test_profile_views_keep_2d_noise() -> None:
    """The 2D noise is relative to the 3D eye distance: profile views (2D eye distance ~0) are noisy too."""
    faces = synthetic_faces(50, 0)
    cfg = ViewConfig(yaw_max=0.0, pitch_max=0.0, roll_max=0.0, perspective_prob=0.0, noise_iod=0.02,
                     px_per_metre=(1000.0, 1000.0), translation_px=0.0)
    rot = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # yaw 90 about y
    profile = faces @ rot.T
    v = sample_views(profile, cfg, torch.Generator().manual_seed(0))
    noise = (v["landmarks_px"] - v["landmarks3d"][..., :2]).std()
    iod_px = 1000.0 * (faces[:, 36] - faces[:, 45]).norm(dim=-1).mean()
    assert 0.015 * iod_px < noise < 0.025 * iod_px
