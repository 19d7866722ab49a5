"""The landmark network trained through the fit (lightning_modules.fit_finetune): the gradient of the
3D loss with respect to network parameters against finite differences, a training step that lowers
the 3D loss, invalid items masked, init_from loading."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from torch import nn

from fitting.flame_fit import FitterConfig, LandmarkFitter
from fitting.landmark_model import LandmarkLBS, LandmarkSelection
from lightning_modules.checkpoint_file import read_state_dict
from lightning_modules.fit_finetune import FitFinetuneModule, masked_mean
from lightning_modules.losses.nll import NGLLLoss
from tests.fitting.fit_synthetic import project_ground_truth, tiny_lbs

NV = 204  # 68 landmarks = every third vertex (the ibug68 landmark count)
IDX = np.arange(0, NV, 3)
SIZE = 256


@pytest.fixture(scope="module")
def arrays():
    return tiny_lbs(n_vertices=NV, n_shape=6, n_expr=4, seed=0)


class TinyNet(nn.Module):
    """Image (B, 3, H, W) -> 4x4 average pool -> linear -> (B, 68, 4); the bias starts at ``q0``."""

    def __init__(self, q0: torch.Tensor) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(12, q0.numel())
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.fc.weight.copy_(1e-3 * torch.randn(self.fc.weight.shape, generator=g))
            self.fc.bias.copy_(q0.reshape(-1))
        self.shape = tuple(q0.shape)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(image).flatten(1)).reshape(image.shape[0], *self.shape)


def _batch(arrays, B: int, seed: int):
    uv, _, (rot, transl, coeffs, pose) = project_ground_truth(arrays, IDX, B, seed)
    full = LandmarkLBS(arrays, LandmarkSelection(vertex_idx=np.arange(NV)), (1, 2), torch.float64)
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(B, 3, SIZE, SIZE, generator=g, dtype=torch.float64),
        "landmarks": uv / SIZE - 0.5,
        "landmarks_px": uv,
        "vertices": full(coeffs, pose),
    }


def _system(arrays, batch, mode="unroll", nonrigid=40, landmark_weight=0.0, **kw) -> FitFinetuneModule:
    cfg = FitterConfig(dtype="float64", w_shape=1e-2, w_expr=1e-2, w_pose=1e-3, rigid_iterations=10,
                       nonrigid_iterations=nonrigid, backward_mode="implicit")
    fitter = LandmarkFitter(arrays, LandmarkSelection(vertex_idx=IDX), cfg, free_joints=(1, 2))
    g = torch.Generator().manual_seed(3)
    mu0 = batch["landmarks"].mean(0) + 0.004 * torch.randn(len(IDX), 2, generator=g, dtype=torch.float64)
    raw_sigma = torch.full((len(IDX), 2), float(np.log(0.3)), dtype=torch.float64)
    net = TinyNet(torch.cat([mu0, raw_sigma], -1).float())
    system = FitFinetuneModule(
        net=net, optimizer=functools.partial(torch.optim.Adam, lr=1e-3), loss=NGLLLoss(),
        landmark_set="ibug68", image_size=SIZE, fitter=fitter, face_idx=np.arange(0, NV, 2),
        head_idx=np.arange(NV), landmark_weight=landmark_weight, face_weight=1.0, head_weight=0.5,
        backward_mode=mode, num_overlays=0, **kw,
    )
    return system.double().train()


def _mesh_loss(system, batch) -> torch.Tensor:
    loss, preds, _ = system.model_step(batch)
    return preds["loss_terms"]["mesh"]


@pytest.mark.parametrize("mode,tol", [("unroll", 0.02), ("implicit", 0.3)])
def test_mesh_loss_gradient_wrt_network_parameters_matches_finite_differences(arrays, mode, tol):
    """d(MVE face + 0.5 MVE head)/d(theta) for a few parameters of the tiny net: one mu and one sigma
    bias entry (the sigma one reaches the loss only through the confidences, the fit's weights) and
    one weight. The fit converges (40 non-rigid steps, float64), so the rigid stage, which only sets
    the start, does not matter: 'unroll' differentiates the LM iterations themselves (exact up to the
    finite-difference error); 'implicit' uses the Gauss-Newton Hessian at the optimum (approximate
    for a non-zero residual: the predicted landmarks are not a projection of one mesh)."""
    batch = _batch(arrays, 1, seed=11)
    system = _system(arrays, batch, mode=mode)
    loss = _mesh_loss(system, batch)
    assert system.train_fit_config.backward_mode == mode
    system.zero_grad()
    loss.backward()
    bias, weight = system.net.fc.bias, system.net.fc.weight
    checks = [(bias, (4 * 5 + 0,)), (bias, (4 * 30 + 1,)), (bias, (4 * 12 + 2,)), (weight, (4 * 20 + 1, 3))]
    grads = [p.grad[i].item() for p, i in checks]
    assert abs(grads[2]) > 0  # a sigma entry: the confidences get a gradient from the 3D loss
    eps = 1e-5
    for (p, i), an in zip(checks, grads, strict=True):
        with torch.no_grad():
            p[i] += eps
            up = _mesh_loss(system, batch).item()
            p[i] -= 2 * eps
            down = _mesh_loss(system, batch).item()
            p[i] += eps
        fd = (up - down) / (2 * eps)
        assert np.sign(fd) == np.sign(an) and abs(fd - an) <= tol * abs(fd) + 1e-3, (i, fd, an)


def test_training_steps_lower_the_mesh_loss_on_a_fixed_batch(arrays):
    batch = _batch(arrays, 3, seed=12)
    system = _system(arrays, batch, mode="implicit", nonrigid=10, landmark_weight=0.01,
                     train_nonrigid_iterations=10)
    opt = torch.optim.Adam(system.parameters(), lr=2e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss, preds, _ = system.model_step(batch)
        losses.append(preds["loss_terms"]["mesh"].item())
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in system.parameters() if p.grad is not None)
        opt.step()
    assert losses[-1] < 0.8 * losses[0], losses


def test_invalid_items_give_finite_gradients_and_contribute_nothing(arrays):
    batch = _batch(arrays, 3, seed=13)
    system = _system(arrays, batch, mode="implicit", nonrigid=10)
    g = torch.Generator().manual_seed(4)
    lm = (batch["landmarks_px"] + torch.randn(3, len(IDX), 2, generator=g, dtype=torch.float64)).requires_grad_(True)
    conf = torch.full((3, len(IDX)), 0.8, dtype=torch.float64)
    with torch.no_grad():
        lm[1, 7, 0] = float("nan")  # item 1: a NaN landmark
        conf[2] = 0.0  # item 2: no usable landmark
    conf.requires_grad_(True)
    out = system.mesh_loss(lm, conf, batch)
    assert out["fit_valid"].item() == pytest.approx(1 / 3)
    out["mesh"].backward()
    assert torch.isfinite(lm.grad).all() and torch.isfinite(conf.grad).all()
    assert (lm.grad[1:] == 0).all() and (conf.grad[1:] == 0).all()
    assert lm.grad[0].abs().max() > 0 and conf.grad[0].abs().max() > 0
    alone = system.mesh_loss(lm[:1].detach(), conf[:1].detach(), {"vertices": batch["vertices"][:1]})
    # the loss is item 0's alone (to the solver's tolerance: the batch is one LM solve, so the
    # iteration where item 0 stops can differ from its solo fit)
    torch.testing.assert_close(out["mesh"].detach(), alone["mesh"], rtol=5e-3, atol=0)
    # no valid item at all: a zero loss with zero gradients, not a NaN
    none = system.mesh_loss(lm[1:].detach().requires_grad_(True), conf[1:].detach(), {"vertices": batch["vertices"][1:]})
    assert none["mesh"].item() == 0.0


def test_masked_mean_hand_computed():
    v = torch.tensor([1.0, float("nan"), 3.0], requires_grad=True)
    m = masked_mean(v, torch.tensor([True, False, True]))
    assert m.item() == 2.0
    m.backward()
    assert v.grad.tolist() == [0.5, 0.0, 0.5]


def test_init_from_loads_a_lightning_checkpoint_and_names_the_file_on_mismatch(arrays, tmp_path):
    batch = _batch(arrays, 1, seed=14)
    trained = _system(arrays, batch)
    with torch.no_grad():
        trained.net.fc.bias.add_(0.01)
    ckpt = tmp_path / "best.ckpt"
    torch.save({"state_dict": trained.state_dict(), "global_step": 7}, ckpt)
    assert not any(k.startswith("fitter") for k in read_state_dict(ckpt))  # no FLAME arrays in checkpoints
    fresh = _system(arrays, batch)
    fresh.load_init_weights(ckpt)
    torch.testing.assert_close(fresh.net.fc.bias, trained.net.fc.bias)
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.other.weight": torch.zeros(1)}}, bad)
    with pytest.raises(KeyError, match="other.ckpt.*missing.*net.fc.bias"):
        fresh.load_init_weights(bad)
    with pytest.raises(KeyError, match=r"other.ckpt: missing key 'state_dict' and not a state_dict itself \(found \['epoch'\]\)"):
        torch.save({"epoch": 1}, bad)
        read_state_dict(bad)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        read_state_dict(tmp_path / "missing.ckpt")
