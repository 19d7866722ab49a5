"""Every config of every group composes, and its interpolations resolve."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from tests.harness.compose import compose_config, group_options

GROUPS = ["trainer", "logger", "callbacks", "debug", "schedule", "hparams_search", "experiment"]


@pytest.mark.parametrize("model", group_options("model"))
def test_every_model_config_composes(model, tmp_path):
    cfg = compose_config("train", [f"model={model}"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.model._target_
    assert cfg.model.landmark_set and int(cfg.model.image_size) > 0
    assert cfg.model.monitor and cfg.model.monitor_mode in ("min", "max")


@pytest.mark.parametrize("data", group_options("data"))
def test_every_data_config_composes(data, tmp_path):
    cfg = compose_config("train", [f"data={data}"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.data._target_


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in group_options(g)], ids=lambda v: str(v)
)
def test_every_group_option_composes(group, option, tmp_path):
    cfg = compose_config("train", [f"{group}={option}"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.trainer._target_ == "pytorch_lightning.Trainer"


def test_eval_config_composes(tmp_path):
    cfg = compose_config("eval", ["ckpt_path=/nonexistent.ckpt"], tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.task_name == "eval"


def test_run_dir_depends_only_on_the_command(tmp_path):
    # resolve each name right after its own composition (the hydra runtime is global)
    a, b, c = (compose_config("train", ov, tmp_path).run_name
               for ov in (["model=tiny", "seed=3"], ["model=tiny", "seed=3"], ["model=tiny", "seed=4"]))
    assert a == b != c
    assert a.startswith("tiny__")
