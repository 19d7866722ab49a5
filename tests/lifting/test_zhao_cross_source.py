"""Generalisation guard for Zhao's depth MLP (the stand-in for real in-the-wild faces): trained on one
face model and tested on the other (FLAME-format -> BFM-format and back: different meshes, landmark
embeddings, expression bases and jaws), the MLP still clearly beats the mean shape of its own training
faces. Also: the lift does not depend on the world's units or the face's size in the image."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from datamodules.landmarks3d import ViewConfig, flame_landmarks68, sample_views
from experiments.reports.zhao_factors import compare
from experiments.train import instantiate_model
from lightning_modules.components.depth_mlp import DepthMLP
from lightning_modules.zhao_depth import ZhaoDepthLifter

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def one_thread():
    """Tiny MLP on 2 shared cores: one intra-op thread is far faster than two under load."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def train_zhao(tmp_path: Path, train_bfm: float, eval_bfm: float, n_train: int = 3000, epochs: int = 40):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train.yaml", overrides=[
            "model=zhao_depth", f"data.n_train={n_train}", "data.n_val=100", "data.n_test=400",
            f"data.bfm_fraction={train_bfm}", f"data.eval_bfm_fraction={eval_bfm}",
            "data.views_per_shape=1", "data.batch_size=100",
        ])
    pl.seed_everything(0)
    dm = instantiate(cfg.data, _convert_="partial")
    dm.setup()
    module = instantiate_model(cfg.model)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=epochs, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         limit_val_batches=1)
    trainer.fit(module, datamodule=dm)
    module.eval()
    return module, dm


@pytest.mark.slow
@pytest.mark.parametrize("train_bfm,test_bfm", [(0.0, 1.0), (1.0, 0.0)], ids=["flame_to_bfm", "bfm_to_flame"])
def test_zhao_beats_meanshape_on_the_other_face_model(tmp_path: Path, one_thread: None, train_bfm: float,
                                                      test_bfm: float) -> None:
    module, dm = train_zhao(tmp_path, train_bfm, test_bfm)
    test = dm.shapes["test"]
    res = compare(module.lift, dm.shapes["train"].mean(0), test, dm.view, seed=3)
    mlp, base = res["model"].mean().item(), res["meanshape"].mean().item()
    print(f"train bfm={train_bfm} -> test bfm={test_bfm}: MLP {mlp:.4f}, mean shape {base:.4f}")
    assert mlp < 0.8 * base, (mlp, base)


def test_lift_is_independent_of_units_and_image_scale() -> None:
    """Zhao's standardisation (2D centred, / (std_x + std_y) / 2; depth predicted in that unit): scaling
    and shifting the 2D input scales the depth by the same factor and nothing else."""
    torch.manual_seed(0)
    module = ZhaoDepthLifter(DepthMLP(), optimizer=None)
    module.eval()
    v = sample_views(flame_landmarks68(6, 1), ViewConfig(), torch.Generator().manual_seed(0))
    xy = v["landmarks_px"].double()
    module.double()
    with torch.no_grad():
        out = module.lift(xy)
        out_scaled = module.lift(1e-3 * xy + 7.0)  # e.g. metres on another origin instead of px
    torch.testing.assert_close(out_scaled[..., 2], 1e-3 * out[..., 2])
    torch.testing.assert_close(out_scaled[..., :2], 1e-3 * xy + 7.0)
