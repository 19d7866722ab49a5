"""Landmark-set registry: names, counts, iBUG-68 groups, horizontal-flip permutations.

Sets (see docs/ARCHITECTURE.md):

| name | L | definition |
| --- | --- | --- |
| ibug68 | 68 | FLAME: cat(17 dynamic contour, 51 static) embeddings; BFM: 68 keypoints |
| face1609 | 1609 | FLAME ``FLAME_masks.pkl['face']`` vertices (in the mask's order) |
| face805 / face403 / face202 / face101 | n | nested levels of :func:`facemodels.mesh_hierarchy.face_hierarchy` |
| kp520 | 520 | BFM dense keypoints, :func:`facemodels.keypoints520.kp520_indices` |

A flip permutation ``perm`` is the landmark order after a horizontal image flip:
``flipped[i] = mirror(points[perm[i]])``, i.e. ``landmarks_flipped = mirrored(landmarks)[perm]``.
It is an involution. iBUG-68 uses the standard hand-written permutation; vertex-based sets
match every vertex to the nearest mirror image (x -> 2 c - x, c the symmetry plane of
the mean shape). Subsets and permutations are computed once and cached next to the model
folder: ``<flame_dir>/suite_mesh_hierarchy.npz`` (face sets) and
``<bfm_dir>/suite_kp520.npz`` (kp520), or under ``~/.cache/facesuite`` if read-only.

iBUG-68 sides are the SUBJECT's: points 36-41 are the subject's right eye (image left for
a frontal face), 42-47 the left eye.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "LANDMARK_COUNTS",
    "IBUG68_GROUPS",
    "IBUG68_PARTS",
    "IBUG68_FLIP",
    "landmark_count",
    "MirrorMatch",
    "mirror_match",
    "mirror_permutation",
    "flip_permutation",
    "flip_mismatch",
    "landmark_vertex_indices",
]

LANDMARK_COUNTS: dict[str, int] = {
    "ibug68": 68,
    "face1609": 1609,
    "face805": 805,
    "face403": 403,
    "face202": 202,
    "face101": 101,
    "kp520": 520,
}
_FACE_LEVELS = ("face1609", "face805", "face403", "face202", "face101")

IBUG68_GROUPS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "brows": slice(17, 27),
    "nose": slice(27, 36),
    "eyes": slice(36, 48),
    "mouth": slice(48, 68),
}
IBUG68_PARTS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "right_brow": slice(17, 22),
    "left_brow": slice(22, 27),
    "nose_bridge": slice(27, 31),
    "nostrils": slice(31, 36),
    "right_eye": slice(36, 42),
    "left_eye": slice(42, 48),
    "outer_lips": slice(48, 60),
    "inner_lips": slice(60, 68),
}


def _ibug68_flip() -> np.ndarray:
    pairs = (
        [(i, 16 - i) for i in range(8)]  # jaw 0<->16 ... 7<->9, 8 centre (chin)
        + [(17 + i, 26 - i) for i in range(5)]  # brows 17<->26 ... 21<->22
        + [(31, 35), (32, 34)]  # nostrils, 33 centre; bridge 27-30 centre
        + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
        + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips; 51, 57 centre
        + [(60, 64), (61, 63), (65, 67)]  # inner lips; 62, 66 centre
    )
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


IBUG68_FLIP: np.ndarray = _ibug68_flip()
IBUG68_FLIP.setflags(write=False)


def landmark_count(name: str) -> int:
    """Number of landmarks of a registered set (no model files needed)."""
    if name not in LANDMARK_COUNTS:
        raise KeyError(f"unknown landmark set {name!r}; known: {sorted(LANDMARK_COUNTS)}")
    return LANDMARK_COUNTS[name]


# ----------------------------------------------------------------------------------------
# mirror matching
# ----------------------------------------------------------------------------------------
@dataclass
class MirrorMatch:
    """Result of :func:`mirror_match`.

    Attributes:
        perm: (N,) int64, ``perm[i]`` = index of the point nearest to the mirror of i.
        distance: (N,) float64, distance from the mirror of i to ``points[perm[i]]``
            (unit of the points).
        max_mismatch: ``distance.max()``.
        involution: ``perm[perm] == arange`` (a proper pairing).
    """

    perm: np.ndarray
    distance: np.ndarray
    max_mismatch: float
    involution: bool


def mirror_match(points: np.ndarray, plane_x: float = 0.0) -> MirrorMatch:
    """Match each point to the nearest mirror image across the plane ``x = plane_x``.

    Args:
        points: (N, D) with x in column 0 (D = 2 or 3), e.g. mean-shape vertices.
        plane_x: x of the symmetry plane (same unit as points).
    Returns:
        MirrorMatch (k-d tree nearest neighbours).
    """
    from scipy.spatial import cKDTree

    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] not in (2, 3) or len(p) == 0:
        raise ValueError(f"mirror_match: points must be (N, 2) or (N, 3) with N > 0, got {p.shape}")
    m = p.copy()
    m[:, 0] = 2.0 * plane_x - m[:, 0]
    dist, perm = cKDTree(p).query(m)
    perm = np.asarray(perm, dtype=np.int64)
    dist = np.asarray(dist, dtype=np.float64)
    return MirrorMatch(perm, dist, float(dist.max()), bool((perm[perm] == np.arange(len(p))).all()))


def mirror_permutation(
    points: np.ndarray, plane_x: float = 0.0, tol: float | None = None
) -> np.ndarray:
    """Flip permutation of a left-right symmetric point set (see :func:`mirror_match`).

    Args:
        points: (N, 3) or (N, 2).
        plane_x: x of the symmetry plane.
        tol: if given, raise when a point's mirror is farther than ``tol`` from its match.
    Returns:
        (N,) int64 involution.
    Raises:
        ValueError: if the matching is not an involution (the set is not symmetric) or
            exceeds ``tol``; the message gives the max mismatch.
    """
    r = mirror_match(points, plane_x)
    if not r.involution:
        bad = int((r.perm[r.perm] != np.arange(len(r.perm))).sum())
        raise ValueError(
            f"mirror_permutation: nearest-mirror matching is not an involution for {bad} of "
            f"{len(r.perm)} points (max mismatch {r.max_mismatch:.3g}); the set is not left-right symmetric"
        )
    if tol is not None and r.max_mismatch > tol:
        raise ValueError(
            f"mirror_permutation: max mismatch {r.max_mismatch:.3g} exceeds tol {tol:.3g}"
        )
    return r.perm


# ----------------------------------------------------------------------------------------
# registry over model folders
# ----------------------------------------------------------------------------------------
def _default_dir(name: str) -> Path:
    if name == "kp520":
        from facemodels.world import default_bfm_dir

        return Path(default_bfm_dir())
    from facemodels.world import default_flame_dir

    return Path(default_flame_dir())


def landmark_vertex_indices(
    name: str,
    model_dir: str | os.PathLike | None = None,
    *,
    flame_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Vertex ids of a vertex-based landmark set.

    Args:
        name: face1609, face805, face403, face202, face101 (FLAME folder) or kp520 (BFM
            folder). ibug68 is defined by barycentric embeddings, not vertices.
        model_dir: the model folder; default the procedural world's.
        flame_dir: keyword alias of ``model_dir``.
    Returns:
        (L,) int64 indices into the model's vertices.
    """
    landmark_count(name)
    model_dir = _one_dir(model_dir, flame_dir)
    if name == "ibug68":
        raise ValueError(
            "ibug68 is not vertex-based: FLAME uses barycentric landmark embeddings "
            "(facemodels.flame), BFM its 68 keypoint indices (facemodels.bfm)"
        )
    model_dir = Path(model_dir) if model_dir is not None else _default_dir(name)
    if name == "kp520":
        from facemodels.keypoints520 import kp520_indices

        return kp520_indices(model_dir)
    from facemodels.mesh_hierarchy import face_hierarchy

    h = face_hierarchy(model_dir)
    return h.vertex_ids[h.level_of(name)].copy()


def _flip_and_mismatch(name: str, model_dir: Path | None) -> tuple[np.ndarray, float]:
    if name == "ibug68":
        return IBUG68_FLIP.copy(), 0.0
    model_dir = Path(model_dir) if model_dir is not None else _default_dir(name)
    if name == "kp520":
        from facemodels.keypoints520 import kp520_flip

        return kp520_flip(model_dir)
    from facemodels.mesh_hierarchy import face_hierarchy

    h = face_hierarchy(model_dir)
    lvl = h.level_of(name)
    perm = h.flips[lvl]
    if not h.symmetric or not (perm[perm] == np.arange(len(perm))).all():
        raise ValueError(
            f"{model_dir}: the FLAME face region is not left-right symmetric (max mirror "
            f"mismatch {h.flip_mismatch[lvl]:.3g}); no flip permutation for {name}"
        )
    return perm.copy(), h.flip_mismatch[lvl]


def _one_dir(model_dir, flame_dir):
    if model_dir is not None and flame_dir is not None:
        raise TypeError("pass the model folder once: model_dir or flame_dir, not both")
    return flame_dir if model_dir is None else model_dir


def flip_permutation(
    name: str,
    model_dir: str | os.PathLike | None = None,
    *,
    flame_dir: str | os.PathLike | None = None,
) -> np.ndarray:
    """Horizontal-flip permutation of a landmark set.

    Args:
        name: a registered set (see :data:`LANDMARK_COUNTS`).
        model_dir: FLAME folder (face sets), BFM folder (kp520); unused for ibug68;
            default the procedural world's.
        flame_dir: keyword alias of ``model_dir``.
    Returns:
        (L,) int64 involution: ``flipped = mirrored(landmarks)[perm]``.
    """
    landmark_count(name)
    model_dir = _one_dir(model_dir, flame_dir)
    return _flip_and_mismatch(name, None if model_dir is None else Path(model_dir))[0]


def flip_mismatch(
    name: str,
    model_dir: str | os.PathLike | None = None,
    *,
    flame_dir: str | os.PathLike | None = None,
) -> float:
    """Max distance (model units) between a mirrored mean-shape landmark and its flip partner."""
    landmark_count(name)
    model_dir = _one_dir(model_dir, flame_dir)
    return _flip_and_mismatch(name, None if model_dir is None else Path(model_dir))[1]
