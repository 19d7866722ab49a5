"""CoMA DataModule + Dataset (registered FLAME-topology meshes, no images).

Splits: ``split_mode="sliced"`` (default): mesh i of the sorted list is test when
``i % 100 < 10``; ``"pyg"``: frame ``f`` is train when ``f % 100 < 90`` (PyTorch Geometric's
CoMA split). CoMA ships no validation split; ``val`` is the test subset (documented choice).

Per sample: ``vertices`` (5023, 3) metres as stored (scanner world; ``center=True``
subtracts the mesh mean); ``landmarks3d_model`` (L, 3) of ``landmark_set`` in metres,
centred; and a virtual view (datamodules/views.py) with yaw drawn from ``view_yaws``
(train: random; val/test: fixed per index): ``landmarks_px`` / ``landmarks`` (L, 2) in an
``image_size`` px image, ``landmarks3d`` (L, 3) with depth px, ``yaw`` degrees.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import FaceDataModule, FaceDataset
from datamodules.cache import cached_dataset
from datamodules.flame_info import LandmarkSet
from datamodules.formats.coma import LAYOUT, ComaItem, list_coma
from datamodules.views import view_points
from datamodules.writers.coma import write_coma
from facemodels.world import default_flame_dir
from fitting.mesh_io import read_ply

__all__ = ["ComaDataset", "ComaDataModule", "coma_split"]


def coma_split(items: list[ComaItem], mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of the sorted item list."""
    if mode == "sliced":
        test = np.array([i % 100 < 10 for i in range(len(items))])
    elif mode == "pyg":
        test = np.array([it.frame % 100 >= 90 for it in items])
    else:
        raise ValueError(f"CoMA split_mode must be 'sliced' or 'pyg', got {mode!r}")
    return np.flatnonzero(~test), np.flatnonzero(test)


class ComaDataset(FaceDataset):
    def __init__(
        self,
        items: list[ComaItem],
        landmark_set: str,
        image_size: int,
        flame_dir: str,
        train: bool = False,
        view_yaws: tuple[float, ...] = (0.0,),
        projection: str = "orthographic",
        center: bool = False,
        skip_corrupt: bool = False,
    ):
        super().__init__(skip_corrupt)
        self.items = items
        self.lms = LandmarkSet(landmark_set, flame_dir)
        self.size, self.train = int(image_size), bool(train)
        self.view_yaws = tuple(float(y) for y in view_yaws)
        self.projection, self.center = projection, bool(center)

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int, rng: np.random.Generator) -> dict:
        it = self.items[i]
        v, _ = read_ply(it.path)
        if v.shape != (5023, 3):
            raise ValueError(f"{it.path}: {v.shape[0]} vertices, expected 5023 (FLAME topology)")
        if self.center:
            v = v - v.mean(0)
        pts = self.lms.points(v)
        pts = pts - pts.mean(0)
        pick = rng if self.train else np.random.default_rng([7, i])
        yaw = self.view_yaws[int(pick.integers(len(self.view_yaws)))]
        px, depth = view_points(pts, yaw, self.size, self.projection)
        return {
            "vertices": v,
            "landmarks3d_model": pts,
            "landmarks": px / self.size - 0.5,
            "landmarks_px": px,
            "landmarks3d": np.concatenate([px, depth[:, None]], 1),
            "visibility": np.ones(len(px), np.float32),
            "yaw": np.float32(yaw),
        }


class ComaDataModule(FaceDataModule):
    """CoMA. ``data_dir`` null -> procedural CoMA (12 x 12 sequences of ``n_frames``)."""

    face_model = "flame"

    def __init__(
        self,
        split_mode: str = "sliced",
        n_frames: int = 10,
        view_yaws: tuple[float, ...] = (0.0,),
        projection: str = "orthographic",
        center: bool = False,
        flame_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.split_mode, self.n_frames = split_mode, int(n_frames)
        self.view_yaws, self.projection, self.center = tuple(view_yaws), projection, center
        self.flame_dir = flame_dir

    def layout_help(self) -> str:
        return LAYOUT

    def _fd(self) -> str:
        if self.flame_dir:
            return str(self.flame_dir)

        return str(default_flame_dir())

    def _build_root(self) -> Path:
        params = {"n_frames": self.n_frames, "seed": self.seed, "flame_dir": self._fd()}
        return cached_dataset("coma", params, write_coma, self.cache_root)

    def _build_datasets(self, root: Path) -> dict:
        items = list_coma(root)
        tr, te = coma_split(items, self.split_mode)
        kw = dict(landmark_set=self.landmark_set, image_size=self.image_size, flame_dir=self._fd(),
                  view_yaws=self.view_yaws, projection=self.projection, center=self.center,
                  skip_corrupt=self.skip_corrupt)
        test = ComaDataset([items[i] for i in te], **kw)
        return {"train": ComaDataset([items[i] for i in tr], train=True, **kw), "val": test, "test": test}
