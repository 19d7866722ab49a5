"""Deep-MDS trained for real (the deep_mds config, Lightning, BFM-synthetic faces of the procedural BFM
folder), briefly: a regression guard for the issue-7 changes. Measured with these settings (1,000 steps of
10 faces, ~20 s): the net's relative 3D-distance error 2.5 % on the auto-encoder's view (the issue-7 starting
point: 3.9 % after 480 steps of 100 faces; ELU on raw features: ~3.5 % after 1,000 steps of 10), the
auto-encoder's canonical-view RMS error 0.023 (0.04-0.045 without its identity skip, any lr). Thresholds sit
between the two."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from experiments.train import instantiate_model
from lightning_modules.components.depth_mlp import standardise_2d
from lightning_modules.deep_mds import canonical_view, relative_distance_error
from tests.lifting.test_zhao_cross_source import one_thread  # noqa: F401 (fixture)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.slow  # ~20 s on a shared 2-core CPU
def test_deep_mds_learns_distances_and_views(tmp_path: Path, one_thread: None) -> None:  # noqa: F811
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train.yaml", overrides=["model=deep_mds", "data=bfm_synthetic", "data.n_train=2000",
                                               "data.n_val=10", "data.n_test=100", "data.batch_size=10",
                                               "model.nmds_iters=20"])
    pl.seed_everything(0)
    dm = instantiate(cfg.data, _convert_="partial")
    module = instantiate_model(cfg.model)
    trainer = pl.Trainer(accelerator="cpu", max_steps=1000, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         default_root_dir=tmp_path)
    trainer.fit(module, datamodule=dm)
    module.eval()
    dm.setup("test")
    batch = next(iter(torch.utils.data.DataLoader(dm.datasets["test"], batch_size=100)))
    with torch.no_grad():
        canon_gt, shape_norm = canonical_view(batch["landmarks3d_model"].float(), 0.0)
        canon = module.net.autoencoder(standardise_2d(batch["landmarks_px"].float())[0])
        from fitting.nmds import pairwise_distances

        err = relative_distance_error(module.dissimilarities(canon), pairwise_distances(shape_norm)).mean()
        rms = ((canon - canon_gt) ** 2).sum(-1).mean().sqrt()
        lifted = module.lift(batch["landmarks_px"][:20].float())
    print(f"relative distance error {float(err):.4f}, canonical-view RMS {float(rms):.4f}")
    assert float(err) < 0.032
    assert float(rms) < 0.03
    torch.testing.assert_close(lifted[..., :2], batch["landmarks_px"][:20].float())  # x, y unchanged
    # depth towards the camera: the nose tip (30) nearer than the jaw ends (0, 16) on every face
    assert bool((lifted[:, 30, 2] > lifted[:, [0, 16], 2].max(1).values).all())
