"""The DAD-3DHeads DataModule (reads the real layout, see datamodules/formats/dad.py; the Dataset
is datamodules/dad3dheads_dataset.py, the cached split arrays datamodules/dad3dheads_splits.py).

Splits (as the thesis): train = the official train split; val / test = the first / second
half of the official val split (index order); predict = the official test split (images +
boxes, no labels).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from datamodules.base import FaceDataModule
from datamodules.cache import cached_dataset
from datamodules.dad3dheads_dataset import Dad3DHeadsDataset, cache_mode
from datamodules.dad3dheads_splits import flame_dir_or_default
from datamodules.formats import dad
from datamodules.writers.dad3dheads import write_dad3dheads

__all__ = ["Dad3DHeadsDataModule"]


class Dad3DHeadsDataModule(FaceDataModule):
    """DAD-3DHeads. ``data_dir`` null -> procedural DAD-format data (n_train / n_val /
    n_test images of ``frame_size`` px) written once under the cache root."""

    face_model = "flame"

    def __init__(
        self,
        n_train: int = 1500,
        n_val: int = 300,
        n_test: int = 50,
        frame_size: int = 320,
        flame_dir: str | None = None,
        annotation_cache_root: str | None = None,
        image_cache: bool | str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_train, self.n_val, self.n_test = int(n_train), int(n_val), int(n_test)
        self.frame_size = int(frame_size)
        self.flame_dir = flame_dir
        self.annotation_cache_root = annotation_cache_root
        if image_cache == "auto":  # procedural frames: one size, small -> cache; real data: decode
            image_cache = "frames" if self.data_dir is None else "none"
        self.image_cache = cache_mode(image_cache)

    def layout_help(self) -> str:
        return dad.LAYOUT

    def _build_root(self) -> Path:
        fd = flame_dir_or_default(self.flame_dir)
        params = {"n_train": self.n_train, "n_val": self.n_val, "n_test": self.n_test,
                  "image_size": self.frame_size, "seed": self.seed, "flame_dir": fd}
        return cached_dataset("dad3dheads", params, write_dad3dheads, self.cache_root)

    def _build_datasets(self, root: Path) -> dict:
        common = dict(landmark_set=self.landmark_set, image_size=self.image_size,
                      flame_dir=self.flame_dir, cache_root=self.annotation_cache_root,
                      skip_corrupt=self.skip_corrupt, image_cache=self.image_cache,
                      defer_photometric=self.normalize_on_device)
        if not (root / "train").is_dir() and not (root / "val").is_dir():
            raise FileNotFoundError(f"DAD-3DHeads root {root} has no train/ or val/; {dad.LAYOUT}")
        ds = {}
        if (root / "train").is_dir():
            ds["train"] = Dad3DHeadsDataset(root, "train", train=True, augment=self.augment, **common)
        n_val = len(dad.read_index(root, "val"))
        half = int(math.ceil(n_val / 2))
        ds["val"] = Dad3DHeadsDataset(root, "val", indices=np.arange(half), **common)
        ds["test"] = Dad3DHeadsDataset(root, "val", indices=np.arange(half, n_val), **common)
        if dad.index_path(root, "test").is_file():
            ds["predict"] = Dad3DHeadsDataset(root, "test", **common)
        return ds
