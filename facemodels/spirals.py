"""SpiralNet++ spiral sequences on a triangle mesh (numpy, built once, cached by callers).

A spiral of vertex v (Gong et al., "SpiralNet++", 2019) is ``[v, ring1..., ring2..., ...]``
cut to a fixed length. Here the k-ring is the set of vertices at graph (edge) distance k,
and each ring is listed in a consistent angular order: counter-clockwise around v in a 2D
chart of the surface (``uv``, e.g. the frontal projection (x, y) of a face), starting at
the direction closest to +u (the chart's x axis), i.e. by ``atan2(dv, du)`` in [0, 2 pi).
Using a global reference direction makes the order consistent between vertices and
deterministic, which is what the spiral convolution needs (its weights are shared per
position in the sequence). Spirals shorter than ``length`` (tiny components) are padded
by repeating the sequence from its start.
"""

from __future__ import annotations

import numpy as np

__all__ = ["vertex_adjacency", "edge_list", "spiral_indices"]


def edge_list(faces: np.ndarray) -> np.ndarray:
    """Unique undirected edges of a triangle list.

    Args:
        faces: (F, 3) int vertex indices.
    Returns:
        (E, 2) int64, each row sorted (i < j), rows sorted lexicographically.
    """
    faces = np.asarray(faces, dtype=np.int64)
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"edge_list: faces must be (F, 3), got {faces.shape}")
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 0)
    e = np.sort(e, axis=1)
    return np.unique(e, axis=0)


def vertex_adjacency(faces: np.ndarray, n_vertices: int) -> list[np.ndarray]:
    """Neighbour lists from a triangle list.

    Args:
        faces: (F, 3) int vertex indices < n_vertices.
        n_vertices: number of vertices N (isolated vertices get an empty list).
    Returns:
        list of N sorted int64 arrays.
    """
    e = edge_list(faces) if len(faces) else np.zeros((0, 2), np.int64)
    if len(e) and e.max() >= n_vertices:
        raise ValueError(f"vertex_adjacency: face index {e.max()} >= n_vertices {n_vertices}")
    both = np.concatenate([e, e[:, ::-1]], 0)
    order = np.lexsort((both[:, 1], both[:, 0]))
    both = both[order]
    starts = np.searchsorted(both[:, 0], np.arange(n_vertices + 1))
    return [both[starts[i] : starts[i + 1], 1] for i in range(n_vertices)]


def spiral_indices(
    faces: np.ndarray,
    uv: np.ndarray,
    length: int = 9,
    dilation: int = 1,
) -> np.ndarray:
    """Fixed-length spiral index sequences for every vertex.

    Args:
        faces: (F, 3) int triangles.
        uv: (N, 2) float 2D chart coordinates used for the angular order (any unit).
        length: spiral length L (SpiralNet++ uses 9 for 1-ring-ish, 12 ...).
        dilation: dilated spirals as in SpiralNet++: the first ``length * dilation``
            elements, every ``dilation``-th (the centre is element 0).
    Returns:
        (N, L) int64; column 0 is the vertex itself.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"spiral_indices: uv must be (N, 2), got {uv.shape}")
    if length < 1 or dilation < 1:
        raise ValueError(
            f"spiral_indices: length and dilation must be >= 1, got {length}, {dilation}"
        )
    n = uv.shape[0]
    adj = vertex_adjacency(faces, n)
    need = length * dilation
    out = np.empty((n, length), dtype=np.int64)
    for v in range(n):
        seq = [v]
        seen = {v}
        frontier = [v]
        while len(seq) < need and frontier:
            ring = sorted({int(u) for f in frontier for u in adj[f]} - seen)
            if not ring:
                break
            d = uv[ring] - uv[v]  # (k, 2)
            ang = np.mod(np.arctan2(d[:, 1], d[:, 0]), 2 * np.pi)
            order = np.lexsort((np.hypot(d[:, 0], d[:, 1]), ang))  # angle, then radius
            ring = [ring[i] for i in order]
            seq.extend(ring)
            seen.update(ring)
            frontier = ring
        seq = seq[:need][::dilation]  # SpiralNet++ dilation: every d-th, centre kept
        if len(seq) < length:  # pad by repetition
            seq = (seq * (length // len(seq) + 1))[:length]
        out[v] = seq[:length]
    return out
