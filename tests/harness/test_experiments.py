"""Every experiment config runs `fast_dev_run` end to end (tiny data sizes, small images)."""

from __future__ import annotations

import pytest
from omegaconf import DictConfig, open_dict

from datamodules.registry import dataset_names, get_dataset
from experiments import experiment_files
from experiments.train import train
from tests.harness.compose import compose_config

# Per DataModule `_target_`: the registry's sizes that make a procedural dataset tiny (written once, cached
# by parameters).
TINY_DATA = {f"{e.datamodule.__module__}.{e.datamodule.__qualname__}": dict(e.tiny)
             for e in map(get_dataset, dataset_names())}
COMMON = {"batch_size": 2, "num_workers": 0, "persistent_workers": False}


def shrink(node: DictConfig) -> None:
    """Apply the tiny sizes to every DataModule node (also nested ones, e.g. fit/test pairs)."""
    target = str(node.get("_target_", ""))
    with open_dict(node):
        for key, value in {**TINY_DATA.get(target, {}), **COMMON}.items():
            if target in TINY_DATA and key in node:
                node[key] = value
    for value in node.values():
        if isinstance(value, DictConfig) and "_target_" in value:
            shrink(value)


@pytest.mark.parametrize("experiment", experiment_files.names("experiment"))
def test_experiment_fast_dev_run(experiment, tmp_path):
    cfg = compose_config("train", [f"experiment={experiment}", "debug=fast_dev_run", "model.image_size=64"], tmp_path)
    shrink(cfg.data)
    result = train(cfg)
    assert any(k.startswith("test/") for k in result["metrics"]), result["metrics"]
