"""Left-right mirror matching of point sets (flip permutations of symmetric sets).

A flip permutation ``perm`` is the point order after a horizontal flip:
``flipped[i] = mirror(points[perm[i]])`` with ``mirror: x -> 2 c - x`` across the
symmetry plane ``x = c``. For a symmetric set it is an involution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["MirrorMatch", "mirror_match", "mirror_permutation"]


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
