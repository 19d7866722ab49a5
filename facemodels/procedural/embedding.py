"""Landmark embeddings of the FLAME-format head (smplx's static + dynamic contour files).

smplx's lookup (``find_dynamic_lmk_idx_and_bcoords``): with ``a = round(clamp(-yaw_deg, max=39))``
where yaw is the y-Euler angle of the global rotation ``R`` (vertices map as ``v' = R v``, so
positive yaw turns the face towards +x), the table row is ``a`` for ``a >= 0`` and ``39 - a`` for
``a < 0`` (78 when ``a < -39``). Row i therefore holds yaw = -i deg for i <= 39 and
yaw = i - 39 deg for i >= 40. On the side turning away, each contour landmark slides along its
horizontal line towards the face centre to the visible silhouette; row 0 (yaw 0) holds the
anatomical jaw points.
"""

from __future__ import annotations

import numpy as np

from facemodels.procedural import topology as T
from facemodels.procedural.surface import HeadSurface, angles


def row_yaw_deg(i: int) -> float:
    """Yaw (degrees) that smplx maps to dynamic-table row i (0..78)."""
    return float(-i) if i <= 39 else float(i - 39)


def embed(topo: T.FlameTopology, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Face indices (N,) and barycentric coordinates (N, 3) of surface points (N, 3)."""
    th, ph = angles(pts)
    return topo.locate(th, ph)


def dynamic_contour(
    surf: HeadSurface, topo: T.FlameTopology, jaw: np.ndarray, n_samples: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """(79, 17) face indices and (79, 17, 3) barycentrics for the 17 contour landmarks.

    ``jaw``: (17, 3) anatomical jaw points on the surface (model space, metres).
    """
    t = np.linspace(0.45, 1.0, n_samples)
    # samples along the horizontal front line from 0.45 * x_j to x_j at height y_j: (17, S, 3)
    xy = np.stack([jaw[:, None, 0] * t[None], np.repeat(jaw[:, None, 1], n_samples, 1)], -1)
    samples = surf.cast_front(xy.reshape(-1, 2)).reshape(17, n_samples, 3)
    samples[:, -1] = jaw
    fidx = np.zeros((79, 17), dtype=np.int64)
    bary = np.zeros((79, 17, 3))
    f0, b0 = embed(topo, jaw)
    for i in range(79):
        yaw = np.deg2rad(row_yaw_deg(i))
        pts = jaw.copy()
        if yaw != 0.0:
            xs = samples[..., 0] * np.cos(yaw) + samples[..., 2] * np.sin(yaw)  # screen x (17, S)
            away = np.sign(jaw[:, 0]) == np.sign(yaw)
            k = np.where(yaw > 0, xs.argmax(1), xs.argmin(1))
            sel = samples[np.arange(17), k]
            pts = np.where(away[:, None], sel, jaw)
        f, b = embed(topo, pts)
        if yaw == 0.0:
            f, b = f0, b0
        fidx[i], bary[i] = f, b
    return fidx, bary
