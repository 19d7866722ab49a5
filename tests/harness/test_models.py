"""experiments.create_model / list_models: names from configs/model, overrides as dotted keys with
Python values, clear errors for unknown names and keys, the same system as the training entry point."""

from __future__ import annotations

import inspect

import pytest
import torch
from omegaconf import OmegaConf

import experiments
from experiments.models import instantiate_model, list_models, model_config
from lightning_modules.dense_landmarks import DenseLandmarkModule
from lightning_modules.zhao2d import Zhao2DModule
from tests.harness.compose import compose_config, group_options


def test_list_models_is_the_model_group_and_filters_by_pattern():
    assert list_models() == group_options("model")
    assert list_models("thesis_t42_*_ve") == ["thesis_t42_convnext_tiny_ve", "thesis_t42_mobilenetv3_large_ve",
                                              "thesis_t42_swin_tiny_ve"]
    assert list_models("no_such_*") == []


def test_create_model_applies_dotted_overrides_with_python_values():
    model = experiments.create_model("tiny", image_size=32, channels_last=True, compile=None,
                                     **{"optimizer.lr": 0.5, "net.head.channels": 4})
    assert isinstance(model, DenseLandmarkModule)
    assert model.image_size == 32 and model.channels_last is True
    assert model.compile_backend is None  # None is dropped (timm's rule): the config's `false` stays
    assert model.configure_optimizers()["optimizer"].param_groups[0]["lr"] == 0.5
    cfg = model_config("tiny", image_size=32)
    assert cfg.image_size == 32 and cfg.net.backbone.name == "resnet18"  # resolved, interpolations included
    assert cfg.net.head.num_landmarks == 68


def test_create_model_is_the_training_entry_points_system(tmp_path):
    cfg = compose_config("train", ["model=zhao2d", "model.image_size=64"], tmp_path)
    OmegaConf.resolve(cfg)
    torch.manual_seed(0)
    a = instantiate_model(cfg.model)
    torch.manual_seed(0)
    b = experiments.create_model("zhao2d", image_size=64)
    assert isinstance(b, Zhao2DModule) and type(a) is type(b)
    assert {k: v for k, v in a.hparams.items() if k != "optimizer"} == {k: v for k, v in b.hparams.items() if k != "optimizer"}
    assert repr(a.hparams.optimizer) == repr(b.hparams.optimizer)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unknown_names_and_keys_fail_clearly():
    with pytest.raises(ValueError, match="unknown model 'nope'.*known models: .*resll_convnext"):
        experiments.create_model("nope")
    with pytest.raises(KeyError, match="configs/model/tiny.yaml has no key 'image_sise'"):
        model_config("tiny", image_sise=32)
    cfg = model_config("tiny", **{"+net.backbone.extra_key": 3})  # '+' adds a key, as on Hydra's command line
    assert cfg.net.backbone.extra_key == 3


def test_system_signatures_are_honest():
    """The GPU-path keys are ordinary keyword arguments (no rewritten __init__), so inspect and Hydra see them."""
    params = inspect.signature(DenseLandmarkModule).parameters
    assert params["channels_last"].default is None and params["compile"].default is False
    assert params["monitor"].default == "val/mlme"
    assert DenseLandmarkModule.__init__.__qualname__ == "DenseLandmarkModule.__init__"


def test_a_model_variant_is_one_config_file(tmp_path):
    """A throwaway variant written in tmp_path (outside the repository, found through Hydra's search
    path) is trained a step by the real entry point and rebuilt from its checkpoint alone."""
    from experiments.checkpoints import load_system
    from tests.harness.run_cli import run_train

    variant = tmp_path / "extra" / "model" / "tiny_wide_head.yaml"
    variant.parent.mkdir(parents=True)
    variant.write_text("defaults:\n  - tiny@_here_\n  - _self_\nimage_size: 32\noptimizer:\n  lr: 5.0e-4\n")
    run = tmp_path / "run"
    run_train([f"hydra.searchpath=[file://{variant.parent.parent}]", "model=tiny_wide_head", "data=synthetic",
               "debug=fast_dev_run", "logger=csv", "trainer.accelerator=cpu"], run, tmp_path)
    ckpts = sorted((run / "checkpoints").glob("*.ckpt"))
    assert ckpts, list(run.rglob("*"))
    system = load_system(ckpts[0])
    assert system.config.model.image_size == 32 and system.config.model.optimizer.lr == 5.0e-4
    assert system.module.image_size == 32
