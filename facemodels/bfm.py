"""Basel Face Model 2009 + 3DDFA expression basis: validated loading, a torch linear model and
3DDFA's pose/projection convention.

Files (real or procedural, see ``facemodels.world.default_bfm_dir``):
- ``01_MorphableModel.mat``: shapeMU (3N, 1), shapePC (3N, 199), shapeEV (199, 1) standard
  deviations, texMU/texPC/texEV, tl (T, 3) 1-based triangles, segbin. x, y, z interleaved
  per vertex; micrometres.
- ``Model_Expression.mat``: mu_exp (3M, 1), w_exp (3M, 29), sigma_exp (29, 1) (3DDFA).
  Optional ``suite_mouth_open_mode`` (1, 1): the 0-based expression mode that opens the mouth
  for positive coefficients (the procedural files write it; real files lack it).
- ``model_info.mat``: keypoints (1, 68) 1-based vertex indices (iBUG-68 order); trimIndex (M, 1)
  1-based indices of the vertices 3DDFA keeps (the real expression basis lives on M = 53,215
  of the N = 53,490 vertices); tri (3, T') 1-based triangles of the trimmed mesh.
When M != N the shape arrays are trimmed with trimIndex (as 3DDFA does). Nothing here assumes N.

Model (3DDFA): ``v = shapeMU + mu_exp + shapePC @ Shape_Para + w_exp @ Exp_Para`` with
``Shape_Para ~ N(0, shapeEV^2)`` and ``Exp_Para ~ N(0, sigma_exp^2)``; micrometres.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
from torch import Tensor, nn

from facemodels.rotations import euler_3ddfa_to_matrix
from facemodels.world import default_bfm_dir

MODEL_FILE = "01_MorphableModel.mat"
EXPR_FILE = "Model_Expression.mat"
INFO_FILE = "model_info.mat"


class BfmFormatError(ValueError):
    """A BFM file is missing a key, has a wrong shape or cannot be read."""


MOUTH_KEY = "suite_mouth_open_mode"


def mouth_open_mode(expression: dict, path: Path) -> int | None:
    """The 0-based mouth-opening mode a Model_Expression.mat dict declares (``MOUTH_KEY``), or None."""
    if MOUTH_KEY not in expression:
        return None
    m = np.asarray(expression[MOUTH_KEY]).reshape(-1)
    n_exp = np.asarray(expression["w_exp"]).shape[1] if "w_exp" in expression else None
    if m.size != 1 or (n_exp is not None and not 0 <= int(m[0]) < n_exp):
        raise BfmFormatError(f"{path}: key '{MOUTH_KEY}' must be one 0-based mode index < {n_exp}, got {m.tolist()}")
    return int(m[0])


def _loadmat(path: Path, keys: list[str] | None = None) -> dict:
    """The .mat file at ``path`` (only ``keys`` when given); errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: missing {path.name}")
    try:
        return scipy.io.loadmat(str(path), variable_names=keys)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5)
        raise BfmFormatError(
            f"{path}: MATLAB v7.3 files are not supported; re-save with -v7 ({exc})"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise BfmFormatError(
            f"{path}: cannot read the .mat file ({type(exc).__name__}: {exc})"
        ) from exc


def _get(d: dict, key: str, path: Path, shape: tuple[int | None, ...]) -> np.ndarray:
    if key not in d:
        raise BfmFormatError(f"{path}: missing key '{key}' (expected shape {_fmt(shape)})")
    arr = np.asarray(d[key])
    if arr.ndim != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, arr.shape, strict=False)
    ):
        raise BfmFormatError(
            f"{path}: key '{key}' has shape {tuple(arr.shape)}, expected {_fmt(shape)}"
        )
    return arr


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"


# albedo of a file without texMU (RGB 0..255): a plain skin grey for the procedural writers
DEFAULT_ALBEDO = 180.0


@dataclass
class BfmArrays:
    """BFM arrays after trimming to the expression basis' vertices (float64, micrometres).

    The one reading of a BFM folder (``load_bfm_arrays``); the torch model (``LinearBFM``), the BFM
    fit and the 300W-LP / AFLW2000-3D writers all start from it.
    """

    folder: Path
    mean: np.ndarray  # (N, 3) shapeMU + mu_exp
    shape_pc: np.ndarray  # (3N, S) unit columns, interleaved
    shape_ev: np.ndarray  # (S,) standard deviations
    exp_pc: np.ndarray  # (3N, E) w_exp
    exp_ev: np.ndarray  # (E,) sigma_exp
    tri: np.ndarray  # (T, 3) int64 0-based
    keypoints: np.ndarray  # (68,) int64 0-based vertex indices
    tex_mean: np.ndarray | None = None  # (N, 3) RGB 0..255 (texMU)
    trim_index: np.ndarray | None = None  # (N,) 0-based indices into the full model
    mouth_open_mode: int | None = None  # expression mode opening the mouth for positive coefficients
    tex_pc: np.ndarray | None = None  # (3N, K) texPC, interleaved RGB per unit Tex_Para
    tex_ev: np.ndarray | None = None  # (K,) texEV
    exp_mean: np.ndarray | None = None  # (N, 3) mu_exp alone (already inside ``mean``)

    @property
    def n_vertices(self) -> int:
        return len(self.mean)

    def vertices(self, shape_para: np.ndarray, exp_para: np.ndarray) -> np.ndarray:
        """(N, 3) micrometres for Shape_Para (<= S,) and Exp_Para (<= E,) in 3DDFA scale."""
        s, e = np.asarray(shape_para).reshape(-1), np.asarray(exp_para).reshape(-1)
        v = self.mean.reshape(-1) + self.shape_pc[:, : s.size] @ s + self.exp_pc[:, : e.size] @ e
        return v.reshape(-1, 3)

    def albedo(self, tex_para: np.ndarray | None = None) -> np.ndarray:
        """(N, 3) RGB 0..255: ``texMU + texPC @ Tex_Para`` (``DEFAULT_ALBEDO`` where the file has none)."""
        a = np.full(3 * self.n_vertices, DEFAULT_ALBEDO) if self.tex_mean is None else self.tex_mean.reshape(-1)
        if tex_para is not None and self.tex_pc is not None:
            t = np.asarray(tex_para).reshape(-1)
            a = a + self.tex_pc[:, : t.size] @ t
        return np.clip(a.reshape(-1, 3), 0, 255)


def load_bfm_mean_and_keypoints(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The light read of a BFM folder: mean shape and 68 keypoints, without the bases.

    Reads only ``shapeMU`` of ``01_MorphableModel.mat`` and ``keypoints`` / ``trimIndex`` of
    ``model_info.mat`` (the expression file is not needed; trimIndex absent = no trim).

    Returns:
        mean (N, 3) float64 micrometres (shapeMU, trimmed; no mu_exp), keypoints (68,) int64
        0-based vertex indices into it.
    """
    folder = Path(folder)
    mp, ip = folder / MODEL_FILE, folder / INFO_FILE
    mu = _get(_loadmat(mp, ["shapeMU"]), "shapeMU", mp, (None, 1)).astype(np.float64).reshape(-1)
    if mu.size % 3:
        raise BfmFormatError(f"{mp}: key 'shapeMU' has {mu.size} rows, expected 3 * N (x, y, z interleaved)")
    mean = mu.reshape(-1, 3)
    info = _loadmat(ip, ["keypoints", "trimIndex"])
    if "trimIndex" in info:
        trim = np.asarray(info["trimIndex"], dtype=np.int64).reshape(-1) - 1
        if trim.size == 0 or trim.min() < 0 or trim.max() >= len(mean):
            raise BfmFormatError(f"{ip}: key 'trimIndex' out of range for {len(mean)} vertices")
        mean = mean[trim]
    kp = _get(info, "keypoints", ip, (None, None)).astype(np.int64).reshape(-1) - 1
    if kp.shape != (68,) or kp.min() < 0 or kp.max() >= len(mean):
        raise BfmFormatError(
            f"{ip}: key 'keypoints' must be 68 1-based vertex indices <= {len(mean)}, got "
            f"shape {kp.shape}, range [{kp.min() + 1}, {kp.max() + 1}]"
        )
    return mean, kp


def load_bfm_arrays(folder: str | os.PathLike) -> BfmArrays:
    """Load and validate the three BFM files of ``folder`` (errors name file, key, shape)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"BFM folder {folder} does not exist (expected {MODEL_FILE}, {EXPR_FILE}, {INFO_FILE})"
        )
    mp, ep, ip = folder / MODEL_FILE, folder / EXPR_FILE, folder / INFO_FILE
    m, e, info = _loadmat(mp), _loadmat(ep), _loadmat(ip)
    mu = _get(m, "shapeMU", mp, (None, 1)).astype(np.float64).reshape(-1)
    if mu.size % 3:
        raise BfmFormatError(
            f"{mp}: key 'shapeMU' has {mu.size} rows, expected 3 * N (x, y, z interleaved)"
        )
    n_full = mu.size // 3
    pc = _get(m, "shapePC", mp, (3 * n_full, None)).astype(np.float64)
    ev = _get(m, "shapeEV", mp, (pc.shape[1], 1)).astype(np.float64).reshape(-1)
    mu_e = _get(e, "mu_exp", ep, (None, 1)).astype(np.float64).reshape(-1)
    n = mu_e.size // 3
    w_e = _get(e, "w_exp", ep, (3 * n, None)).astype(np.float64)
    s_e = _get(e, "sigma_exp", ep, (w_e.shape[1], 1)).astype(np.float64).reshape(-1)
    kp = _get(info, "keypoints", ip, (None, None)).astype(np.int64).reshape(-1)
    if kp.size != 68:
        raise BfmFormatError(
            f"{ip}: key 'keypoints' has {kp.size} entries, expected 68 (1-based vertex indices)"
        )
    trim = None
    if n != n_full:
        t = _get(info, "trimIndex", ip, (None, None)).astype(np.int64).reshape(-1) - 1
        if t.size != n or t.min() < 0 or t.max() >= n_full:
            raise BfmFormatError(
                f"{ip}: key 'trimIndex' must hold {n} 1-based indices into {n_full} vertices "
                f"({EXPR_FILE} has {n} vertices, {MODEL_FILE} {n_full})"
            )
        rows = (3 * t[:, None] + np.arange(3)).reshape(-1)
        mu, pc, trim = mu[rows], pc[rows], t
        tri = _get(info, "tri", ip, (3, None)).astype(np.int64).T - 1
    else:
        tri = _get(m, "tl", mp, (None, 3)).astype(np.int64) - 1
    if tri.min() < 0 or tri.max() >= n:
        raise BfmFormatError(
            f"{mp if trim is None else ip}: triangles index vertices outside [1, {n}]"
        )
    kp = kp - 1
    if kp.min() < 0 or kp.max() >= n:
        raise BfmFormatError(f"{ip}: key 'keypoints' indexes vertices outside [1, {n}]")
    tex = tex_pc = tex_ev = None
    if "texMU" in m and np.asarray(m["texMU"]).size == 3 * n_full:
        tex = np.asarray(m["texMU"], dtype=np.float64).reshape(-1, 3)
        if trim is not None:
            tex = tex[trim]
    if "texPC" in m:
        tex_pc = _get(m, "texPC", mp, (3 * n_full, None)).astype(np.float64)
        tex_ev = _get(m, "texEV", mp, (tex_pc.shape[1], 1)).astype(np.float64).reshape(-1)
        if trim is not None:
            tex_pc = tex_pc[rows]
    return BfmArrays(folder, (mu + mu_e).reshape(-1, 3), pc, ev, w_e, s_e, tri, kp, tex, trim,
                     mouth_open_mode(e, ep), tex_pc, tex_ev, mu_e.reshape(-1, 3))


class LinearBFM(nn.Module):
    """The linear BFM in torch. Micrometres in and out (the files' unit).

    ``forward(shape_para (B, S), exp_para (B, E)) -> (B, N, 3)``; S = 199, E = 29 for the real
    files. Parameters follow 3DDFA's scale (Shape_Para ~ N(0, shapeEV^2)); pass fewer columns to
    use only the leading modes.
    """

    def __init__(
        self, folder: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        if folder is None:

            folder = default_bfm_dir()
        a = load_bfm_arrays(folder)
        self.folder = Path(folder)
        self.n_vertices = a.mean.shape[0]
        self.n_shape, self.n_exp = a.shape_pc.shape[1], a.exp_pc.shape[1]
        self.mouth_open_mode = a.mouth_open_mode  # int or None (see load_bfm_arrays)
        self.register_buffer("mean", torch.as_tensor(a.mean, dtype=dtype))  # (N, 3) um
        self.register_buffer("shape_pc", torch.as_tensor(a.shape_pc, dtype=dtype))  # (3N, S)
        self.register_buffer("exp_pc", torch.as_tensor(a.exp_pc, dtype=dtype))  # (3N, E)
        self.register_buffer("shape_std", torch.as_tensor(a.shape_ev, dtype=dtype))  # (S,) um
        self.register_buffer("exp_std", torch.as_tensor(a.exp_ev, dtype=dtype))  # (E,) um
        self.register_buffer("tri", torch.as_tensor(a.tri, dtype=torch.long))  # (T, 3) 0-based
        self.register_buffer("keypoints68", torch.as_tensor(a.keypoints, dtype=torch.long))  # (68,)

    @classmethod
    def from_dir(cls, folder: str | os.PathLike | None = None) -> LinearBFM:
        return cls(folder)

    def mean_shape(self) -> Tensor:
        """(N, 3) mean vertices, micrometres."""
        return self.mean

    def forward(self, shape_para: Tensor, exp_para: Tensor | None = None) -> Tensor:
        """shape_para (B, <=S), exp_para (B, <=E) in 3DDFA scale -> vertices (B, N, 3) um."""
        b = shape_para.shape[0]
        v = self.mean.reshape(1, -1).expand(b, -1)
        ks = shape_para.shape[1]
        if ks > self.n_shape:
            raise ValueError(
                f"LinearBFM: shape_para has {ks} columns, the model has {self.n_shape}"
            )
        v = v + shape_para.to(self.shape_pc) @ self.shape_pc[:, :ks].T
        if exp_para is not None:
            ke = exp_para.shape[1]
            if ke > self.n_exp:
                raise ValueError(
                    f"LinearBFM: exp_para has {ke} columns, the model has {self.n_exp}"
                )
            if exp_para.shape[0] != b:
                raise ValueError(
                    f"LinearBFM: exp_para batch {exp_para.shape[0]} != shape_para batch {b}"
                )
            v = v + exp_para.to(self.exp_pc) @ self.exp_pc[:, :ke].T
        return v.reshape(b, self.n_vertices, 3)

    def landmarks(self, shape_para: Tensor, exp_para: Tensor | None = None) -> Tensor:
        """(B, 68, 3) iBUG-68 keypoint vertices, micrometres."""
        return self.forward(shape_para, exp_para)[:, self.keypoints68]


def bfm_project_3ddfa(vertices: Tensor, pose_para: Tensor, img_h: int) -> Tensor:
    """3DDFA's pose + projection: (B, N, 3) um, Pose_Para (B, 7) -> (B, N, 3) image coords.

    ``pose_para = [pitch, yaw, roll, tx, ty, tz, s]`` (radians, 3DDFA/300W-LP's Pose_Para).
    Convention implemented (3DDFA's ``RotationMatrix`` / face3d ``angle2matrix_3ddfa``):
    ``R = Rx'(pitch) @ Ry'(yaw) @ Rz'(roll)`` with 3DDFA's primed (transposed) elementary
    matrices, ``p = s * R @ v + t`` (orthographic: x, y kept, z is scaled depth), then the image
    row flip ``y_img = img_h - y - 1`` (0-based pixels, y down). Returns (x_px, y_px, z).
    """
    if pose_para.ndim != 2 or pose_para.shape[1] != 7:
        raise ValueError(
            f"bfm_project_3ddfa: pose_para has shape {tuple(pose_para.shape)}, expected (B, 7)"
        )
    R = euler_3ddfa_to_matrix(pose_para[:, :3]).to(vertices)  # (B, 3, 3)
    s = pose_para[:, 6].view(-1, 1, 1).to(vertices)
    t = pose_para[:, 3:6].unsqueeze(1).to(vertices)
    p = s * vertices @ R.transpose(1, 2) + t  # (B, N, 3)
    return torch.stack([p[..., 0], img_h - p[..., 1] - 1, p[..., 2]], dim=-1)


def bfm_unproject_3ddfa(image_pts: Tensor, pose_para: Tensor, img_h: int) -> Tensor:
    """Inverse of :func:`bfm_project_3ddfa`: (B, N, 3) image coords -> (B, N, 3) model um."""
    R = euler_3ddfa_to_matrix(pose_para[:, :3]).to(image_pts)
    s = pose_para[:, 6].view(-1, 1, 1).to(image_pts)
    t = pose_para[:, 3:6].unsqueeze(1).to(image_pts)
    p = torch.stack([image_pts[..., 0], img_h - image_pts[..., 1] - 1, image_pts[..., 2]], dim=-1)
    return (p - t) @ R / s
