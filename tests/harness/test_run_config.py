"""A rerun resumes only the run its directory holds (experiments/harness/run_config.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from experiments.harness.run_config import FILENAME, differences, snapshot
from experiments.train import train
from tests.harness.compose import compose_config

TINY = ["model=tiny", "data=synthetic", "logger=csv", "trainer.accelerator=cpu"]


def test_snapshot_flattens_and_leaves_out_loading_threads_and_folders():
    cfg = OmegaConf.create({
        "model": {"loss": {"beta": 0.5}, "num_threads": 1, "optimizer": {"lr": 1e-3}},
        "data": {"batch_size": 4, "num_workers": 2, "pin_memory": True, "data_dir": "/a", "bfm_dir": None},
        "seed": 7, "trainer": {"max_epochs": 3},
    })
    assert snapshot(cfg) == {"model.loss.beta": 0.5, "model.optimizer.lr": 1e-3, "data.batch_size": 4, "seed": 7}


def test_differences_name_the_key_and_both_values():
    old = {"model.loss.beta": 0.5, "data.batch_size": 4, "model.gone": 1}
    new = {"model.loss.beta": 1.0, "data.batch_size": 4, "model.added": True}
    assert differences(old, new) == ["model.added: '<absent>' -> True", "model.gone: 1 -> '<absent>'",
                                      "model.loss.beta: 0.5 -> 1.0"]
    assert differences(old, dict(old)) == []


def test_changed_default_stops_the_resume_and_resume_false_starts_over(tmp_path):
    first = train(compose_config("train", [*TINY, "trainer.max_epochs=1"], tmp_path))
    assert first["global_step"] == 4 and (tmp_path / FILENAME).is_file()
    # the same run directory, now composed with another model setting (as after a config file's default changed)
    changed = [*TINY, "trainer.max_epochs=2", "model.optimizer.lr=0.01"]
    with pytest.raises(ValueError, match=r"model\.optimizer\.lr: 0\.001 -> 0\.01") as err:
        train(compose_config("train", changed, tmp_path))
    assert FILENAME in str(err.value) and "resume=false" in str(err.value)
    fresh = train(compose_config("train", [*changed, "resume=false"], tmp_path))
    assert fresh["global_step"] == 8  # two epochs from scratch, not one more on top of the old run
    # the record now describes the new run, so the same command resumes it
    again = train(compose_config("train", [*TINY, "trainer.max_epochs=3", "model.optimizer.lr=0.01"], tmp_path))
    assert again["global_step"] == 12
