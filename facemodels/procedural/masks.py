"""FLAME_masks.pkl analogue for the procedural head: region name -> vertex indices (int64).

Keys as in FLAME's file: 'face' (exactly 1609 vertices, brows to chin, cheek to cheek), 'neck',
'left_eyeball', 'right_eyeball', 'lips', 'nose', 'forehead', 'scalp', 'eye_region',
'left_eye_region', 'right_eye_region', 'left_ear', 'right_ear', 'boundary'.

:func:`dad_benchmark_sets`: analogues of the two vertex sets the DAD-3DHeads benchmark reads
from its ``model_training/model/static`` folder (docs/PROTOCOLS.md), written into the
procedural FLAME folder under the same file names.
"""

from __future__ import annotations

import numpy as np

from facemodels.procedural import anatomy as A
from facemodels.procedural import topology as T

N_FACE = 1609


def _inside_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    a, b = poly, np.roll(poly, -1, axis=0)
    py, px = p[:, None, 1], p[:, None, 0]
    cond = (a[None, :, 1] > py) != (b[None, :, 1] > py)
    dy = np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1])
    xint = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None]
    return (cond & (px < xint)).sum(1) % 2 == 1


def mirror_index() -> np.ndarray:
    """(5023,) index of each vertex's mirror image (x -> -x)."""
    m = np.zeros(T.N_VERTS, dtype=np.int64)
    k, j = np.meshgrid(np.arange(T.N_RINGS), np.arange(T.N_COLS), indexing="ij")
    m[T.head_vertex(k, j).ravel()] = T.head_vertex(k, (-j) % T.N_COLS).ravel()
    e = np.arange(T.EYE_RINGS * T.EYE_COLS)
    r, c = e // T.EYE_COLS, e % T.EYE_COLS
    eye_m = np.concatenate([r * T.EYE_COLS + (-c) % T.EYE_COLS, [T.N_EYE - 2, T.N_EYE - 1]])
    m[T.LEFT_EYE_SLICE] = T.N_HEAD + T.N_EYE + eye_m
    m[T.RIGHT_EYE_SLICE] = T.N_HEAD + eye_m
    return m


def _face_selection(p: np.ndarray, lmk: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """Exactly N_FACE head vertices nearest (elliptic score) to the face centre, mirror-closed."""
    y_top = lmk[17:27, 1].max() + 0.006
    y_bot = lmk[8, 1] - 0.004
    yc, hy = 0.5 * (y_top + y_bot), 0.5 * (y_top - y_bot)
    ok = (p[:, 2] > 0.0) & (p[:, 1] <= y_top) & (p[:, 1] >= y_bot)
    ok[T.N_HEAD :] = False

    def score_for(wx: float) -> np.ndarray:
        s = (p[:, 0] / wx) ** 4 + ((p[:, 1] - yc) / hy) ** 4
        return np.where(ok, s, np.inf)

    # widen the superellipse until it holds N_FACE vertices: brows to chin, cheek to cheek
    lo, hi = 0.02, 0.12
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if (score_for(mid) <= 1.0).sum() < N_FACE else (lo, mid)
    score = score_for(hi)
    order = np.argsort(score, kind="stable")
    chosen: list[int] = []
    seen = np.zeros(len(p), dtype=bool)
    for v in order:
        if len(chosen) == N_FACE or not np.isfinite(score[v]):
            break
        if seen[v]:
            continue
        m = mirror[v]
        if m == v:
            chosen.append(v)
            seen[v] = True
        elif len(chosen) + 2 <= N_FACE:
            chosen += [v, m]
            seen[v] = seen[m] = True
    if len(chosen) != N_FACE:
        raise RuntimeError(f"face region has {len(chosen)} vertices, expected {N_FACE}")
    return np.sort(np.array(chosen, dtype=np.int64))


def build_masks(verts: np.ndarray, lmk: np.ndarray) -> dict[str, np.ndarray]:
    """verts (5023, 3) mean positions, lmk (68, 3) mean landmarks (metres)."""
    head = np.arange(T.N_HEAD)
    p = verts[: T.N_HEAD]
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    mirror = mirror_index()
    q = np.stack([np.abs(x), y, z], 1) - A.EAR_CENTRE
    ear = (np.sqrt(((q / A.EAR_AXES) ** 2).sum(1)) < 1.4) & (np.abs(x) > 0.060)
    neck = y < A.NECK_Y
    scalp = ((y > A.HAIRLINE_Y) | ((z < -0.035) & (y > -0.045))) & ~ear & ~neck
    eye_region = (
        (np.abs(x) > 0.006)
        & (np.abs(x) < 0.058)
        & (y > 0.012)
        & (y < lmk[17:27, 1].max() + 0.004)
        & (z > 0.03)
    )
    forehead = (
        (y > lmk[17:27, 1].min())
        & (y <= A.HAIRLINE_Y)
        & (np.abs(x) < 0.062)
        & (z > 0.02)
        & ~eye_region
    )
    nose_poly = np.array(
        [
            [-0.006, lmk[27, 1] + 0.002],
            [0.006, lmk[27, 1] + 0.002],
            [0.012, 0.005],
            [0.021, -0.013],
            [0.012, lmk[33, 1] - 0.003],
            [-0.012, lmk[33, 1] - 0.003],
            [-0.021, -0.013],
            [-0.012, 0.005],
        ]
    )
    nose = _inside_polygon(p[:, :2], nose_poly) & (z > 0.06)
    lips = _inside_polygon(p[:, :2], lmk[48:60, :2]) & (z > 0.05)
    bottom = T.head_vertex(T.N_RINGS - 1, np.arange(T.N_COLS))
    masks = {
        "face": _face_selection(verts, lmk, mirror),
        "neck": head[neck],
        "left_eyeball": np.arange(T.N_HEAD, T.N_HEAD + T.N_EYE),
        "right_eyeball": np.arange(T.N_HEAD + T.N_EYE, T.N_VERTS),
        "lips": head[lips],
        "nose": head[nose],
        "forehead": head[forehead],
        "scalp": head[scalp],
        "eye_region": head[eye_region],
        "left_eye_region": head[eye_region & (x > 0)],
        "right_eye_region": head[eye_region & (x < 0)],
        "left_ear": head[ear & (x > 0)],
        "right_ear": head[ear & (x < 0)],
        "boundary": np.asarray(bottom, dtype=np.int64),
    }
    return {k: np.asarray(v, dtype=np.int64) for k, v in masks.items()}


def dad_benchmark_sets(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The DAD-3DHeads benchmark's vertex sets, procedural analogues (sorted int64), keyed by
    the file names the benchmark reads:

    - ``head_indices.npy`` (Z5; real FLAME: 3669 vertices, everything but the neck and the
      eyeballs): every head vertex not in 'neck' (the eyeballs are not head vertices);
    - ``flame_indices/face.npy`` (Chamfer; real FLAME: 2094 vertices, the face with the
      forehead and the eye regions): 'face' | 'forehead' | 'eye_region' | 'nose' | 'lips'.
    """
    head = np.setdiff1d(np.arange(T.N_HEAD), masks["neck"])
    face = np.unique(np.concatenate([masks[k] for k in ("face", "forehead", "eye_region", "nose", "lips")]))
    return {"head_indices.npy": head.astype(np.int64), "flame_indices/face.npy": face.astype(np.int64)}
