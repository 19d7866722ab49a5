"""GPU path of the landmark LightningModules (issue 9): `channels_last` and `compile` model config
keys. On CPU: the keys compose and instantiate for every LandmarkSystem family, channels_last
(forced on) gives the same outputs and gradients as the contiguous layout, compile keeps the
state_dict keys. The CUDA defaults (channels_last on, bf16 autocast) are checked under `gpu`."""

from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf

from experiments.train import instantiate_model
from lightning_modules.landmark_system import LandmarkSystem
from tests.harness.compose import compose_config


def _model(name: str = "tiny", *extra: str) -> LandmarkSystem:
    cfg = compose_config("train", [f"model={name}", "data=synthetic", *extra])
    return instantiate_model(OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True)))


def _batch(model: LandmarkSystem, B: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    S, L = model.image_size, model.num_landmarks
    return {"image": torch.randn(B, 3, S, S, generator=g), "landmarks": torch.rand(B, L, 2, generator=g) - 0.5}


def _record_net_inputs(model: LandmarkSystem) -> list[bool]:
    """Whether each image the net sees is channels_last (a forward pre-hook on model.net)."""
    seen: list[bool] = []
    model.net.register_forward_pre_hook(
        lambda mod, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    return seen


def _is_channels_last(net: torch.nn.Module) -> bool:
    convs = [p for p in net.parameters() if p.ndim == 4 and p.shape[-1] > 1]
    assert convs, "the net has no 4-D conv weights"
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)


@pytest.mark.parametrize("name", ["tiny", "zhao2d", "kp520_mobilenetv2"])
def test_keys_compose_for_every_landmark_family(name):
    model = _model(name, "model.channels_last=true", "model.compile=eager")
    assert model.channels_last is True and model.compile_backend == "eager"
    assert "channels_last" not in model.hparams and "compile" not in model.hparams
    default = _model(name)
    assert default.channels_last is None and default.compile_backend is None


def test_defaults_keep_cpu_contiguous_and_bad_compile_value_raises():
    model = _model()
    model.apply_gpu_path("cpu")
    assert not _is_channels_last(model.net)
    batch = _batch(model)
    assert model.channels_last_batch(batch) is batch
    with pytest.raises(Exception, match="model config key .compile."):
        _model("tiny", "model.compile=3")


def test_channels_last_forced_on_cpu_gives_identical_outputs_and_gradients():
    ref = _model()
    ref.train()
    cl = copy.deepcopy(ref)
    cl.channels_last = True
    cl.apply_gpu_path("cpu")
    assert _is_channels_last(cl.net) and not _is_channels_last(ref.net)
    batch = _batch(ref)
    seen = _record_net_inputs(cl)
    loss_ref, preds_ref, _ = ref.model_step(batch)
    loss_cl, preds_cl, _ = cl.model_step(batch)
    assert seen == [True] and batch["image"].is_contiguous()  # the caller's batch is left alone
    torch.testing.assert_close(preds_cl["landmarks_px"], preds_ref["landmarks_px"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loss_cl, loss_ref, rtol=1e-4, atol=1e-5)
    loss_ref.backward()
    loss_cl.backward()
    for (n, a), (_, b) in zip(ref.named_parameters(), cl.named_parameters(), strict=True):
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-5, msg=n)
    cl.channels_last = False  # and back
    cl.apply_gpu_path("cpu")
    assert not _is_channels_last(cl.net)


def test_compile_in_place_keeps_state_dict_keys_and_outputs():
    ref = _model().eval()
    comp = copy.deepcopy(ref)
    comp.compile_backend = "eager"  # dynamo tracing without a C++ toolchain: fast on CPU
    comp.apply_gpu_path("cpu")
    assert comp.net._compiled_call_impl is not None
    assert list(comp.state_dict()) == list(ref.state_dict())
    x = _batch(ref)["image"]
    with torch.no_grad():
        torch.testing.assert_close(comp.net(x), ref.net(x))


def test_trainer_setup_applies_the_flags(tmp_path):
    model = _model("tiny", "model.channels_last=true")
    seen = _record_net_inputs(model)
    cfg = compose_config("train", ["model=tiny", "data=synthetic"])
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    trainer = pl.Trainer(accelerator="cpu", fast_dev_run=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    assert seen == [True, True] and _is_channels_last(model.net)  # one train + one val step


@pytest.mark.gpu
def test_cuda_defaults_channels_last_bf16_and_inductor_compile(tmp_path):
    model = _model("tiny", "model.compile=true")
    seen = _record_net_inputs(model)

    cfg = compose_config("train", ["model=tiny", "data=synthetic"])
    from hydra.utils import instantiate

    trainer = pl.Trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         limit_val_batches=0, default_root_dir=tmp_path)
    trainer.fit(model, datamodule=instantiate(cfg.data))
    assert seen and all(seen) and _is_channels_last(model.net)  # channels_last by default on CUDA
    assert model.net._compiled_call_impl is not None
    assert all(torch.isfinite(p).all() for p in model.parameters())
