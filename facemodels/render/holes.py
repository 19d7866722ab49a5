"""Mesh holes (boundary loops) and the back-face culling they permit.

For a mesh whose only openings are its boundary loops (FLAME: neck, mouth, eye sockets), a
back-facing triangle can be the nearest surface at a pixel only if the camera ray entered
the volume through a hole, so the pixel lies in the convex hull of that hole's projected
boundary vertices. Back faces whose screen box misses every hole box can be skipped
without changing the image; on a closed mesh every back face is skipped.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from facemodels.cache import Memo, content_key

_LOOPS: Memo[list[np.ndarray]] = Memo(maxsize=16)


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Vertex index sets of the connected components of the boundary edges.

    Args:
        faces: (F, 3) int.
    Returns:
        list of (n_i,) int64 arrays, one per hole (empty list for a closed mesh). Cached by
        the content of ``faces``.
    """
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    return _LOOPS.get(content_key(faces), lambda: _boundary_loops(faces))


def _boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    b = uniq[counts == 1]  # (E_b, 2) boundary edges
    loops: list[np.ndarray] = []
    if b.size:
        verts, inv = np.unique(b, return_inverse=True)
        inv = inv.reshape(-1, 2)
        n = verts.size
        g = coo_matrix((np.ones(len(inv)), (inv[:, 0], inv[:, 1])), shape=(n, n))
        nc, labels = connected_components(g, directed=False)
        loops = [verts[labels == c] for c in range(nc)]
    return loops


def faces_to_rasterize(
    uv: np.ndarray, faces: np.ndarray, front: np.ndarray, loops: list[np.ndarray]
) -> np.ndarray:
    """Indices of the faces that can be visible: all front faces plus the back faces whose
    screen bounding box overlaps the bounding box of some projected hole.

    Args:
        uv: (N, 2) pixels.  faces: (F, 3).  front: (F,) bool front-facing.
        loops: from :func:`boundary_loops`.
    Returns:
        (F',) int64 face indices, ascending.
    """
    keep = front.copy()
    back = np.nonzero(~front)[0]
    if back.size and loops:
        t = uv[faces[back]]  # (B, 3, 2)
        lo, hi = t.min(1), t.max(1)  # (B, 2)
        hit = np.zeros(back.size, dtype=bool)
        for loop in loops:
            p = uv[loop]
            hlo, hhi = p.min(0), p.max(0)
            hit |= (lo <= hhi).all(1) & (hi >= hlo).all(1)
        keep[back[hit]] = True
    return np.nonzero(keep)[0]
