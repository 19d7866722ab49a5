"""Write triangle meshes as Wavefront .obj or ASCII .ply (metres, FLAME model space)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_mesh"]


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """vertices (V, 3) float, faces (F, 3) int (0-based); the suffix picks .obj or .ply."""
    path = Path(path)
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(
            f"write_mesh({path}): vertices must be (V, 3), faces (F, 3); got {v.shape}, {f.shape}"
        )
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"write_mesh({path}): face indices outside [0, {len(v)})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".obj":
        lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v] + [
            f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f
        ]
    elif path.suffix == ".ply":
        lines = [
            "ply",
            "format ascii 1.0",
            f"element vertex {len(v)}",
            "property float x",
            "property float y",
            "property float z",
            f"element face {len(f)}",
            "property list uchar int vertex_indices",
            "end_header",
        ]
        lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in v] + [f"3 {a} {b} {c}" for a, b, c in f]
    else:
        raise ValueError(f"write_mesh({path}): suffix must be .obj or .ply")
    path.write_text("\n".join(lines) + "\n")
    return path
