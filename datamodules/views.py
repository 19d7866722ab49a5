"""Virtual camera views of 3D point sets (mesh datasets without images: CoMA, BFM synthetic).

``view_points(P, yaw_deg, size, projection)`` turns (L, 3) model-space points (metres,
y up, z towards a frontal viewer) into image px (x right, y down) of a ``size`` px virtual
image and a depth in the same px scale (positive towards the camera, zero mean).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["view_points"]


def view_points(
    points: np.ndarray,
    yaw_deg: float,
    size: int,
    projection: str = "orthographic",
    face_fraction: float = 0.6,
    face_width_m: float = 0.16,
    camera_distance_m: float = 0.6,
) -> tuple[np.ndarray, np.ndarray]:
    """(L, 3) metres -> ((L, 2) px, (L,) depth px).

    The centred points are turned by ``yaw_deg`` about the vertical axis, then projected
    orthographically (scale = face_fraction * size / face_width_m px per metre) or in
    perspective (camera at ``camera_distance_m``, focal length chosen so that a point at
    that distance has the orthographic scale).
    """
    if projection not in ("orthographic", "perspective"):
        raise ValueError(f"projection must be 'orthographic' or 'perspective', got {projection!r}")
    p = np.asarray(points, np.float64)
    p = p - p.mean(0)
    a = math.radians(yaw_deg)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    q = p @ ry.T
    s = face_fraction * size / face_width_m  # px per metre
    c = (size - 1) / 2.0
    if projection == "orthographic":
        xy = q[:, :2] * s
    else:
        z = camera_distance_m - q[:, 2]  # distance from the camera
        xy = q[:, :2] * (s * camera_distance_m / z)[:, None]
    px = np.stack([c + xy[:, 0], c - xy[:, 1]], 1)
    depth = q[:, 2] * s
    return px, depth - depth.mean()
