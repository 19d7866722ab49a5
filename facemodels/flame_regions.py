"""Vertex regions of a FLAME mesh for albedo: skin, brows, lips, eyes, scalp."""

from __future__ import annotations

import os

import numpy as np

from facemodels.flame_files import FlameArrays, flame_masks, load_flame_arrays

__all__ = ["vertex_regions"]


def _static_landmarks(arr: FlameArrays) -> np.ndarray:
    tri = arr.v_template[arr.faces[arr.static_lmk_faces]]  # (51, 3, 3)
    return (tri * arr.static_lmk_bary[..., None]).sum(1)


def vertex_regions(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Albedo regions, a partition of all vertices: 'skin', 'brows', 'lips', 'eyes' (both
    eyeballs: iris + sclera), 'scalp' (hair). Works for real FLAME folders too (brows are the
    skin vertices within 4 mm (x, y) of the brow landmark polylines, in front of the eyes)."""
    arr = load_flame_arrays(folder)
    masks = flame_masks(folder)
    v = arr.v_template
    label = np.zeros(len(v), dtype=np.int64)  # 0 skin
    names = ["skin", "brows", "lips", "eyes", "scalp"]
    if "scalp" in masks:
        label[masks["scalp"]] = 4
    if "lips" in masks:
        label[masks["lips"]] = 2
    lm = _static_landmarks(arr)  # static 51 = iBUG 17..67
    brow_lines = [lm[0:5, :2], lm[5:10, :2]]  # iBUG 17-21, 22-26
    d = np.full(len(v), np.inf)
    for line in brow_lines:
        a, b = line[:-1], line[1:]
        ab = b - a
        ap = v[:, None, :2] - a[None]
        t = np.clip((ap * ab).sum(-1) / (ab * ab).sum(-1), 0, 1)
        d = np.minimum(d, np.linalg.norm(ap - t[..., None] * ab, axis=-1).min(1))
    z_eye = lm[19:31, 2].min()  # iBUG 36..47
    brows = (d < 0.004) & (v[:, 2] > z_eye - 0.02) & (label == 0)
    label[brows] = 1
    for key in ("left_eyeball", "right_eyeball"):
        if key in masks:
            label[masks[key]] = 3
    return {name: np.flatnonzero(label == i).astype(np.int64) for i, name in enumerate(names)}
