"""300W-LP DataModule + Dataset (3DDFA layout, see datamodules/formats/matfiles.py).

Layout: ``<root>/{AFW,HELEN,IBUG,LFPW}[_Flip]/<name>.jpg + <name>.mat`` and
``<root>/landmarks/<set>/<name>_pts.mat``. Splits: a deterministic ``val_fraction`` of the
SOURCE images (a name without its profiling index, flips included) is held out for
val (= test); the rest is train.

Per sample: ``image`` crop around the box of the 68 ``pt2d`` landmarks; ``landmarks68_px``
(68, 2) from ``pt2d``. ``landmark_set``:
- "ibug68": ``landmarks`` / ``landmarks_px`` = pt2d; ``landmarks3d`` (68, 3): when a BFM
  folder is available (``with_3d``), the 3DDFA reconstruction ``s R v + t`` of the 68
  keypoints (orthographic, y = h - y - 1, z towards the camera, centred) else absent;
- "kp520": the 520 dense keypoints (facemodels.keypoints520 on the BFM folder) reconstructed
  from the stored Shape/Exp/Pose parameters with the same 3DDFA projection: ``landmarks``,
  ``landmarks_px`` (520, 2), ``landmarks3d`` (520, 3) z centred; flips use the kp520 flip
  permutation. 300W-LP has no visibility: ``visibility`` is all ones for both sets; ``params`` (235,) float32 =
[Shape_Para (199), Exp_Para (29), Pose_Para (7)] as stored (pose in original-image px;
on a flip: yaw, roll negated and tx -> W - 1 - tx); ``yaw`` degrees; ``bbox``;
``visibility`` ones (300W-LP has no visibility). For the camera of the crop (MobileFace's
118 parameters, lightning_modules.components.bfm118.BFM118.from_3ddfa): ``crop_matrix`` (3, 3)
float32 maps the source image in which ``params``' pose is expressed to crop px (on a flip: the
mirrored source, so it keeps orientation), ``source_height`` () float32 H of the source image,
``flipped`` () float32 1.0 when the crop shows the mirrored face (Shape_Para / Exp_Para are then
those of the unmirrored face). ``W300LPDataset.conversion_inputs()`` gives the same for every
sample without augmentation (e.g. the training split's parameter statistics).
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.base import FaceDataModule, FaceDataset
from datamodules.bfm_synthetic import load_keypoint_basis
from datamodules.cache import cached_dataset
from datamodules.crop_geometry import crop_matrix, flip_matrix
from datamodules.formats.matfiles import W300LP_SPEC, read_mat
from datamodules.photometric import normalise_image
from datamodules.transforms import AugmentConfig, FaceCropTransform
from datamodules.writers.threeddfa import WRITER_VERSION
from datamodules.writers.w300lp import write_300wlp
from facemodels.ibug68 import IBUG68_FLIP
from facemodels.landmark_sets import flip_permutation, landmark_set_names, landmark_vertex_indices

__all__ = ["W300LPDataset", "W300LPDataModule", "list_300wlp", "PARAM_LAYOUT",
           "W300LP_FOLDERS", "LAYOUT"]

W300LP_FOLDERS = ("AFW", "AFW_Flip", "HELEN", "HELEN_Flip", "IBUG", "IBUG_Flip", "LFPW", "LFPW_Flip")
LAYOUT = ("expected 300W-LP layout: <root>/{AFW,HELEN,IBUG,LFPW}[_Flip]/<name>.jpg + <name>.mat, "
          "<root>/landmarks/<set>/<name>_pts.mat")
PARAM_LAYOUT = {"shape": slice(0, 199), "expression": slice(199, 228), "pose": slice(228, 235)}
# iBUG-68 mirror permutation (same as facemodels' iBUG-68 flip).


def list_300wlp(root: str | Path) -> list[Path]:
    """Sorted .mat paths of every 300W-LP folder present under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"300W-LP root {root} does not exist; {LAYOUT}")
    mats = [p for f in W300LP_FOLDERS if (root / f).is_dir() for p in sorted((root / f).glob("*.mat"))]
    if not mats:
        raise FileNotFoundError(f"no 300W-LP .mat files under {root}; {LAYOUT}")
    return mats


def source_id(mat: Path) -> str:
    """'AFW_134212_1_0' in AFW_Flip -> 'AFW_134212_1' (groups flips and profile views)."""
    return re.sub(r"_\d+$", "", mat.stem)


def bbox_from_points(pts: np.ndarray) -> np.ndarray:
    """[x, y, w, h] of the min / max box of (N, 2) px points."""
    lo, hi = pts.min(0), pts.max(0)
    return np.array([lo[0], lo[1], max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0)])


class W300LPDataset(FaceDataset):
    spec = W300LP_SPEC

    def __init__(
        self,
        mats: list[Path],
        image_size: int = 256,
        landmark_set: str = "ibug68",
        train: bool = False,
        augment: AugmentConfig | None = None,
        bfm_dir: str | None = None,
        with_3d: bool = True,
        skip_corrupt: bool = False,
    ):
        super().__init__(skip_corrupt)
        if landmark_set not in landmark_set_names("bfm"):
            raise ValueError(f"{type(self).__name__}: landmark_set must be one of "
                             f"{landmark_set_names('bfm')} (sets on the BFM), got {landmark_set!r}")
        self.mats = list(mats)
        self.size = int(image_size)
        self.transform = FaceCropTransform(image_size, train, augment)
        self.with_3d, self.bfm_dir = bool(with_3d), bfm_dir
        self.landmark_set = landmark_set
        self._bfm = None
        self._dense = None
        if landmark_set == "kp520":
            self.dense_flip = np.asarray(flip_permutation("kp520", bfm_dir), np.int64)
            self._dense_ids = np.asarray(landmark_vertex_indices("kp520", bfm_dir), np.int64)

    def _dense3d(self, m: dict, H: int) -> np.ndarray:
        """(520, 3) kp520 reconstruction in image px (y down, z towards the camera)."""
        if self._dense is None:
            self._dense = load_keypoint_basis(self.bfm_dir, self._dense_ids)
        return self._dense.project_3ddfa(m["Shape_Para"][:, 0], m["Exp_Para"][:, 0],
                                         m["Pose_Para"][0].astype(np.float64), H)

    def __len__(self) -> int:
        return len(self.mats)

    def _keypoints3d(self, m: dict, H: int) -> np.ndarray | None:
        """(68, 3) 3DDFA reconstruction of the keypoints in image px (y down, z to camera)."""
        if not self.with_3d:
            return None
        if self._bfm is None:
            self._bfm = load_keypoint_basis(self.bfm_dir)
        return self._bfm.project_3ddfa(m["Shape_Para"][:, 0], m["Exp_Para"][:, 0], m["Pose_Para"][0], H)

    def _read(self, i: int) -> tuple[np.ndarray, dict]:
        mat = self.mats[i]
        m = read_mat(mat, self.spec)
        jpg = mat.with_suffix(".jpg")
        try:
            with Image.open(jpg) as im:
                img = np.asarray(im.convert("RGB"))
        except FileNotFoundError:
            raise
        except OSError as e:
            raise OSError(f"corrupt image {jpg}: {e}") from e
        return img, m

    def landmarks68(self, m: dict) -> np.ndarray:
        return m["pt2d"].T.astype(np.float64)  # (68, 2)

    def load(self, i: int, rng: np.random.Generator) -> dict:
        img, m = self._read(i)
        H, W = img.shape[:2]
        lm68 = self.landmarks68(m)
        pts = {"lm68": lm68}
        k3 = self._keypoints3d(m, H)
        if k3 is not None:
            pts["lm3"] = k3
        flips = {"lm68": IBUG68_FLIP, "lm3": IBUG68_FLIP}
        if self.landmark_set == "kp520":
            pts["dense"] = self._dense3d(m, H)
            flips["dense"] = self.dense_flip
        bbox = bbox_from_points(lm68)
        out = self.transform(img, bbox, pts, flips, rng, eyes=("lm68", 36, 45))
        lm = out["points"]["lm68"]
        pose = m["Pose_Para"][0].astype(np.float64).copy()
        src_to_crop = out["matrix"]
        if out["flipped"]:
            pose[1], pose[2], pose[3] = -pose[1], -pose[2], W - 1 - pose[3]
            src_to_crop = src_to_crop @ flip_matrix(W)  # from the mirrored source, where `pose` holds
        params = np.concatenate([m["Shape_Para"][:, 0], m["Exp_Para"][:, 0], pose])
        s = {
            "image": normalise_image(out["image"]),
            "landmarks": lm / self.size - 0.5,
            "landmarks_px": lm,
            "landmarks68_px": lm,
            "visibility": np.ones(68, np.float32),
            "params": params,
            "yaw": np.float32(math.degrees(pose[1])),
            "bbox": bbox,
            "crop_matrix": src_to_crop.astype(np.float32),
            "source_height": np.float32(H),
            "flipped": np.float32(bool(out["flipped"])),
        }
        if k3 is not None:
            l3 = out["points"]["lm3"]
            l3[:, 2] -= l3[:, 2].mean()
            s["landmarks3d"] = l3
        if self.landmark_set == "kp520":
            d = out["points"]["dense"]
            d[:, 2] -= d[:, 2].mean()
            s.update(landmarks=d[:, :2] / self.size - 0.5, landmarks_px=d[:, :2], landmarks3d=d,
                     visibility=np.ones(len(d), np.float32))
        return s

    def conversion_inputs(self) -> dict[str, np.ndarray]:
        """Every sample's parameters and crop geometry WITHOUT augmentation (reads the .mat files and
        the image headers only): ``params`` (N, 235) float64, ``crop_matrix`` (N, 3, 3) float64,
        ``source_height`` (N,) float64, ``flipped`` (N,) float64 zeros."""
        params, mats, heights = [], [], []
        for path in self.mats:
            m = read_mat(path, self.spec)
            with Image.open(path.with_suffix(".jpg")) as im:
                heights.append(float(im.size[1]))
            params.append(np.concatenate([m["Shape_Para"][:, 0], m["Exp_Para"][:, 0],
                                          m["Pose_Para"][0].astype(np.float64)]))
            mats.append(crop_matrix(bbox_from_points(self.landmarks68(m)), self.size, self.transform.cfg.crop_scale))
        n = len(self.mats)
        return {"params": np.asarray(params, np.float64).reshape(n, 235),
                "crop_matrix": np.asarray(mats, np.float64).reshape(n, 3, 3),
                "source_height": np.asarray(heights, np.float64), "flipped": np.zeros(n)}


class W300LPDataModule(FaceDataModule):
    """300W-LP. ``data_dir`` null -> procedural 300W-LP (``n_per_folder`` source images per
    source set, each with ``n_profiles`` profiling views and the _Flip copies)."""

    box_convention = "landmarks68"  # crops around the box of the 68 landmarks (experiments.face_detection)
    face_model = "bfm"

    def __init__(self, val_fraction: float = 0.05, n_per_folder: int = 40, n_profiles: int = 3,
                 bfm_dir: str | None = None, with_3d: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.val_fraction, self.n_per_folder, self.n_profiles = float(val_fraction), int(n_per_folder), int(n_profiles)
        self.bfm_dir, self.with_3d = bfm_dir, with_3d

    def layout_help(self) -> str:
        return LAYOUT

    def _build_root(self) -> Path:
        params = {"n_per_folder": self.n_per_folder, "n_profiles": self.n_profiles,
                  "seed": self.seed, "bfm_dir": self.bfm_dir, "version": WRITER_VERSION}
        return cached_dataset("w300lp", params, write_300wlp, self.cache_root)

    def _build_datasets(self, root: Path) -> dict:
        mats = list_300wlp(root)
        is_val = [(zlib.crc32(f"{self.seed}:{source_id(p)}".encode()) % 10_000) < self.val_fraction * 10_000
                  for p in mats]
        kw = dict(image_size=self.image_size, landmark_set=self.landmark_set, bfm_dir=self.bfm_dir,
                  with_3d=self.with_3d, skip_corrupt=self.skip_corrupt)
        val = W300LPDataset([p for p, v in zip(mats, is_val, strict=True) if v], **kw)
        train = W300LPDataset([p for p, v in zip(mats, is_val, strict=True) if not v], train=True,
                              augment=self.augment, **kw)
        return {"train": train, "val": val, "test": val}
