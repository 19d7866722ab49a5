"""Adding a dataset is one registry entry: a throwaway dataset (writer, DataModule and checker defined
here, its Hydra data config given to the registry, no YAML file) is written by the CLI into tmp_path,
checked, read, and trained one step with the tiny model through the real Hydra configs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.registry import dataset_names, get_dataset, register_dataset, unregister_dataset
from datamodules.synthetic import SyntheticLandmarkDataset
from experiments.data import main as data_main
from experiments.train import train
from tests.harness.compose import compose_config

KEYS = ("image", "landmarks", "landmarks_px", "landmarks3d", "visibility", "bbox", "yaw")


def write_throwaway(out: Path, n: int, seed: int) -> None:
    """n samples of the synthetic landmark images (68 points, 64 px), one ``sample_XXXX.npz`` each."""
    ds = SyntheticLandmarkDataset(n, 68, 64, seed)
    for i in range(n):
        np.savez(out / f"sample_{i:04d}.npz", **{k: ds[i][k].numpy() for k in KEYS})


def check_throwaway(root: Path) -> Iterator[tuple[int, str | None]]:
    files = sorted(root.glob("sample_*.npz"))
    if not files:
        yield 1, f"{root}: no sample_XXXX.npz files"
    for f in files:
        try:
            with np.load(f) as z:
                missing = [k for k in KEYS if k not in z.files]
            yield 1, f"{f}: missing {missing}" if missing else None
        except (OSError, ValueError) as e:
            yield 1, f"{f}: unreadable ({e})"


class _NpzDataset(Dataset):
    def __init__(self, files: list[Path]):
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        with np.load(self.files[i]) as z:
            sample = {k: torch.from_numpy(z[k]) for k in KEYS}
        sample["landmarks68_px"] = sample["landmarks_px"]
        sample["index"] = torch.tensor(i)
        return sample


class ThrowawayDataModule(pl.LightningDataModule):
    """The written folder: first half train, the rest val = test."""

    def __init__(self, data_dir: str, landmark_set: str = "ibug68", image_size: int = 64, batch_size: int = 4,
                 num_workers: int = 0):
        super().__init__()
        assert landmark_set == "ibug68" and image_size == 64
        self.data_dir, self.batch_size, self.num_workers = Path(data_dir), batch_size, num_workers

    def setup(self, stage: str | None = None) -> None:
        files = sorted(self.data_dir.glob("sample_*.npz"))
        self.train_set, self.val_set = _NpzDataset(files[: len(files) // 2]), _NpzDataset(files[len(files) // 2:])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

    test_dataloader = val_dataloader


@pytest.fixture
def throwaway():
    target = f"{ThrowawayDataModule.__module__}.{ThrowawayDataModule.__qualname__}"
    entry = register_dataset(
        "throwaway", ThrowawayDataModule, write=write_throwaway, check=check_throwaway, tiny_n=8,
        hydra_config={"_target_": target, "data_dir": None, "landmark_set": "${model.landmark_set}",
                      "image_size": "${model.image_size}", "batch_size": 2, "num_workers": 0},
        summary="n synthetic landmark images as .npz")
    yield entry
    unregister_dataset("throwaway")


def test_throwaway_dataset_written_checked_loaded_and_trained(throwaway, tmp_path, capsys):
    assert "throwaway" in dataset_names("write") and get_dataset("throwaway") is throwaway
    data = tmp_path / "data"
    assert data_main(["write", "--dataset", "throwaway", "--out", str(data), "--n", "8", "--seed", "3"]) == 0
    assert len(list(data.glob("sample_*.npz"))) == 8
    assert data_main(["check", "--dataset", "throwaway", "--dir", str(data)]) == 0
    assert "checked 8 files, 0 problem(s)" in capsys.readouterr().out

    dm = throwaway.datamodule(data_dir=str(data), batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["landmarks"].shape == (2, 68, 2)

    cfg = compose_config("train", ["model=tiny", "data=throwaway", f"data.data_dir={data}", "logger=csv",
                                   "trainer.max_steps=1", "trainer.max_epochs=1", "trainer.accelerator=cpu"],
                         tmp_path / "run")
    result = train(cfg)
    assert result["global_step"] == 1
    assert any(k.startswith("test/") for k in result["metrics"]), result["metrics"]
    assert all(np.isfinite(v) for v in result["metrics"].values())

    (data / "sample_0002.npz").write_bytes(b"broken")
    assert data_main(["check", "--dataset", "throwaway", "--dir", str(data)]) == 1
    out = capsys.readouterr().out
    assert "sample_0002.npz: unreadable" in out and "1 problem(s)" in out


def test_unregistered_throwaway_leaves_no_hydra_config(tmp_path):
    from hydra.errors import MissingConfigException

    assert "throwaway" not in dataset_names()
    with pytest.raises(MissingConfigException):
        compose_config("train", ["data=throwaway"], tmp_path)


def test_prepare_writes_the_datamodules_default_set_into_its_cache(tmp_path, capsys):
    """`experiments.data prepare` writes the set a DataModule with these arguments would write when
    training starts, and a DataModule built with the same arguments finds it (same folder, no rewrite)."""
    args = {**get_dataset("dad3dheads").tiny, "cache_root": str(tmp_path)}
    assert data_main(["prepare", "--dataset", "dad3dheads", *[f"--arg={k}={v}" for k, v in args.items()]]) == 0
    root = Path(capsys.readouterr().out.strip().split(" at ")[-1])
    assert root.parent == tmp_path and len(list((root / "train" / "images").iterdir())) == args["n_train"]
    stamp = {f: f.stat().st_mtime_ns for f in root.rglob("*") if f.is_file()}
    dm = get_dataset("dad3dheads").datamodule(**args)
    dm.prepare_data()
    assert dm.root == root and {f: f.stat().st_mtime_ns for f in root.rglob("*") if f.is_file()} == stamp
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        data_main(["prepare", "--dataset", "dad3dheads", "--arg", "n_train"])
