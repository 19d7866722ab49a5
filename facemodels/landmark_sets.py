"""Landmark-set registry: name -> size, face models, vertex ids or embedding, flip.

Every part of the suite asks this registry about landmark sets (see docs/ARCHITECTURE.md):

| name | L | FLAME folder | BFM folder |
| --- | --- | --- | --- |
| ibug68 | 68 | barycentric: cat(17 dynamic contour (zero yaw), 51 static) | the 68 keypoint vertices |
| face1609 | 1609 | ``FLAME_masks.pkl['face']`` vertices (the mask's order) | - |
| face805 / face403 / face202 / face101 | n | nested levels of :func:`facemodels.mesh.face_hierarchy.face_hierarchy` | - |
| kp520 | 520 | - | dense keypoints, :func:`facemodels.keypoints520.kp520_indices` |

A set is defined on a face model ("flame", "bfm") either by vertex ids (``(L,)`` int64)
or by a barycentric embedding (triangle ids ``(L,)`` and coordinates ``(L, 3)``). Its flip
permutation ``perm`` is the landmark order after a horizontal image flip:
``landmarks_flipped = mirrored(landmarks)[perm]`` (an involution; see
:mod:`facemodels.mirror`). Vertex sets and flips that need computing are cached next to
the model folder by the modules that compute them.

Add a set with :func:`register_landmark_set`; :func:`landmark_set_names` lists them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemodels.bfm import load_bfm_mean_and_keypoints
from facemodels.flame_files import ibug68_embedding
from facemodels.ibug68 import IBUG68_FLIP
from facemodels.keypoints520 import kp520_flip, kp520_indices
from facemodels.mesh.face_hierarchy import face_hierarchy
from facemodels.mesh.hierarchy import FACE_LEVEL_SIZES
from facemodels.world import default_bfm_dir, default_flame_dir

__all__ = [
    "FACE_MODELS",
    "LandmarkSetSpec",
    "register_landmark_set",
    "unregister_landmark_set",
    "landmark_set",
    "landmark_set_names",
    "landmark_count",
    "default_model_dir",
    "landmark_vertex_indices",
    "landmark_embedding",
    "flip_permutation",
    "flip_mismatch",
]

FACE_MODELS: tuple[str, ...] = ("flame", "bfm")
_DEFAULT_DIRS: dict[str, Callable[[], Path]] = {"flame": default_flame_dir, "bfm": default_bfm_dir}

VertexFn = Callable[[Path], np.ndarray]  # model folder -> (L,) int64 vertex ids
EmbeddingFn = Callable[[Path], tuple[np.ndarray, np.ndarray]]  # -> faces (L,), bary (L, 3)
FlipFn = Callable[[Path | None], tuple[np.ndarray, float]]  # -> perm (L,), max mismatch


@dataclass(frozen=True)
class LandmarkSetSpec:
    """A registered landmark set.

    Attributes:
        name: e.g. "face1609".
        size: number of landmarks L.
        vertex_ids: face model -> function (model folder) -> (L,) int64 vertex ids.
        embedding: face model -> function (model folder) -> (faces (L,) int64,
            bary (L, 3) float64), for sets between vertices (FLAME's iBUG-68).
        flip: function (folder of ``flip_model``, or None) -> ((L,) int64 involution,
            max mirror mismatch in model units).
        flip_model: the face model whose folder ``flip`` reads; None if it reads none.
    """

    name: str
    size: int
    vertex_ids: Mapping[str, VertexFn] = field(default_factory=dict)
    embedding: Mapping[str, EmbeddingFn] = field(default_factory=dict)
    flip: FlipFn | None = None
    flip_model: str | None = None

    @property
    def models(self) -> tuple[str, ...]:
        """Face models the set is defined on (FACE_MODELS order first)."""
        given = set(self.vertex_ids) | set(self.embedding)
        return tuple(m for m in FACE_MODELS if m in given) + tuple(sorted(given - set(FACE_MODELS)))


_REGISTRY: dict[str, LandmarkSetSpec] = {}


def register_landmark_set(
    name: str,
    size: int,
    *,
    flip: FlipFn,
    vertex_ids: Mapping[str, VertexFn] | None = None,
    embedding: Mapping[str, EmbeddingFn] | None = None,
    flip_model: str | None = None,
    replace: bool = False,
) -> LandmarkSetSpec:
    """Register a landmark set by name (see :class:`LandmarkSetSpec` for the arguments).

    Raises:
        ValueError: the name is taken (unless ``replace``), the size is not positive, or
            the set is defined on no face model.
    """
    if name in _REGISTRY and not replace:
        raise ValueError(f"landmark set {name!r} is already registered (pass replace=True)")
    if int(size) < 1:
        raise ValueError(f"landmark set {name!r}: size must be >= 1, got {size}")
    spec = LandmarkSetSpec(
        name, int(size), dict(vertex_ids or {}), dict(embedding or {}), flip, flip_model
    )
    if not spec.models:
        raise ValueError(f"landmark set {name!r}: give vertex_ids or embedding for a face model")
    _REGISTRY[name] = spec
    return spec


def unregister_landmark_set(name: str) -> None:
    """Remove a registered set (for tests that register throwaway sets)."""
    landmark_set(name)
    del _REGISTRY[name]


def landmark_set(name: str) -> LandmarkSetSpec:
    """The registered set ``name``; KeyError listing the known names otherwise."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown landmark set {name!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def landmark_set_names(model: str | None = None) -> tuple[str, ...]:
    """Registered set names in registration order; only those defined on ``model`` if given."""
    return tuple(n for n, s in _REGISTRY.items() if model is None or model in s.models)


def landmark_count(name: str) -> int:
    """Number of landmarks of a registered set (no model files needed)."""
    return landmark_set(name).size


def default_model_dir(model: str) -> Path:
    """The suite's folder of a face model ("flame" or "bfm"; see :mod:`facemodels.world`)."""
    if model not in _DEFAULT_DIRS:
        raise KeyError(
            f"no default folder for face model {model!r}; known: {sorted(_DEFAULT_DIRS)}"
        )
    return Path(_DEFAULT_DIRS[model]())


def _one_dir(model_dir, flame_dir):
    if model_dir is not None and flame_dir is not None:
        raise TypeError("pass the model folder once: model_dir or flame_dir, not both")
    return flame_dir if model_dir is None else model_dir


def _resolve(spec: LandmarkSetSpec, model: str | None, model_dir) -> tuple[str, Path]:
    model = model or spec.models[0]
    if model not in spec.models:
        raise ValueError(
            f"landmark set {spec.name!r} is not defined on face model {model!r}; "
            f"it is defined on {list(spec.models)}"
        )
    return model, Path(model_dir) if model_dir is not None else default_model_dir(model)


def _checked(spec: LandmarkSetSpec, arr: np.ndarray, what: str, folder: Path) -> np.ndarray:
    if len(arr) != spec.size:
        raise ValueError(
            f"{folder}: landmark set {spec.name!r} gave {len(arr)} {what}, expected {spec.size}"
        )
    return arr


def landmark_vertex_indices(
    name: str,
    model_dir: str | os.PathLike | None = None,
    *,
    model: str | None = None,
    flame_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Vertex ids of a vertex-based landmark set.

    Args:
        name: a registered set defined by vertices on ``model``.
        model_dir: the model's folder; default the suite's (:func:`default_model_dir`).
        model: "flame" or "bfm"; default the first model the set is defined on.
        flame_dir: keyword alias of ``model_dir``.
    Returns:
        (L,) int64 indices into the model's vertices.
    Raises:
        ValueError: the set is barycentric on that model (e.g. ibug68 on FLAME) or not
            defined on it.
    """
    spec = landmark_set(name)
    model, folder = _resolve(spec, model, _one_dir(model_dir, flame_dir))
    if model not in spec.vertex_ids:
        raise ValueError(
            f"{name} is not vertex-based on {model}: it is a barycentric landmark embedding "
            "(facemodels.landmark_sets.landmark_embedding)"
        )
    idx = np.asarray(spec.vertex_ids[model](folder), dtype=np.int64).reshape(-1)
    return _checked(spec, idx, "vertex ids", folder)


def landmark_embedding(
    name: str, model_dir: str | os.PathLike | None = None, *, model: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Barycentric embedding of a set: triangle ids (L,) int64 and coordinates (L, 3)."""
    spec = landmark_set(name)
    model, folder = _resolve(spec, model, model_dir)
    if model not in spec.embedding:
        raise ValueError(
            f"{name} has no barycentric embedding on {model} (it is vertex-based: "
            "facemodels.landmark_sets.landmark_vertex_indices)"
        )
    faces, bary = spec.embedding[model](folder)
    faces = _checked(spec, np.asarray(faces, dtype=np.int64).reshape(-1), "triangles", folder)
    return faces, np.asarray(bary, dtype=np.float64).reshape(spec.size, 3)


def _flip_and_mismatch(name: str, model_dir) -> tuple[np.ndarray, float]:
    spec = landmark_set(name)
    if spec.flip is None:
        raise ValueError(f"landmark set {name!r} has no flip permutation")
    folder = None
    if spec.flip_model is not None:
        folder = Path(model_dir) if model_dir is not None else default_model_dir(spec.flip_model)
    perm, mismatch = spec.flip(folder)
    return np.asarray(perm, dtype=np.int64).copy(), float(mismatch)


def flip_permutation(
    name: str,
    model_dir: str | os.PathLike | None = None,
    *,
    flame_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Horizontal-flip permutation of a landmark set.

    Args:
        name: a registered set.
        model_dir: folder of the set's ``flip_model`` (FLAME for face sets, BFM for kp520;
            unused for ibug68); default the suite's.
        flame_dir: keyword alias of ``model_dir``.
    Returns:
        (L,) int64 involution: ``flipped = mirrored(landmarks)[perm]``.
    """
    return _flip_and_mismatch(name, _one_dir(model_dir, flame_dir))[0]


def flip_mismatch(
    name: str,
    model_dir: str | os.PathLike | None = None,
    *,
    flame_dir: str | os.PathLike | None = None,
) -> float:
    """Max distance (model units) between a mirrored mean-shape landmark and its flip partner."""
    return _flip_and_mismatch(name, _one_dir(model_dir, flame_dir))[1]


# ----------------------------------------------------------------------------------------
# the suite's sets
# ----------------------------------------------------------------------------------------
def _face_level(name: str) -> VertexFn:
    def vertex_ids(folder: Path) -> np.ndarray:
        h = face_hierarchy(folder)
        return h.vertex_ids[h.level_of(name)].copy()

    return vertex_ids


def _face_level_flip(name: str) -> FlipFn:
    def flip(folder: Path | None) -> tuple[np.ndarray, float]:
        h = face_hierarchy(folder)
        lvl = h.level_of(name)
        perm = h.flips[lvl]
        if not h.symmetric or not (perm[perm] == np.arange(len(perm))).all():
            raise ValueError(
                f"{folder}: the FLAME face region is not left-right symmetric (max mirror "
                f"mismatch {h.flip_mismatch[lvl]:.3g}); no flip permutation for {name}"
            )
        return perm.copy(), h.flip_mismatch[lvl]

    return flip


register_landmark_set(
    "ibug68",
    68,
    embedding={"flame": ibug68_embedding},
    vertex_ids={"bfm": lambda folder: load_bfm_mean_and_keypoints(folder)[1]},
    flip=lambda folder: (IBUG68_FLIP.copy(), 0.0),
)
for _n in FACE_LEVEL_SIZES:
    register_landmark_set(
        f"face{_n}",
        _n,
        vertex_ids={"flame": _face_level(f"face{_n}")},
        flip=_face_level_flip(f"face{_n}"),
        flip_model="flame",
    )
register_landmark_set(
    "kp520",
    520,
    vertex_ids={"bfm": kp520_indices},
    flip=kp520_flip,
    flip_model="bfm",
)
