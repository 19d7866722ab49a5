"""Per-vertex normals and Lambertian + ambient shading (numpy, camera frame)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Lighting:
    """A directional light plus ambient light.

    Attributes:
        direction: (3,) unit vector pointing from the surface TOWARDS the light, in the CV
            camera frame (x right, y down, z forward); ``(0, 0, -1)`` lights the face frontally.
        ambient: ambient strength (albedo multiplier), typically 0.2 .. 0.6.
        diffuse: diffuse strength, typically 0.4 .. 0.9.
        color: (3,) RGB light colour multiplier.
    """

    direction: tuple[float, float, float] = (0.0, 0.0, -1.0)
    ambient: float = 0.4
    diffuse: float = 0.7
    color: tuple[float, float, float] = field(default=(1.0, 1.0, 1.0))


def face_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unnormalised face normals ``(b - a) x (c - a)`` (length = 2 x area).

    Args:
        verts: (N, 3).  faces: (F, 3) counter-clockwise seen from outside.
    Returns:
        (F, 3) pointing outwards.
    """
    a, b, c = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    return np.cross(b - a, c - a)


def vertex_normals(
    verts: np.ndarray, faces: np.ndarray, fnormals: np.ndarray | None = None
) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Args:
        verts: (N, 3).  faces: (F, 3).  fnormals: (F, 3) from :func:`face_normals`, if at hand.
    Returns:
        (N, 3) unit normals (zero for vertices in no face).
    """
    fn = face_normals(verts, faces) if fnormals is None else fnormals  # (F, 3)
    N = verts.shape[0]
    flat = faces.reshape(-1)
    rep = np.repeat(fn, 3, axis=0)  # (3F, 3), row k belongs to faces.flat[k]
    vn = np.stack([np.bincount(flat, weights=rep[:, d], minlength=N) for d in range(3)], axis=1)
    norm = np.linalg.norm(vn, axis=1, keepdims=True)
    return vn / np.maximum(norm, 1e-12)


def shade_vertices(albedo: np.ndarray, normals: np.ndarray, light: Lighting) -> np.ndarray:
    """Lambertian + ambient: ``albedo * color * (ambient + diffuse * max(0, n . l))``.

    Args:
        albedo: (N, 3) in [0, 1].  normals: (N, 3) unit, camera frame.  light: :class:`Lighting`.
    Returns:
        (N, 3) linear colour, may exceed 1 before clipping.
    """
    ldir = np.asarray(light.direction, dtype=np.float64)
    ldir = ldir / max(np.linalg.norm(ldir), 1e-12)
    lam = np.clip(normals @ ldir, 0.0, None)  # (N,)
    gain = light.ambient + light.diffuse * lam
    return albedo * gain[:, None] * np.asarray(light.color)[None, :]
