"""The face-region hierarchy of a FLAME folder, built once and cached.

:func:`face_hierarchy` reads the template (``FLAME_NEUTRAL.pkl``) and the face region
(``FLAME_masks.pkl['face']``, 1609 vertices for FLAME, in the file's order) through
:mod:`facemodels.flame_files`, builds :func:`facemodels.mesh.hierarchy.build_hierarchy`
and caches it with :func:`facemodels.cache.cached_npz` in
``<flame_dir>/suite_mesh_hierarchy.npz`` (or the user cache when the folder is read-only),
keyed by the template, the region and the parameters.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facemodels.cache import cached_npz
from facemodels.flame_files import flame_mask, read_flame_template
from facemodels.mesh.hierarchy import FACE_LEVEL_SIZES, MeshHierarchy, build_hierarchy
from facemodels.world import default_flame_dir

__all__ = ["CACHE_FILE", "CACHE_VERSION", "face_hierarchy"]

CACHE_FILE = "suite_mesh_hierarchy.npz"
CACHE_VERSION = 3  # bump when build_hierarchy's result changes


def _to_arrays(h: MeshHierarchy) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {
        "names": np.array(h.names),
        "flip_mismatch": np.array(h.flip_mismatch, dtype=np.float64),
        "symmetric": np.array(h.symmetric),
    }
    for lvl in range(h.num_levels):
        out[f"vertex_ids_{lvl}"] = h.vertex_ids[lvl]
        out[f"faces_{lvl}"] = h.faces[lvl]
        out[f"uv_{lvl}"] = h.uv[lvl]
        out[f"spirals_{lvl}"] = h.spirals[lvl]
        out[f"flip_{lvl}"] = h.flips[lvl]
    for lvl in range(h.num_levels - 1):
        out[f"down_index_{lvl}"] = h.down_index[lvl]
        out[f"up_index_{lvl}"] = h.up_index[lvl]
        out[f"up_weight_{lvl}"] = h.up_weight[lvl]
    return out


def _from_arrays(z: dict[str, np.ndarray]) -> MeshHierarchy:
    names = [str(s) for s in z["names"]]
    n = len(names)
    return MeshHierarchy(
        vertex_ids=[z[f"vertex_ids_{i}"] for i in range(n)],
        faces=[z[f"faces_{i}"] for i in range(n)],
        uv=[z[f"uv_{i}"] for i in range(n)],
        down_index=[z[f"down_index_{i}"] for i in range(n - 1)],
        up_index=[z[f"up_index_{i}"] for i in range(n - 1)],
        up_weight=[z[f"up_weight_{i}"] for i in range(n - 1)],
        spirals=[z[f"spirals_{i}"] for i in range(n)],
        names=names,
        flips=[z[f"flip_{i}"] for i in range(n)],
        flip_mismatch=[float(x) for x in z["flip_mismatch"]],
        symmetric=bool(z["symmetric"]),
    )


def face_hierarchy(
    flame_dir: str | os.PathLike | None = None,
    spiral_length: int = 9,
    chart: str = "auto",
    sizes: Sequence[int] = FACE_LEVEL_SIZES,
) -> MeshHierarchy:
    """The face-region hierarchy of a FLAME-format folder, cached on disk and in memory.

    Args:
        flame_dir: folder with FLAME_NEUTRAL.pkl and FLAME_masks.pkl; default
            ``facemodels.world.default_flame_dir()``.
        spiral_length, chart, sizes: see :func:`facemodels.mesh.hierarchy.build_hierarchy`.
    Returns:
        MeshHierarchy with levels named face1609, face805, face403, face202, face101.
    """
    flame_dir = Path(flame_dir) if flame_dir is not None else default_flame_dir()
    v, f = read_flame_template(flame_dir)
    region = flame_mask(flame_dir, "face")
    arrays = cached_npz(
        flame_dir,
        CACHE_FILE,
        (v, f, region),
        f"{spiral_length}|{chart}|{list(sizes)}",
        CACHE_VERSION,
        lambda: _to_arrays(
            build_hierarchy(v, f, region, sizes=sizes, spiral_length=spiral_length, chart=chart)
        ),
    )
    return _from_arrays(arrays)
