"""Deep-MDS dissimilarity-net options added for issue 7: the frozen standardisation of the pair
features, the activation choice, and the relative distance error logged without NMDS; each against
hand-computed values."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from lightning_modules.components.dissimilarity_net import (
    DeepMDSNet,
    DissimilarityNet,
    pair_features,
)
from lightning_modules.components.view_autoencoder import ViewAutoencoder
from lightning_modules.deep_mds import DeepMDSLifter, relative_distance_error


def test_feature_standardisation_is_set_once_in_training_and_frozen() -> None:
    net = DissimilarityNet(normalise=True).double()
    feats = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3.0, 2.0, 7.0, 0.0, 5.0, 8.0]], dtype=torch.float64)
    net.eval()
    assert not bool(net.feature_stats_set)
    torch.testing.assert_close(net._standardise(feats), feats)  # identity until the first training call
    net.train()
    z = net._standardise(feats)
    # by hand: mean (2, 2, 5, 2, 5, 7); unbiased std of two values a, b = |a - b| / sqrt(2); zero -> 1e-6
    torch.testing.assert_close(net.feature_mean, torch.tensor([2.0, 2.0, 5.0, 2.0, 5.0, 7.0], dtype=torch.float64))
    sd = torch.tensor([2.0, 1e-6 * 2**0.5, 4.0, 4.0, 1e-6 * 2**0.5, 2.0], dtype=torch.float64) / 2**0.5
    torch.testing.assert_close(net.feature_std, sd)
    h = 2**0.5 / 2
    torch.testing.assert_close(z[0, [0, 2, 3, 5]], torch.tensor([-h, -h, h, -h], dtype=torch.float64))
    # frozen: other features later do not change the statistics, and they travel in the state dict
    net._standardise(feats * 10)
    torch.testing.assert_close(net.feature_mean[0], torch.tensor(2.0, dtype=torch.float64))
    other = DissimilarityNet(normalise=True).double()
    other.load_state_dict(net.state_dict())
    other.eval()
    x = pair_features(torch.rand(5, 2, dtype=torch.float64), torch.rand(5, 2, dtype=torch.float64))
    torch.testing.assert_close(other(x), net.eval()(x))
    assert bool(other.feature_stats_set)
    # a state dict from before the statistics existed loads as "not set" (identity)
    old = {k: v for k, v in net.state_dict().items() if not k.startswith("feature_")}
    fresh = DissimilarityNet(normalise=True).double()
    fresh.load_state_dict(old)
    assert not bool(fresh.feature_stats_set) and float(fresh.feature_std.sum()) == 6.0


def test_normalise_and_activation_keep_the_parameter_count() -> None:
    base = sum(p.numel() for p in DissimilarityNet().parameters())
    assert base == 2593 < 3000
    for act in ("elu", "silu", "tanh"):
        net = DissimilarityNet(activation=act, normalise=True)
        assert sum(p.numel() for p in net.parameters()) == base
    assert isinstance(DissimilarityNet(activation="silu").act, torch.nn.SiLU)
    with pytest.raises(ValueError, match="activation"):
        DissimilarityNet(activation="relu6")


def test_relative_distance_error_by_hand() -> None:
    d = torch.tensor([[[0.0, 2.0, 4.0], [2.0, 0.0, 5.0], [4.0, 5.0, 0.0]]])
    dis = torch.tensor([[[9.0, 3.0, 4.0], [1.0, 0.0, 5.5], [4.0, 5.0, 0.0]]])
    # off-diagonal ratios: |3-2|/2, |4-4|/4, |1-2|/2, |5.5-5|/5, 0, 0 -> (0.5 + 0.5 + 0.1) / 6
    torch.testing.assert_close(relative_distance_error(dis, d), torch.tensor([1.1 / 6]))
    with pytest.raises(ValueError, match="relative_distance_error"):
        relative_distance_error(dis[0], d[0])


def test_lifter_logs_the_dissimilarity_errors_in_validation(tmp_path) -> None:
    import pytorch_lightning as pl

    from tests.lifting.synthetic_faces import synthetic_faces

    faces = synthetic_faces(8, 0)
    xy = faces[..., :2] * torch.tensor([1000.0, -1000.0]) + 128
    batch = {"landmarks_px": xy, "landmarks3d": torch.cat([xy, 1000 * faces[..., 2:]], -1),
             "landmarks3d_model": faces}
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth", normalise=True, activation="silu"))
    m = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=1e-3), nmds_iters=3)
    loader = torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(8)], batch_size=8)
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, default_root_dir=tmp_path, num_sanity_val_steps=0)
    trainer.fit(m, loader, loader)
    got = trainer.callback_metrics
    for key in ("val/dissim_rel_err", "val/dissim_rel_err_gt_view", "val/canon_rmse", "val/mse_procrustes"):
        assert key in got and torch.isfinite(got[key]), key
    assert bool(net.dissimilarity.feature_stats_set)  # set in the training step


def _synthetic_batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    from tests.lifting.synthetic_faces import synthetic_faces

    faces = synthetic_faces(n, seed)
    xy = faces[..., :2] * torch.tensor([1000.0, -1000.0]) + 128
    return {"landmarks_px": xy, "landmarks3d": torch.cat([xy, 1000 * faces[..., 2:]], -1), "landmarks3d_model": faces}


def test_mirror_average_is_the_mean_of_the_view_and_its_mirror_image() -> None:
    torch.manual_seed(0)
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth", activation="silu"))
    canon = torch.randn(3, 68, 2)
    plain = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=1e-3), pair_origin="corner")
    mirrored = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=1e-3), pair_origin="corner",
                             mirror_average=True)
    d = net.dissimilarity.matrix(canon - canon.amin(1, keepdim=True) + 0.5)
    flip = canon * torch.tensor([-1.0, 1.0])
    d_flip = net.dissimilarity.matrix(flip - flip.amin(1, keepdim=True) + 0.5)
    torch.testing.assert_close(plain.dissimilarities(canon), d)
    torch.testing.assert_close(mirrored.dissimilarities(canon), 0.5 * (d + d_flip))
    assert not torch.allclose(d, d_flip)  # a random net is not mirror-symmetric: the average is not a no-op


def test_cosine_schedule_decays_to_zero_over_the_run(tmp_path) -> None:
    import pytorch_lightning as pl

    batch = _synthetic_batch()
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth"))
    m = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=0.02), nmds_iters=2, lr_schedule="cosine")
    loader = torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(8)], batch_size=2)
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, default_root_dir=tmp_path)
    lrs: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, *args) -> None:
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer.callbacks.append(Record())
    trainer.fit(m, loader)
    # 4 steps, T_max = 4: lr_k = 0.02 (1 + cos(pi k / 4)) / 2 before step k
    expected = [0.02 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert lrs == pytest.approx(expected)
    with pytest.raises(ValueError, match="lr_schedule"):
        DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=0.02), lr_schedule="linear")


def test_residual_autoencoder_passes_the_input_view_through() -> None:
    ae = ViewAutoencoder(residual=True)
    x = torch.randn(4, 68, 2)
    with torch.no_grad():
        last = ae.decoder[-1]
        last.weight.zero_()
        last.bias.fill_(0.25)
    torch.testing.assert_close(ae(x), x + 0.25)  # input + decoder output (0.25 everywhere)
    plain = ViewAutoencoder(residual=False)
    plain.load_state_dict(ae.state_dict())  # same parameters: the skip adds none
    torch.testing.assert_close(plain(x), torch.full_like(x, 0.25))


def test_autoencoder_lr_is_a_second_parameter_group() -> None:
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth"))
    m = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=0.04), autoencoder_lr=0.004)
    opt = m.configure_optimizers()["optimizer"]  # lr_schedule "scheduler" with no scheduler partial: no scheduler
    assert [g["lr"] for g in opt.param_groups] == [0.004, 0.04]
    ids = [{id(p) for p in g["params"]} for g in opt.param_groups]
    assert ids[0] == {id(p) for p in net.autoencoder.parameters()}
    assert ids[1] == {id(p) for p in net.dissimilarity.parameters()}
    one = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=0.04)).configure_optimizers()["optimizer"]
    assert len(one.param_groups) == 1 and one.param_groups[0]["lr"] == 0.04


def test_feature_statistics_come_from_the_true_canonical_view() -> None:
    """With dissim_input="predicted" the net sees the auto-encoder's output, but the frozen feature
    statistics are taken from the true canonical views of the first training batch."""
    from lightning_modules.deep_mds import canonical_view

    batch = _synthetic_batch()
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth", normalise=True))
    m = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=1e-3), dissim_input="predicted",
                      pair_origin="corner")
    m.train()
    m.model_step(batch, full=False)
    canon_gt, _ = canonical_view(batch["landmarks3d_model"], 0.0)
    c = canon_gt - canon_gt.amin(1, keepdim=True) + 0.5
    iu = torch.triu_indices(68, 68, 1)
    f = pair_features(c[:, iu[0]], c[:, iu[1]]).reshape(-1, 6)
    torch.testing.assert_close(net.dissimilarity.feature_mean, f.mean(0))
    torch.testing.assert_close(net.dissimilarity.feature_std, f.std(0))


def test_test_errors_carry_the_input_yaw(tmp_path) -> None:
    import numpy as np
    import pytorch_lightning as pl

    batch = _synthetic_batch(6)
    batch["yaw"] = torch.tensor([-45.0, 0.0, 45.0, 0.0, 45.0, -45.0])
    batch["index"] = torch.arange(6)
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth"))
    m = DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=1e-3), nmds_iters=2)
    loader = torch.utils.data.DataLoader([{k: v[i] for k, v in batch.items()} for i in range(6)], batch_size=4)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=tmp_path)
    trainer.test(m, loader, verbose=False)
    with np.load(tmp_path / "test_errors.npz") as e:
        np.testing.assert_array_equal(e["yaw"], batch["yaw"].numpy())
        assert e["mse_procrustes"].shape == (6,)
