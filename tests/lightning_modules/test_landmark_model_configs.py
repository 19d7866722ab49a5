"""Every model config of the dense-landmark methods composes with the real Hydra configs,
instantiates, and trains one step on CPU on a random batch: finite loss, every parameter gets a
finite gradient, the optimizer step changes the weights (timm zero-inits some
normalisation scales, so a few tensors may legitimately get zero gradients on the first step)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from experiments.train import instantiate_model
from tests.harness.compose import compose_config, group_options

# The dense-landmark configs of this folder; the lifting configs (zhao_depth, deep_mds,
# mobileface, lift_*: other data, other modules) have their own tests in tests/lifting.
OWN_PREFIXES = ("thesis_", "kp520_", "resll_", "zhao2d", "tiny")
OWN = [m for m in group_options("model") if m.startswith(OWN_PREFIXES)]
# Heavy backbones (ConvNeXt/Swin/ResNet-50, ~25-28 M parameters) take a few seconds each on CPU.
HEAVY = ("convnext", "swin", "resnet50", "spiral")
IMAGE_SIZE = 64


def random_batch(cfg_model, batch_size: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch following docs/ARCHITECTURE.md, with random values (not a mock)."""
    from lightning_modules.landmark_system import landmark_count

    g = torch.Generator().manual_seed(seed)
    n = landmark_count(cfg_model.landmark_set)
    s = int(cfg_model.image_size)
    lmk = torch.rand(batch_size, n, 2, generator=g) * 0.8 - 0.4
    px = (lmk + 0.5) * s
    lmk68 = (torch.rand(batch_size, 68, 2, generator=g) * 0.8 + 0.1) * s
    return {
        "image": torch.randn(batch_size, 3, s, s, generator=g),
        "landmarks": lmk,
        "landmarks_px": px,
        "landmarks3d": torch.cat([px, torch.randn(batch_size, n, 1, generator=g) * 10], -1),
        "visibility": torch.ones(batch_size, n),
        "landmarks68_px": px if n == 68 else lmk68,
        "bbox": torch.tensor([[10.0, 20.0, 100.0, 120.0]]).repeat(batch_size, 1),
        "yaw": torch.rand(batch_size, generator=g) * 180 - 90,
        "index": torch.arange(batch_size),
    }


def params_for(name: str) -> list:
    marks = [pytest.mark.slow] if any(h in name for h in HEAVY) else []
    return pytest.param(name, marks=marks, id=name)


def test_own_model_configs_exist():
    must = {
        "resll_convnext",
        "tiny",
        "zhao2d",
        "kp520_mobilenetv2",
        "kp520_resnet18",
        "kp520_resnet50",
    }
    assert must <= set(OWN)
    assert len([m for m in OWN if m.startswith("thesis_t4")]) == 16


@pytest.mark.parametrize("name", [params_for(m) for m in OWN])
def test_model_config_trains_one_step(name, tmp_path):
    overrides = [f"model={name}", f"model.image_size={IMAGE_SIZE}"]
    if name.startswith(("thesis_", "resll_")):
        overrides.append("model.landmark_set=face202")  # fewer landmarks: faster, same code path
    cfg = compose_config("train", overrides, tmp_path)
    OmegaConf.resolve(cfg)
    torch.manual_seed(0)
    model = instantiate_model(cfg.model)
    batch = random_batch(cfg.model)
    opt = model.configure_optimizers()["optimizer"]
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    model.train()
    loss, preds, targets = model.model_step(batch)
    assert torch.isfinite(loss), f"{name}: loss {loss}"
    assert preds["landmarks_px"].shape == targets["landmarks_px"].shape
    opt.zero_grad()
    loss.backward()
    for k, p in model.named_parameters():
        assert p.grad is not None, f"{name}: parameter {k} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {k}"
    opt.step()
    changed = sum(not torch.equal(before[k], p) for k, p in model.named_parameters())
    assert changed > 0, f"{name}: the optimizer step changed nothing"
    assert all(torch.isfinite(p).all() for p in model.parameters())
