"""FLAME: validated loading of a FLAME folder and a batch-agnostic smplx wrapper.

Folder layout (the real files or the procedural world, see ``facemodels.world``):
``FLAME_NEUTRAL.pkl`` (or ``FLAME_NEUTRAL.npz``, or FLAME_MALE/FEMALE/generic),
``flame_static_embedding.pkl``, ``flame_dynamic_embedding.npy``, ``FLAME_masks.pkl``.
Units: metres; model space y up, z out of the face, x to the subject's left.
Landmarks: iBUG-68 = cat(17 dynamic contour, 51 static), as smplx computes them.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

N_VERTS, N_FACES, N_JOINTS = 5023, 9976, 5
N_FACE_REGION = 1609
MODEL_NAMES = ("FLAME_NEUTRAL", "FLAME_generic", "generic_model", "FLAME_MALE", "FLAME_FEMALE")
STATIC_FILE = "flame_static_embedding.pkl"
DYNAMIC_FILE = "flame_dynamic_embedding.npy"
MASKS_FILE = "FLAME_masks.pkl"


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


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if module == "chumpy" or module.startswith("chumpy."):
            return _ChumpyStub
        return super().find_class(module, name)


def _load_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            data = _Unpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a format error
        raise FlameFormatError(
            f"{path}: cannot read the pickle ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(data, dict):
        raise FlameFormatError(f"{path}: expected a pickled dict, got {type(data).__name__}")
    return {k: _unstub(v) for k, v in data.items()}


def _dense(x: object) -> np.ndarray:
    if "scipy.sparse" in str(type(x)):
        return np.asarray(x.toarray())  # type: ignore[attr-defined]
    return np.asarray(x)


def _get(
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
    return _load_pickle(path)


def load_flame_arrays(folder: str | os.PathLike) -> FlameArrays:
    """Load and validate every FLAME file of ``folder``; errors name the file, key and shape."""
    folder = Path(folder)
    path = find_model_file(folder)
    d = _load_model_dict(path)
    v = _get(d, "v_template", path, (None, 3))
    n = v.shape[0]
    if n != N_VERTS:
        raise FlameFormatError(
            f"{path}: key 'v_template' has {n} vertices, expected {N_VERTS} (FLAME topology)"
        )
    faces = _get(d, "f", path, (N_FACES, 3), np.int64)
    if faces.min() < 0 or faces.max() >= n:
        raise FlameFormatError(f"{path}: key 'f' indexes vertices outside [0, {n})")
    shapedirs = _get(d, "shapedirs", path, (n, 3, None))
    if shapedirs.shape[2] < 300 + 1 and shapedirs.shape[2] != 20:
        raise FlameFormatError(
            f"{path}: key 'shapedirs' has shape {shapedirs.shape}, expected ({n}, 3, 400) (300 shape + 100 expression)"
        )
    posedirs = _get(d, "posedirs", path, (n, 3, 36))
    jreg = _get(d, "J_regressor", path, (N_JOINTS, n))
    weights = _get(d, "weights", path, (n, N_JOINTS))
    kin = _get(d, "kintree_table", path, (2, N_JOINTS), np.float64)
    parents = kin[0].astype(np.int64)
    parents[0] = -1
    if np.any(parents[1:] < 0) or np.any(parents[1:] >= np.arange(1, N_JOINTS)):
        raise FlameFormatError(
            f"{path}: key 'kintree_table' row 0 {kin[0].tolist()} is not a valid parent list"
        )

    sp = folder / STATIC_FILE
    if not sp.is_file():
        raise FileNotFoundError(
            f"{folder}: missing {STATIC_FILE} (keys lmk_face_idx (51,), lmk_b_coords (51, 3))"
        )
    s = _load_pickle(sp)
    s_faces = _get(s, "lmk_face_idx", sp, (51,), np.int64)
    s_bary = _get(s, "lmk_b_coords", sp, (51, 3))

    dp = folder / DYNAMIC_FILE
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
    d_faces = _get(dyn, "lmk_face_idx", dp, (79, 17), np.int64)
    d_bary = _get(dyn, "lmk_b_coords", dp, (79, 17, 3))
    for name, idx, p in (("lmk_face_idx", s_faces, sp), ("lmk_face_idx", d_faces, dp)):
        if idx.min() < 0 or idx.max() >= N_FACES:
            raise FlameFormatError(f"{p}: key '{name}' indexes faces outside [0, {N_FACES})")
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
    data = _load_pickle(path)
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


def _static_landmarks(arr: FlameArrays) -> np.ndarray:
    tri = arr.v_template[arr.faces[arr.static_lmk_faces]]  # (51, 3, 3)
    return (tri * arr.static_lmk_bary[..., None]).sum(1)


def vertex_regions(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Albedo regions, a partition of all vertices: 'skin', 'brows', 'lips', 'eyes' (both
    eyeballs: iris + sclera), 'scalp' (hair). Works for real FLAME folders too (brows are the
    skin vertices within 4 mm (x, y) of the brow landmark polylines, in front of the eyes)."""
    arr = load_flame_arrays(folder)
    masks = flame_masks(folder)
    v = arr.v_template
    label = np.zeros(len(v), dtype=np.int64)  # 0 skin
    names = ["skin", "brows", "lips", "eyes", "scalp"]
    if "scalp" in masks:
        label[masks["scalp"]] = 4
    if "lips" in masks:
        label[masks["lips"]] = 2
    lm = _static_landmarks(arr)  # static 51 = iBUG 17..67
    brow_lines = [lm[0:5, :2], lm[5:10, :2]]  # iBUG 17-21, 22-26
    d = np.full(len(v), np.inf)
    for line in brow_lines:
        a, b = line[:-1], line[1:]
        ab = b - a
        ap = v[:, None, :2] - a[None]
        t = np.clip((ap * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
        d = np.minimum(d, np.linalg.norm(ap - t[..., None] * ab, axis=-1).min(1))
    z_eye = lm[19:31, 2].min()  # iBUG 36..47
    brows = (d < 0.004) & (v[:, 2] > z_eye - 0.02) & (label == 0)
    label[brows] = 1
    for key in ("left_eyeball", "right_eyeball"):
        if key in masks:
            label[masks[key]] = 3
    return {name: np.flatnonzero(label == i).astype(np.int64) for i, name in enumerate(names)}


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
@dataclass
class FlameOutput:
    vertices: Tensor  # (B, 5023, 3) metres
    landmarks68: Tensor  # (B, 68, 3) metres, iBUG order (17 contour + 51 static)
    joints: Tensor  # (B, 5, 3) metres (root, neck, jaw, left eye, right eye)


class FlameModel(nn.Module):
    """smplx.FLAME with any batch size at call time and iBUG-68 landmarks.

    Args:
        folder: FLAME folder (default: ``facemodels.world.default_flame_dir()``).
        n_shape: identity coefficients used (<= 300).
        n_exp: expression coefficients used (<= 100).
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        n_shape: int = 300,
        n_exp: int = 100,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        import smplx

        if folder is None:
            from facemodels.world import default_flame_dir

            folder = default_flame_dir()
        arr = load_flame_arrays(folder)  # validates before smplx asserts
        self.folder = Path(folder)
        self.n_shape = min(int(n_shape), arr.n_shape)
        self.n_exp = min(int(n_exp), arr.n_expression)
        ext = arr.model_file.suffix.lstrip(".")
        gender = arr.model_file.stem.replace("FLAME_", "").lower()
        if gender not in ("neutral", "male", "female"):
            raise FlameFormatError(f"{arr.model_file}: smplx needs FLAME_NEUTRAL/MALE/FEMALE.{ext}")
        with _chumpy_free():
            self.flame = smplx.FLAME(
                model_path=str(self.folder),
                gender=gender,
                ext=ext,
                num_betas=self.n_shape,
                num_expression_coeffs=self.n_exp,
                use_face_contour=True,
                batch_size=1,
                dtype=dtype,
            )
        self.register_buffer(
            "faces", torch.as_tensor(arr.faces, dtype=torch.long), persistent=False
        )

    def forward(
        self,
        shape: Tensor | None = None,
        expression: Tensor | None = None,
        global_orient: Tensor | None = None,
        neck_pose: Tensor | None = None,
        jaw_pose: Tensor | None = None,
        eye_pose: Tensor | None = None,
        transl: Tensor | None = None,
    ) -> FlameOutput:
        """shape (B, n_shape), expression (B, n_exp), global_orient/neck_pose/jaw_pose (B, 3)
        axis-angle rad, eye_pose (B, 6) = [left eye, right eye], transl (B, 3) metres.
        Missing arguments are zeros; B is taken from the given ones (1 if none)."""
        given = [
            t
            for t in (shape, expression, global_orient, neck_pose, jaw_pose, eye_pose, transl)
            if t is not None
        ]
        b = given[0].shape[0] if given else 1
        ref = self.flame.v_template
        dev, dt = ref.device, ref.dtype

        def arg(t: Tensor | None, n: int, name: str) -> Tensor:
            if t is None:
                return torch.zeros(b, n, device=dev, dtype=dt)
            if t.ndim != 2 or t.shape[0] != b or t.shape[1] != n:
                raise ValueError(
                    f"FlameModel: {name} has shape {tuple(t.shape)}, expected ({b}, {n})"
                )
            return t.to(device=dev, dtype=dt)

        eyes = arg(eye_pose, 6, "eye_pose")
        out = self.flame(
            betas=arg(shape, self.n_shape, "shape"),
            expression=arg(expression, self.n_exp, "expression"),
            global_orient=arg(global_orient, 3, "global_orient"),
            neck_pose=arg(neck_pose, 3, "neck_pose"),
            jaw_pose=arg(jaw_pose, 3, "jaw_pose"),
            leye_pose=eyes[:, :3],
            reye_pose=eyes[:, 3:],
            transl=arg(transl, 3, "transl"),
        )
        j = out.joints  # (B, 5 + 51 + 17, 3)
        lmk = torch.cat([j[:, N_JOINTS + 51 :], j[:, N_JOINTS : N_JOINTS + 51]], dim=1)
        return FlameOutput(vertices=out.vertices, landmarks68=lmk, joints=j[:, :N_JOINTS])


class _ChumpyFreePickle:
    """Stands in for the ``pickle`` module inside ``smplx.body_models`` while a model loads, so
    real FLAME pickles holding chumpy arrays load as numpy without chumpy installed."""

    @staticmethod
    def load(fh: object, encoding: str = "latin1", **kwargs: object) -> object:
        data = _Unpickler(fh, encoding=encoding).load()
        return {k: _unstub(v) for k, v in data.items()} if isinstance(data, dict) else data


class _chumpy_free:  # noqa: N801 - a context manager
    def __enter__(self) -> None:
        import smplx.body_models as bm

        self._bm, self._saved = bm, bm.pickle
        bm.pickle = _ChumpyFreePickle  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        self._bm.pickle = self._saved
