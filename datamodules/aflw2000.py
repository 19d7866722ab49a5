"""AFLW2000-3D DataModule + Dataset (test only).

Layout: ``<root>/image0XXXX.jpg + image0XXXX.mat`` (300W-LP keys + pt3d_68 (3, 68) float32,
pt2d (2, 21) AFLW points). The 3DDFA protocol arrays are written next to them by our
writer with 3DDFA's file names: ``AFLW2000-3D.pts68.npy`` (N, 3, 68), ``AFLW2000-3D.pose.npy``
(N,) yaw degrees, ``AFLW2000-3D_crop.roi_box.npy`` (N, 4) and ``AFLW2000-3D_crop.list``
(image names, one per line); the loader does not need them.

Per sample (no augmentation): ``landmarks68_px`` / ``landmarks_px`` / ``landmarks`` from
pt3d_68[:2]; ``landmarks3d`` (68, 3) from pt3d_68 (z centred, crop px scale); ``bbox`` =
min / max box of the 68 ground-truth points (the NME protocol box); ``yaw`` degrees from
Pose_Para; ``params`` as 300W-LP. ``landmark_set="kp520"``: the 520 points reconstructed
from the stored 3DDFA parameters (as 300W-LP; needs the BFM folder ``bfm_dir``), while
``landmarks68_px`` stays the pt3d_68 ground truth used by the NME protocol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import FaceDataModule
from datamodules.cache import cached_dataset
from datamodules.formats.matfiles import AFLW2000_SPEC
from datamodules.w300lp import W300LPDataset
from datamodules.writers.aflw2000 import write_aflw2000
from datamodules.writers.threeddfa import WRITER_VERSION

__all__ = ["Aflw2000Dataset", "Aflw2000DataModule", "list_aflw2000", "LAYOUT"]

LAYOUT = "expected AFLW2000-3D layout: <root>/image0XXXX.jpg + <root>/image0XXXX.mat"


def list_aflw2000(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"AFLW2000-3D root {root} does not exist; {LAYOUT}")
    mats = sorted(root.glob("image*.mat"))
    if not mats:
        raise FileNotFoundError(f"no image0XXXX.mat files under {root}; {LAYOUT}")
    return mats


class Aflw2000Dataset(W300LPDataset):
    spec = AFLW2000_SPEC

    def __init__(self, mats: list[Path], image_size: int = 256, landmark_set: str = "ibug68",
                 skip_corrupt: bool = False, bfm_dir: str | None = None, **_: object):
        super().__init__(mats, image_size, landmark_set, train=False, with_3d=False, bfm_dir=bfm_dir,
                         skip_corrupt=skip_corrupt)

    def landmarks68(self, m: dict) -> np.ndarray:
        return m["pt3d_68"][:2].T.astype(np.float64)

    def _keypoints3d(self, m: dict, H: int) -> np.ndarray:
        return m["pt3d_68"].T.astype(np.float64)  # (68, 3) px, y down, z to the camera


class Aflw2000DataModule(FaceDataModule):
    """AFLW2000-3D (test only; ``train``/``val`` absent). ``data_dir`` null -> procedural
    AFLW2000-3D-format set of ``n`` images."""

    box_convention = "landmarks68"  # crops around the box of the 68 landmarks (experiments.face_detection)

    def __init__(self, n: int = 200, bfm_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n, self.bfm_dir = int(n), bfm_dir

    def layout_help(self) -> str:
        return LAYOUT

    def _build_root(self) -> Path:
        params = {"n": self.n, "seed": self.seed, "bfm_dir": self.bfm_dir, "version": WRITER_VERSION}
        return cached_dataset("aflw2000", params, write_aflw2000, self.cache_root)

    def _build_datasets(self, root: Path) -> dict:
        ds = Aflw2000Dataset(list_aflw2000(root), self.image_size, self.landmark_set,
                             skip_corrupt=self.skip_corrupt, bfm_dir=self.bfm_dir)
        return {"test": ds, "val": ds}
