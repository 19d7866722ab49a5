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
from datamodules.crop_geometry import apply_affine
from datamodules.formats.matfiles import AFLW2000_SPEC
from datamodules.w300lp import W300LPDataset
from datamodules.writers.aflw2000 import write_aflw2000
from datamodules.writers.threeddfa import WRITER_VERSION

__all__ = ["Aflw2000Dataset", "Aflw2000DataModule", "list_aflw2000", "LAYOUT", "GT_FILES", "POSE_FILE",
           "LIST_FILE", "read_protocol_arrays"]

#: 3DDFA's test.configs file of each benchmark ground truth: original (N, 3, 68), reannotated (N, 2, 68)
GT_FILES = {"original": "AFLW2000-3D.pts68.npy", "reannotated": "AFLW2000-3D-Reannotated.pts68.npy"}
POSE_FILE = "AFLW2000-3D.pose.npy"
LIST_FILE = "AFLW2000-3D_crop.list"

LAYOUT = "expected AFLW2000-3D layout: <root>/image0XXXX.jpg + <root>/image0XXXX.mat"


def list_aflw2000(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"AFLW2000-3D root {root} does not exist; {LAYOUT}")
    mats = sorted(root.glob("image*.mat"))
    if not mats:
        raise FileNotFoundError(f"no image0XXXX.mat files under {root}; {LAYOUT}")
    return mats


def read_protocol_arrays(folder: str | Path, gt: str) -> tuple[dict[str, int], np.ndarray | None, np.ndarray | None]:
    """3DDFA's protocol arrays in ``folder``: (image name -> row of the list, (N, 2, 68) GT points
    of ``gt`` or None for "original" (pt3d_68 itself), (N,) yaw degrees of the pose list or None)."""
    if gt not in GT_FILES:
        raise ValueError(f"AFLW2000-3D: gt must be one of {sorted(GT_FILES)}, got {gt!r}")
    folder = Path(folder)
    lst = folder / LIST_FILE
    rows = {n.strip(): i for i, n in enumerate(lst.read_text().split())} if lst.is_file() else {}
    pts = None
    if gt != "original":
        path = folder / GT_FILES[gt]
        if not lst.is_file() or not path.is_file():
            raise FileNotFoundError(f"AFLW2000-3D gt={gt!r} needs {path} and {lst} (3DDFA's test.configs)")
        pts = np.load(path)
        if pts.ndim != 3 or pts.shape[0] != len(rows) or pts.shape[1] not in (2, 3) or pts.shape[2] != 68:
            raise ValueError(f"{path}: expected ({len(rows)}, 2 or 3, 68), got {pts.shape}")
        pts = pts[:, :2]
    yaw = None
    if lst.is_file() and (folder / POSE_FILE).is_file():
        yaw = np.asarray(np.load(folder / POSE_FILE), np.float64).reshape(-1)
        if yaw.shape[0] != len(rows):
            raise ValueError(f"{folder / POSE_FILE}: {yaw.shape[0]} yaws for {len(rows)} images in {lst}")
    return rows, pts, yaw


class Aflw2000Dataset(W300LPDataset):
    spec = AFLW2000_SPEC

    def __init__(self, mats: list[Path], image_size: int = 256, landmark_set: str = "ibug68",
                 skip_corrupt: bool = False, bfm_dir: str | None = None, gt: str = "original",
                 protocol_dir: str | Path | None = None, **_: object):
        super().__init__(mats, image_size, landmark_set, train=False, with_3d=False, bfm_dir=bfm_dir,
                         skip_corrupt=skip_corrupt)
        self.gt = gt
        folder = Path(protocol_dir) if protocol_dir is not None else (Path(mats[0]).parent if mats else Path("."))
        self._rows, self._gt_pts, self._yaw = read_protocol_arrays(folder, gt)
        missing = [m.with_suffix(".jpg").name for m in self.mats if m.with_suffix(".jpg").name not in self._rows]
        if (self._gt_pts is not None or self._yaw is not None) and missing:
            raise ValueError(f"AFLW2000-3D: {len(missing)} images (e.g. {missing[0]}) are not in {folder / LIST_FILE}")

    def load(self, i: int, rng: np.random.Generator) -> dict:
        s = super().load(i, rng)
        row = self._rows.get(self.mats[i].with_suffix(".jpg").name)
        if self._gt_pts is not None:  # the chosen benchmark GT, through the same crop
            s["landmarks68_px"] = apply_affine(s["crop_matrix"].astype(np.float64),
                                               self._gt_pts[row].T.astype(np.float64)).astype(np.float32)
        if self._yaw is not None:
            s["yaw"] = np.float32(self._yaw[row])
        return s

    def landmarks68(self, m: dict) -> np.ndarray:
        return m["pt3d_68"][:2].T.astype(np.float64)

    def _keypoints3d(self, m: dict, H: int) -> np.ndarray:
        return m["pt3d_68"].T.astype(np.float64)  # (68, 3) px, y down, z to the camera


class Aflw2000DataModule(FaceDataModule):
    """AFLW2000-3D (test only; ``train``/``val`` absent). ``data_dir`` null -> procedural
    AFLW2000-3D-format set of ``n`` images."""

    box_convention = "landmarks68"  # crops around the box of the 68 landmarks (experiments.face_detection)
    face_model = "bfm"

    def __init__(self, n: int = 200, bfm_dir: str | None = None, gt: str = "original",
                 protocol_dir: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n, self.bfm_dir = int(n), bfm_dir
        self.gt, self.protocol_dir = gt, protocol_dir

    def layout_help(self) -> str:
        return LAYOUT

    def _build_root(self) -> Path:
        params = {"n": self.n, "seed": self.seed, "bfm_dir": self.bfm_dir, "version": WRITER_VERSION,
                  "reannotated": True}
        return cached_dataset("aflw2000", params, write_aflw2000, self.cache_root)

    def _build_datasets(self, root: Path) -> dict:
        ds = Aflw2000Dataset(list_aflw2000(root), self.image_size, self.landmark_set,
                             skip_corrupt=self.skip_corrupt, bfm_dir=self.bfm_dir, gt=self.gt,
                             protocol_dir=self.protocol_dir)
        return {"test": ds, "val": ds}
