"""BFM synthetic DataModule (Deep-MDS, METHODS.md E) and the 3DDFA keypoint basis.

``load_keypoint_basis(bfm_dir)`` reads the BFM 2009 files in the 3DDFA layout
(FORMATS.md): ``01_MorphableModel.mat`` (shapeMU (3N, 1), shapePC (3N, 199), shapeEV
(199, 1), micrometres, x, y, z interleaved), ``Model_Expression.mat`` (mu_exp, w_exp
(3M, 29) on the trimmed vertices) and ``model_info.mat`` (trimIndex (M,) and keypoints
(68,), both 1-based; keypoints index the trimmed vertices). Only the rows of the 68
keypoints are kept, so sampling is cheap.

Samples (on the fly, deterministic per (seed, split, index)): a random neutral face
alpha ~ N(0, I) (``n_shape`` modes, shape = mu + shapePC (alpha * shapeEV)), yaw drawn
from ``yaws`` and an orthographic or perspective virtual view (datamodules/views.py).
Keys: ``landmarks`` / ``landmarks_px`` (68, 2), ``landmarks3d`` (68, 3) px with depth,
``landmarks3d_model`` (68, 3) metres centred, ``visibility`` ones, ``params`` (n_shape,)
alpha, ``yaw`` degrees, ``index``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.base import FaceDataModule, to_tensors
from datamodules.views import view_points
from facemodels.bfm import EXPR_FILE, INFO_FILE, MODEL_FILE, load_bfm_arrays
from facemodels.rotations import euler_3ddfa_to_matrix
from facemodels.world import default_bfm_dir

__all__ = ["KeypointBasis", "load_keypoint_basis", "BfmSyntheticDataset", "BfmSyntheticDataModule"]

def _rows(vertex_ids_0: np.ndarray) -> np.ndarray:
    """(K,) 0-based vertex ids -> (3K,) interleaved coordinate rows."""
    return (3 * vertex_ids_0[:, None] + np.arange(3)[None]).reshape(-1)


@dataclass
class KeypointBasis:
    """The 68 keypoint rows of the BFM (micrometres).

    mu (204,), shape_pc (204, 199), shape_ev (199,), mu_exp (204,), w_exp (204, 29).
    """

    mu: np.ndarray
    shape_pc: np.ndarray
    shape_ev: np.ndarray
    mu_exp: np.ndarray
    w_exp: np.ndarray

    def neutral(self, alpha: np.ndarray) -> np.ndarray:
        """(68, 3) micrometres for standardised coefficients alpha (k <= 199,)."""
        k = len(alpha)
        return (self.mu + self.shape_pc[:, :k] @ (alpha * self.shape_ev[:k])).reshape(-1, 3)

    def project_3ddfa(self, shape_para: np.ndarray, exp_para: np.ndarray, pose_para: np.ndarray,
                      height: int) -> np.ndarray:
        """3DDFA reconstruction of the 68 keypoints: v = mu + PC Shape_Para + mu_exp + w_exp
        Exp_Para; v' = s R v + t (R from Pose_Para[:3], facemodels.rotations), orthographic,
        y = h - y - 1. Returns (68, 3) px (y down) with z towards the camera."""

        v = (self.mu + self.shape_pc @ shape_para + self.mu_exp + self.w_exp @ exp_para).reshape(-1, 3)
        R = euler_3ddfa_to_matrix(torch.tensor(np.asarray(pose_para[:3], np.float64))[None])[0].numpy()
        p = pose_para[6] * v @ R.T + pose_para[3:6]
        p[:, 1] = height - p[:, 1] - 1
        return p


def load_keypoint_basis(bfm_dir: str | Path | None = None,
                        vertex_ids: np.ndarray | None = None) -> KeypointBasis:
    """Rows of the 68 keypoints (default) or of ``vertex_ids`` (0-based trimmed vertex ids,
    e.g. the kp520 set) of a 3DDFA-layout BFM folder (the default world when None), read by
    :func:`facemodels.bfm.load_bfm_arrays` (errors name the file, key and expected shape)."""
    a = load_bfm_arrays(default_bfm_dir() if bfm_dir is None else bfm_dir)
    kp = a.keypoints if vertex_ids is None else np.asarray(vertex_ids, np.int64).reshape(-1)
    rows = _rows(kp)
    return KeypointBasis(
        mu=(a.mean - a.exp_mean)[kp].reshape(-1), shape_pc=a.shape_pc[rows], shape_ev=a.shape_ev,
        mu_exp=a.exp_mean[kp].reshape(-1), w_exp=a.exp_pc[rows],
    )


class BfmSyntheticDataset(Dataset):
    def __init__(self, basis: KeypointBasis, n: int, split_seed: int, image_size: int,
                 yaws=(-45.0, 0.0, 45.0), projection: str = "orthographic", n_shape: int = 199):
        self.basis, self.n, self.seed = basis, int(n), int(split_seed)
        self.size, self.yaws, self.projection = int(image_size), tuple(float(y) for y in yaws), projection
        self.n_shape = int(n_shape)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, int(i)])
        alpha = rng.normal(0.0, 1.0, self.n_shape)
        pts = self.basis.neutral(alpha) * 1e-6  # (68, 3) metres
        pts -= pts.mean(0)
        yaw = self.yaws[int(rng.integers(len(self.yaws)))]
        px, depth = view_points(pts, yaw, self.size, self.projection)
        return to_tensors({
            "landmarks": px / self.size - 0.5, "landmarks_px": px,
            "landmarks3d": np.concatenate([px, depth[:, None]], 1), "landmarks3d_model": pts,
            "visibility": np.ones(68, np.float32), "params": alpha, "yaw": np.float32(yaw),
            "index": np.int64(i),
        })


class BfmSyntheticDataModule(FaceDataModule):
    """BFM synthetic faces; ``data_dir`` = a BFM folder (null -> the default BFM folder)."""

    def __init__(self, n_train: int = 20000, n_val: int = 1000, n_test: int = 5000,
                 yaws=(-45.0, 0.0, 45.0), projection: str = "orthographic", n_shape: int = 199, **kwargs):
        super().__init__(**kwargs)
        if self.landmark_set != "ibug68":
            raise ValueError(f"BfmSyntheticDataModule: landmark_set must be 'ibug68', got {self.landmark_set!r}")
        self.sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
        self.yaws, self.projection, self.n_shape = tuple(yaws), projection, int(n_shape)

    def layout_help(self) -> str:
        return f"expected a BFM folder with {MODEL_FILE}, {EXPR_FILE}, {INFO_FILE} (3DDFA layout)"

    def _build_root(self) -> Path:
        return Path(default_bfm_dir())

    def _build_datasets(self, root: Path) -> dict:
        basis = load_keypoint_basis(root)
        return {name: BfmSyntheticDataset(basis, n, self.seed * 10 + k, self.image_size, self.yaws,
                                          self.projection, self.n_shape)
                for k, (name, n) in enumerate(self.sizes.items())}
