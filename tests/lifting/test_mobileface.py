"""MobileFace: network shape, decoder, losses and the mesh distance on random batches."""

from __future__ import annotations

import functools

import pytest
import torch

from lightning_modules.components.bfm118 import BFM118, N_PARAMS, SLICES
from lightning_modules.components.mobilenet_v1 import MobileNetV1
from lightning_modules.mobileface import MobileFaceRegressor


def _face_model(n: int = 200) -> BFM118:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(n, 3, generator=g) * torch.tensor([0.07, 0.09, 0.05])
    return BFM118(mean, 0.003 * torch.randn(n, 3, 80, generator=g), 0.002 * torch.randn(n, 3, 29, generator=g))


def _batch(fm: BFM118, b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    p = fm.denormalise(0.5 * torch.randn(b, N_PARAMS, generator=g))
    return {"image": torch.randn(b, 3, 96, 96, generator=g), "params": p}


def test_mobilenet_matches_paper_sizes() -> None:
    net = MobileNetV1()
    assert net.features[0][0].weight.shape == (10, 3, 3, 3)  # first conv 3x3x3x10
    assert net.fc.in_features == 320 and net.fc.out_features == 118  # FC 320 -> 118
    n = sum(p.numel() for p in net.parameters())
    assert 1.2e6 < 4 * n < 1.6e6  # ~1.5 MB in float32 as reported
    assert net(torch.randn(2, 3, 96, 96)).shape == (2, 118)


def test_projection_hand_case() -> None:
    fm = BFM118(torch.tensor([[0.1, 0.2, 0.0]]), torch.zeros(1, 3, 80), torch.zeros(1, 3, 29))
    p = torch.zeros(1, N_PARAMS)
    p[0, SLICES["t"]] = torch.tensor([0.0, 0.0, 2.0])
    p[0, SLICES["f"]] = 100.0
    p[0, SLICES["pp"]] = torch.tensor([48.0, 40.0])
    # zero angles: R_cv = diag(1, -1, -1): (0.1, 0.2, 0) -> (0.1, -0.2, 2) -> u = 100*0.05+48, v = -100*0.1+40
    assert torch.allclose(fm.project(p), torch.tensor([[[53.0, 30.0]]]))


@pytest.mark.parametrize("loss", ["mse", "l2_2d3d", "l1_2d3d"])
def test_every_loss_trains_a_step(loss: str) -> None:
    fm = _face_model()
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3), loss=loss)
    batch = _batch(fm)
    opt = module.configure_optimizers()
    before = [p.detach().clone() for p in module.net.parameters()]
    loss_val, p, _ = module.model_step(batch)
    assert torch.isfinite(loss_val) and p.shape == (4, N_PARAMS)
    loss_val.backward()
    assert all(q.grad is not None for q in module.net.parameters())
    opt.step()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, module.net.parameters(), strict=True))


def test_mesh_distance_zero_for_gt_and_upper_bound_beats_meanshape() -> None:
    fm = _face_model()
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3))
    p_gt = _batch(fm)["params"]
    assert torch.all(module.mesh_distances(p_gt, p_gt) < 1e-9)
    d_mean = module.mesh_distances(fm.param_mean.expand_as(p_gt), p_gt)
    d_up = module.mesh_distances(module.registered_params(p_gt), p_gt)
    assert torch.all(d_mean > 0.1) and torch.all(d_up < 1e-2 * d_mean)


def test_bad_params_raise() -> None:
    fm = _face_model()
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3))
    with pytest.raises(ValueError, match="params"):
        module.model_step({"image": torch.zeros(1, 3, 96, 96), "params": torch.zeros(1, 62)})
