"""300W-LP and AFLW2000-3D ``.mat`` files (FORMATS.md): keys, shapes, dtypes, read + write.

300W-LP per image (``<set>/<name>.mat``): pt2d (2, 68) float64 px; roi (1, 4) int16
(written as x1, y1, x2, y2 - the real layout is unconfirmed); Pose_Para (1, 7) float32
[pitch, yaw, roll (rad, 3DDFA convention), tx, ty, tz, s]; Shape_Para (199, 1) float64;
Exp_Para (29, 1) float64; Illum_Para (1, 10) float32; Color_Para (1, 7) float32;
Tex_Para (199, 1) float64. ``landmarks/<set>/<name>_pts.mat``: pts_2d (68, 2), pts_3d (68, 2).
AFLW2000-3D adds pt3d_68 (3, 68) float32 (x, y px y down, z towards the camera) and its
pt2d is (2, 21) float64 (AFLW's 21 points, -1 where missing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io as sio

__all__ = ["W300LP_SPEC", "AFLW2000_SPEC", "PTS_SPEC", "MatFormatError", "read_mat", "write_mat"]

W300LP_SPEC: dict[str, tuple[tuple[int, ...], str]] = {
    "pt2d": ((2, 68), "float64"),
    "roi": ((1, 4), "int16"),
    "Pose_Para": ((1, 7), "float32"),
    "Shape_Para": ((199, 1), "float64"),
    "Exp_Para": ((29, 1), "float64"),
    "Illum_Para": ((1, 10), "float32"),
    "Color_Para": ((1, 7), "float32"),
    "Tex_Para": ((199, 1), "float64"),
}
AFLW2000_SPEC = {**W300LP_SPEC, "pt2d": ((2, 21), "float64"), "pt3d_68": ((3, 68), "float32")}
PTS_SPEC = {"pts_2d": ((68, 2), "float64"), "pts_3d": ((68, 2), "float64")}


class MatFormatError(ValueError):
    """A .mat file that does not match the format; the message names file and key."""


def write_mat(path: str | Path, data: dict[str, np.ndarray], spec: dict) -> None:
    """Save ``data`` with exactly the shapes and dtypes in ``spec`` (extra keys refused)."""
    out = {}
    for key, (shape, dtype) in spec.items():
        if key not in data:
            raise KeyError(f"write_mat {path}: missing key {key!r}")
        arr = np.asarray(data[key])
        if arr.shape != shape:
            raise ValueError(f"write_mat {path}: {key!r} has shape {arr.shape}, expected {shape}")
        out[key] = arr.astype(dtype)
    sio.savemat(str(path), out, do_compression=False)


def read_mat(path: str | Path, spec: dict, check_dtype: bool = False) -> dict[str, np.ndarray]:
    """Load a .mat, check every key of ``spec`` (shape; dtype when ``check_dtype``) and
    finiteness. Returns {key: array} with the file's dtypes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing .mat file {path}")
    try:
        raw = sio.loadmat(str(path))
    except Exception as e:  # scipy raises several types for broken files
        raise MatFormatError(f"{path}: corrupt .mat file ({type(e).__name__}: {e})") from e
    out = {}
    for key, (shape, dtype) in spec.items():
        if key not in raw:
            raise MatFormatError(f"{path}: missing key {key!r}")
        arr = np.asarray(raw[key])
        if arr.shape != shape:
            raise MatFormatError(f"{path}: key {key!r} has shape {arr.shape}, expected {shape}")
        if check_dtype and arr.dtype != np.dtype(dtype):
            raise MatFormatError(f"{path}: key {key!r} has dtype {arr.dtype}, expected {dtype}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise MatFormatError(f"{path}: key {key!r} contains NaN or inf")
        out[key] = arr
    return out
