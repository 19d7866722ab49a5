"""The dataset registry: every registered dataset is written at its tiny size, checked clean by its
checker, read by its DataModule (one batch), and named by a Hydra data config that builds that DataModule."""

from __future__ import annotations

import inspect

import pytest
import torch

from datamodules.registry import check_dataset, dataset_names, get_dataset, write_dataset
from facemodels.landmark_sets import landmark_set_names
from tests.harness.compose import compose_config

LOADER = {"batch_size": 2, "num_workers": 0}


def _one_batch(dm) -> dict:
    dm.setup("fit")
    try:
        loader = dm.train_dataloader()
    except KeyError:  # test-only datasets (AFLW2000-3D)
        loader = dm.test_dataloader()
    return next(iter(loader))


@pytest.mark.parametrize("name", dataset_names())
def test_every_dataset_writes_checks_and_loads(name, tmp_path):
    entry = get_dataset(name)
    kwargs = {**entry.tiny, **LOADER}
    if entry.write is not None:
        write_dataset(name, tmp_path, entry.tiny_n, seed=1)
        n, problems = check_dataset(name, tmp_path)
        assert n > 0 and problems == [], problems
        kwargs.update(data_dir=str(tmp_path), image_size=64, persistent_workers=False)
    batch = _one_batch(entry.datamodule(**kwargs))
    lm = batch["landmarks_px"]  # (B, L, 2) px: every DataModule's batches carry it
    assert lm.ndim == 3 and lm.shape[0] == LOADER["batch_size"] and lm.shape[-1] == 2, lm.shape
    assert torch.isfinite(lm).all()
    if "image" in batch:
        assert batch["image"].shape[0] == lm.shape[0] and batch["image"].shape[1] == 3


def test_checker_of_every_writable_dataset_rejects_an_empty_folder(tmp_path):
    for name in dataset_names("check"):
        n, problems = check_dataset(name, tmp_path)
        assert problems, name
        assert str(tmp_path) in problems[0], (name, problems)
    assert check_dataset("bfm", tmp_path / "absent") == (0, [f"{tmp_path / 'absent'}: directory does not exist"])


@pytest.mark.parametrize("name", dataset_names())
def test_tiny_sizes_are_datamodule_arguments(name):
    entry = get_dataset(name)
    params = inspect.signature(entry.datamodule.__init__).parameters
    assert set(entry.tiny) <= set(params), (name, set(entry.tiny) - set(params))


@pytest.mark.parametrize("name", dataset_names())
def test_hydra_data_config_builds_the_registered_datamodule(name, tmp_path):
    entry = get_dataset(name)
    cfg = compose_config("train", [f"data={entry.config}"], tmp_path)
    assert cfg.data._target_ == f"{entry.datamodule.__module__}.{entry.datamodule.__qualname__}"
    assert set(entry.tiny) <= set(cfg.data), (name, set(entry.tiny) - set(cfg.data))


def test_registry_rejects_a_second_entry_of_one_name():
    from datamodules.registry import register_dataset

    with pytest.raises(ValueError, match="already registered"):
        register_dataset("coma", get_dataset("coma").datamodule)
    with pytest.raises(KeyError, match="unknown dataset 'nope'"):
        get_dataset("nope")
    assert dataset_names("write")[:5] == ["dad3dheads", "w300lp", "aflw2000", "coma", "bfm"]
    assert set(dataset_names()) - set(dataset_names("write")) == {"landmarks3d", "synthetic"}


@pytest.mark.parametrize("name", [n for n in dataset_names() if getattr(get_dataset(n).datamodule, "face_model", None)])
def test_a_landmark_set_of_the_other_topology_is_refused_on_construction(name):
    """A FLAME-topology dataset refuses the BFM's 520 keypoints and a BFM one FLAME's 1609 face vertices,
    before any data is written, naming the class, the sets it has and the set asked for."""
    cls = get_dataset(name).datamodule
    other = "kp520" if cls.face_model == "flame" else "face1609"
    assert other not in landmark_set_names(cls.face_model)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: landmark_set must be one of .*got '{other}'"):
        cls(landmark_set=other)
    cls(landmark_set="ibug68")  # the shared set is on both
