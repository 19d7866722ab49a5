"""FLAME files: the one reader of a FLAME folder (real files or the procedural world).

Folder layout (see ``facemodels.world``): ``FLAME_NEUTRAL.pkl`` (or ``FLAME_NEUTRAL.npz``,
or FLAME_MALE/FEMALE/generic), ``flame_static_embedding.pkl``,
``flame_dynamic_embedding.npy``, ``FLAME_masks.pkl``. Units: metres; model space y up,
z out of the face, x to the subject's left.

Every pickle is read by :func:`read_pickle`, which turns the chumpy arrays of the real
FLAME files into numpy arrays without chumpy installed. Errors are
:class:`FlameFormatError` (or ``FileNotFoundError``) and name the file, the key and what
was expected.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "N_VERTS",
    "N_FACES",
    "N_JOINTS",
    "N_FACE_REGION",
    "MODEL_NAMES",
    "STATIC_FILE",
    "DYNAMIC_FILE",
    "MASKS_FILE",
    "FlameFormatError",
    "ZERO_YAW_ROW",
    "ChumpyFreeUnpickler",
    "unstub_dict",
    "read_pickle",
    "require_array",
    "FlameArrays",
    "find_model_file",
    "load_flame_arrays",
    "read_flame_template",
    "read_static_embedding",
    "read_dynamic_embedding",
    "ibug68_embedding",
    "flame_masks",
    "flame_mask",
    "face_region_indices",
    "head_without_neck_indices",
]

N_VERTS, N_FACES, N_JOINTS = 5023, 9976, 5
N_FACE_REGION = 1609
MODEL_NAMES = ("FLAME_NEUTRAL", "FLAME_generic", "generic_model", "FLAME_MALE", "FLAME_FEMALE")
STATIC_FILE = "flame_static_embedding.pkl"
DYNAMIC_FILE = "flame_dynamic_embedding.npy"
MASKS_FILE = "FLAME_masks.pkl"
# Row of the (79, 17) dynamic contour embedding at zero yaw: smplx maps a rounded yaw y
# (degrees, clamped to +-39) to row y for y >= 0 and row 39 - y for y < 0.
ZERO_YAW_ROW = 0


class FlameFormatError(ValueError):
    """A FLAME file is missing a key, has a wrong shape or cannot be read."""


# --------------------------------------------------------------------------------------
# chumpy-free unpickling: chumpy arrays in the real FLAME pickle become numpy arrays
# --------------------------------------------------------------------------------------
class _ChumpyStub:
    def __new__(cls, *args: object, **kwargs: object) -> _ChumpyStub:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        self.__dict__["_state"] = state


def _unstub(obj: object) -> object:
    if isinstance(obj, _ChumpyStub):
        state = obj.__dict__.get("_state")
        if isinstance(state, dict):
            for key in ("x", "_x", "a"):
                if key in state:
                    return np.asarray(_unstub(state[key]))
        raise FlameFormatError("chumpy object without an 'x' array in its state")
    return obj


class ChumpyFreeUnpickler(pickle.Unpickler):
    """Unpickler that reads chumpy objects as stubs (see :func:`read_pickle`)."""

    def find_class(self, module: str, name: str) -> type:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStub
        return super().find_class(module, name)


def unstub_dict(data: object) -> object:
    """A dict's chumpy stubs as numpy arrays (other objects are returned unchanged)."""
    return {k: _unstub(v) for k, v in data.items()} if isinstance(data, dict) else data


def read_pickle(path: str | os.PathLike) -> dict:
    """A pickled dict (latin1, chumpy arrays read as numpy, without chumpy installed).

    Raises:
        FileNotFoundError: no such file (the message names it).
        FlameFormatError: unreadable or truncated, or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")
    try:
        with open(path, "rb") as fh:
            data = ChumpyFreeUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a format error
        raise FlameFormatError(
            f"{path}: cannot read the pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(data, dict):
        raise FlameFormatError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return unstub_dict(data)


def _dense(x: object) -> np.ndarray:
    if "scipy.sparse" in str(type(x)):
        return np.asarray(x.toarray())  # type: ignore[attr-defined]
    return np.asarray(x)


def require_array(
    data: dict, key: str, path: Path, shape: tuple[int | None, ...], dtype: type = np.float64
) -> np.ndarray:
    """data[key] as a dense array of the given shape (None = any size)."""
    if key not in data:
        raise FlameFormatError(f"{path}: missing key '{key}' (expected shape {_fmt(shape)})")
    try:
        arr = _dense(data[key]).astype(dtype)
    except (TypeError, ValueError) as exc:
        raise FlameFormatError(f"{path}: key '{key}' is not numeric ({exc})") from exc
    if arr.ndim != len(shape) or any(
        s is not None and s != a for s, a in zip(shape, arr.shape, strict=False)
    ):
        raise FlameFormatError(
            f"{path}: key '{key}' has shape {tuple(arr.shape)}, expected {_fmt(shape)}"
        )
    return arr


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"


@dataclass
class FlameArrays:
    """All FLAME arrays as numpy (metres). V = 5023 vertices."""

    folder: Path
    model_file: Path
    v_template: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (9976, 3) int64
    shapedirs: np.ndarray  # (V, 3, K) float64, K = 300 shape + expression
    posedirs: np.ndarray  # (V, 3, 36) float64
    J_regressor: np.ndarray  # (5, V) float64 (dense)
    weights: np.ndarray  # (V, 5) float64
    parents: np.ndarray  # (5,) int64, parents[0] = -1
    static_lmk_faces: np.ndarray  # (51,) int64
    static_lmk_bary: np.ndarray  # (51, 3) float64
    dynamic_lmk_faces: np.ndarray  # (79, 17) int64
    dynamic_lmk_bary: np.ndarray  # (79, 17, 3) float64

    @property
    def n_shape(self) -> int:
        return min(300, self.shapedirs.shape[2])

    @property
    def n_expression(self) -> int:
        return max(0, self.shapedirs.shape[2] - 300)


def find_model_file(folder: str | os.PathLike) -> Path:
    """The FLAME model file in ``folder`` (pkl preferred over npz)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"FLAME folder {folder} does not exist (expected FLAME_NEUTRAL.pkl, {STATIC_FILE}, {DYNAMIC_FILE})"
        )
    for name in MODEL_NAMES:
        for ext in ("pkl", "npz"):
            if (folder / f"{name}.{ext}").is_file():
                return folder / f"{name}.{ext}"
    raise FileNotFoundError(
        f"{folder}: no FLAME model file (expected FLAME_NEUTRAL.pkl or FLAME_NEUTRAL.npz)"
    )


def _load_model_dict(path: Path) -> dict:
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=True) as z:
                return {
                    k: (z[k][()] if z[k].dtype == object and z[k].shape == () else z[k])
                    for k in z.files
                }
        except Exception as exc:  # noqa: BLE001
            raise FlameFormatError(
                f"{path}: cannot read the npz ({type(exc).__name__}: {exc})"
            ) from exc
    return read_pickle(path)


def _template(d: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    v = require_array(d, "v_template", path, (None, 3))
    n = v.shape[0]
    if n != N_VERTS:
        raise FlameFormatError(
            f"{path}: key 'v_template' has {n} vertices, expected {N_VERTS} (FLAME topology)"
        )
    faces = require_array(d, "f", path, (N_FACES, 3), np.int64)
    if faces.min() < 0 or faces.max() >= n:
        raise FlameFormatError(f"{path}: key 'f' indexes vertices outside [0, {n})")
    return v, faces


def read_flame_template(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The mean shape of a FLAME folder's model file.

    Returns:
        v_template (5023, 3) float64 metres, f (9976, 3) int64.
    """
    path = find_model_file(folder)
    return _template(_load_model_dict(path), path)


def _check_faces(idx: np.ndarray, path: Path) -> None:
    if idx.min() < 0 or idx.max() >= N_FACES:
        raise FlameFormatError(f"{path}: key 'lmk_face_idx' indexes faces outside [0, {N_FACES})")


def read_static_embedding(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``flame_static_embedding.pkl``: faces (51,) int64, barycentric (51, 3) float64."""
    sp = Path(folder) / STATIC_FILE
    if not sp.is_file():
        raise FileNotFoundError(
            f"{folder}: missing {STATIC_FILE} (keys lmk_face_idx (51,), lmk_b_coords (51, 3))"
        )
    s = read_pickle(sp)
    faces = require_array(s, "lmk_face_idx", sp, (51,), np.int64)
    _check_faces(faces, sp)
    return faces, require_array(s, "lmk_b_coords", sp, (51, 3))


def read_dynamic_embedding(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``flame_dynamic_embedding.npy``: faces (79, 17) int64, barycentric (79, 17, 3)."""
    dp = Path(folder) / DYNAMIC_FILE
    if not dp.is_file():
        raise FileNotFoundError(
            f"{folder}: missing {DYNAMIC_FILE} (dict lmk_face_idx (79, 17), lmk_b_coords (79, 17, 3))"
        )
    try:
        dyn = np.load(dp, allow_pickle=True, encoding="latin1")[()]
    except Exception as exc:  # noqa: BLE001
        raise FlameFormatError(
            f"{dp}: cannot read the npy dict ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(dyn, dict):
        raise FlameFormatError(f"{dp}: expected np.save of a dict with lmk_face_idx, lmk_b_coords")
    faces = require_array(dyn, "lmk_face_idx", dp, (79, 17), np.int64)
    _check_faces(faces, dp)
    return faces, require_array(dyn, "lmk_b_coords", dp, (79, 17, 3))


def ibug68_embedding(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """iBUG-68 on FLAME at zero pose: cat(17 dynamic contour (zero-yaw row), 51 static).

    Returns:
        faces (68,) int64 triangle ids, bary (68, 3) float64 barycentric coordinates.
    """
    s_faces, s_bary = read_static_embedding(folder)
    d_faces, d_bary = read_dynamic_embedding(folder)
    faces = np.concatenate([d_faces[ZERO_YAW_ROW], s_faces]).astype(np.int64)
    return faces, np.concatenate([d_bary[ZERO_YAW_ROW], s_bary]).astype(np.float64)


def load_flame_arrays(folder: str | os.PathLike) -> FlameArrays:
    """Load and validate every FLAME file of ``folder``; errors name the file, key and shape."""
    folder = Path(folder)
    path = find_model_file(folder)
    d = _load_model_dict(path)
    v, faces = _template(d, path)
    n = v.shape[0]
    shapedirs = require_array(d, "shapedirs", path, (n, 3, None))
    if shapedirs.shape[2] < 300 + 1 and shapedirs.shape[2] != 20:
        raise FlameFormatError(
            f"{path}: key 'shapedirs' has shape {shapedirs.shape}, expected ({n}, 3, 400) (300 shape + 100 expression)"
        )
    posedirs = require_array(d, "posedirs", path, (n, 3, 36))
    jreg = require_array(d, "J_regressor", path, (N_JOINTS, n))
    weights = require_array(d, "weights", path, (n, N_JOINTS))
    kin = require_array(d, "kintree_table", path, (2, N_JOINTS), np.float64)
    parents = kin[0].astype(np.int64)
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, N_JOINTS)):
        raise FlameFormatError(
            f"{path}: key 'kintree_table' row 0 {kin[0].tolist()} is not a valid parent list"
        )

    s_faces, s_bary = read_static_embedding(folder)
    d_faces, d_bary = read_dynamic_embedding(folder)
    return FlameArrays(
        folder,
        path,
        v,
        faces,
        shapedirs,
        posedirs,
        jreg,
        weights,
        parents,
        s_faces,
        s_bary,
        d_faces,
        d_bary,
    )


# --------------------------------------------------------------------------------------
# masks and regions
# --------------------------------------------------------------------------------------
def flame_masks(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """``FLAME_masks.pkl`` as dict name -> int64 vertex indices."""
    path = Path(folder) / MASKS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder}: missing {MASKS_FILE} (dict name -> vertex indices)")
    data = read_pickle(path)
    out: dict[str, np.ndarray] = {}
    for k, v in data.items():
        arr = np.asarray(v).reshape(-1)
        if arr.size and (
            not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= N_VERTS
        ):
            raise FlameFormatError(
                f"{path}: key '{k}' is not a list of vertex indices in [0, {N_VERTS})"
            )
        out[str(k)] = arr.astype(np.int64)
    return out


def flame_mask(folder: str | os.PathLike, name: str) -> np.ndarray:
    """``FLAME_masks.pkl[name]`` as (n,) int64 vertex ids, in the file's order."""
    m = flame_masks(folder)
    if name not in m:
        raise FlameFormatError(
            f"{Path(folder) / MASKS_FILE}: missing key {name!r} (vertex ids); found {sorted(m)}"
        )
    return m[name]


def face_region_indices(folder: str | os.PathLike) -> np.ndarray:
    """(1609,) int64 face-region vertex indices (``FLAME_masks.pkl['face']``)."""
    m = flame_masks(folder)
    if "face" not in m:
        raise FlameFormatError(
            f"{Path(folder) / MASKS_FILE}: missing key 'face' (expected {N_FACE_REGION} indices)"
        )
    if m["face"].shape != (N_FACE_REGION,):
        raise FlameFormatError(
            f"{Path(folder) / MASKS_FILE}: key 'face' has {m['face'].size} indices, expected {N_FACE_REGION}"
        )
    return np.sort(m["face"])


def head_without_neck_indices(folder: str | os.PathLike) -> np.ndarray:
    """(V - |neck|,) int64: every vertex not in ``FLAME_masks.pkl['neck']`` (real FLAME: 4757)."""
    m = flame_masks(folder)
    if "neck" not in m:
        raise FlameFormatError(f"{Path(folder) / MASKS_FILE}: missing key 'neck'")
    return np.setdiff1d(np.arange(N_VERTS), m["neck"]).astype(np.int64)


