"""Small analytic meshes for tests and benchmarks (outward, counter-clockwise faces)."""

from __future__ import annotations

import numpy as np


def uv_ellipsoid(
    n_lat: int = 59, n_lon: int = 86, radii: tuple[float, float, float] = (0.08, 0.11, 0.10)
) -> tuple[np.ndarray, np.ndarray]:
    """A latitude-longitude ellipsoid (poles on +-y).

    With the defaults it has 4904 vertices and 9976 faces (FLAME has 5023 / 9976).

    Args:
        n_lat: latitude bands (>= 2).  n_lon: longitude segments (>= 3).
        radii: semi-axes (x, y, z) in metres.
    Returns:
        verts (V, 3) float64 metres, faces (F, 3) int64 with ``F = 2 n_lon (n_lat - 1)``.
    """
    theta = np.linspace(0, np.pi, n_lat + 1)[1:-1]  # polar angle from +y, interior rings
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    st, ct = np.sin(theta)[:, None], np.cos(theta)[:, None]
    ring = np.stack(
        [
            st * np.sin(phi)[None, :],
            np.broadcast_to(ct, (theta.size, n_lon)),
            st * np.cos(phi)[None, :],
        ],
        axis=-1,
    ).reshape(-1, 3)
    verts = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * np.asarray(radii)
    top, bottom = 0, verts.shape[0] - 1
    ring_idx = 1 + np.arange(theta.size * n_lon).reshape(theta.size, n_lon)
    nxt = np.roll(ring_idx, -1, axis=1)
    faces = [np.stack([np.full(n_lon, top), ring_idx[0], nxt[0]], 1)]
    a, b = ring_idx[:-1], nxt[:-1]
    c, d = ring_idx[1:], nxt[1:]
    faces.append(np.stack([a, c, d], -1).reshape(-1, 3))
    faces.append(np.stack([a, d, b], -1).reshape(-1, 3))
    faces.append(np.stack([np.full(n_lon, bottom), nxt[-1], ring_idx[-1]], 1))
    faces = np.concatenate(faces).astype(np.int64)
    # Make every face counter-clockwise seen from outside.
    v = verts[faces]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    flip = np.einsum("fd,fd->f", n, v.mean(1)) < 0
    faces[flip] = faces[flip][:, ::-1]
    return verts, faces


def grid_plane(n: int = 10, size: float = 0.2, z: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A square grid in the plane ``z`` facing +z (model space), centred at the origin.

    Args:
        n: vertices per side.  size: side length, metres.  z: plane height, metres.
    Returns:
        verts (n*n, 3), faces (2 (n-1)^2, 3) counter-clockwise seen from +z.
    """
    s = np.linspace(-size / 2, size / 2, n)
    x, y = np.meshgrid(s, s)
    verts = np.stack([x.ravel(), y.ravel(), np.full(n * n, z)], 1)
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate(
        [np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)]
    )
    return verts, faces.astype(np.int64)
