"""experiments.checkpoints, the one system loader: a checkpoint written by experiments.train carries its
run config, so the system is rebuilt from the file alone (no run folder); older checkpoints fall back to
<run>/.hydra/config.yaml; errors name the file and the key."""

from __future__ import annotations

import shutil

import pytest
import torch
from omegaconf import OmegaConf

from experiments.checkpoints import RUN_CONFIG_KEY, load_system, read_checkpoint, run_config
from tests.harness.test_predict import _train_tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny_run")
    return run, _train_tiny(run, [])


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    x = torch.randn(2, 3, a.image_size, a.image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(a.net(x), b.net(x))


def test_a_checkpoint_alone_rebuilds_its_system(tiny_run, tmp_path) -> None:
    run, ckpt = tiny_run
    blob = read_checkpoint(ckpt)
    assert blob[RUN_CONFIG_KEY]["model"]["_target_"].endswith("DenseLandmarkModule")
    alone = tmp_path / "moved.ckpt"  # no run folder beside it
    shutil.copy(ckpt, alone)
    loaded = load_system(alone)
    assert not loaded.module.training
    assert loaded.config.data.image_size == blob[RUN_CONFIG_KEY]["data"]["image_size"]
    _same_outputs(loaded.module, load_system(ckpt).module)


def test_old_checkpoints_read_the_run_folder(tiny_run, tmp_path) -> None:
    run, ckpt = tiny_run
    blob = read_checkpoint(ckpt)
    del blob[RUN_CONFIG_KEY]
    old = run / "checkpoints" / "old.ckpt"
    torch.save(blob, old)
    cfg = run_config(old)
    assert cfg.model.landmark_set == OmegaConf.load(run / ".hydra" / "config.yaml").model.landmark_set
    elsewhere = tmp_path / "old.ckpt"
    shutil.copy(old, elsewhere)
    with pytest.raises(FileNotFoundError, match=rf"old.ckpt: the checkpoint holds no run config \(key '{RUN_CONFIG_KEY}'\)"):
        run_config(elsewhere)
    old.unlink()


def test_errors_name_the_file_and_key(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.ckpt: checkpoint not found"):
        read_checkpoint(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    torch.save({"epoch": 1}, bad)
    with pytest.raises(KeyError, match=r"bad.ckpt: missing key 'state_dict'.*\['epoch'\]"):
        read_checkpoint(bad)
    nomodel = tmp_path / "nomodel.ckpt"
    torch.save({"state_dict": {}, RUN_CONFIG_KEY: {"data": {}}}, nomodel)
    with pytest.raises(KeyError, match=rf"nomodel.ckpt \[{RUN_CONFIG_KEY}\]: missing key 'model'"):
        run_config(nomodel)
