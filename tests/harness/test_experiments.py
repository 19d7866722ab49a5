"""Every experiment config runs `fast_dev_run` end to end (tiny data sizes, small images)."""

from __future__ import annotations

import pytest
from omegaconf import DictConfig, open_dict

from experiments import experiment_files
from experiments.train import train
from tests.harness.compose import compose_config

# Per DataModule class: the sizes that make a procedural dataset tiny (written once, cached by parameters).
TINY_DATA = {
    "Dad3DHeadsDataModule": {"n_train": 8, "n_val": 4, "n_test": 4, "frame_size": 160},
    "W300LPDataModule": {"n_per_folder": 2, "n_profiles": 1, "val_fraction": 0.25},
    "Aflw2000DataModule": {"n": 4},
    "ComaDataModule": {"n_frames": 4},
    "BfmSyntheticDataModule": {"n_train": 8, "n_val": 4, "n_test": 4},
    "Landmarks3DDataModule": {"n_train": 16, "n_val": 8, "n_test": 8},
}
COMMON = {"batch_size": 2, "num_workers": 0, "persistent_workers": False}


def shrink(node: DictConfig) -> None:
    """Apply the tiny sizes to every DataModule node (also nested ones, e.g. fit/test pairs)."""
    target = str(node.get("_target_", ""))
    cls = target.rsplit(".", 1)[-1]
    with open_dict(node):
        for key, value in {**TINY_DATA.get(cls, {}), **COMMON}.items():
            if cls in TINY_DATA and key in node:
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
