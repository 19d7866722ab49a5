"""Fixtures of tests/datamodules: a tiny BFM folder in the 3DDFA layout with a real mesh.

``mirror_bfm_dir``: an ellipsoid-cap face grid (21 x 15 = 315 trimmed vertices, +10 untrimmed
"neck" vertices that trimIndex drops), micrometres, symmetric about x = 0; 68 keypoints
placed on interior grid vertices so that the iBUG-68 flip maps each keypoint to the mirror vertex of its partner;
shape (199) and expression (29) bases built from mirror-symmetric and antisymmetric
vectors, so the basis is closed under the mirror (the _Flip fit is exact). Files:
01_MorphableModel.mat (shapeMU/PC/EV, texMU/PC/EV, tl 1-based on the full model),
Model_Expression.mat (mu_exp, w_exp, sigma_exp on the trimmed vertices), model_info.mat
(trimIndex, keypoints, tri (3, T) 1-based trimmed).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

NT, NP = 21, 15  # grid columns (theta, odd: a midline column) x rows (phi)

# iBUG-68 flip pairs (same as facemodels.ibug68) and the midline points
_PAIRS = ([(i, 16 - i) for i in range(8)] + [(17 + i, 26 - i) for i in range(5)] + [(31, 35), (32, 34)]
          + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
          + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)] + [(60, 64), (61, 63), (65, 67)])
_MID = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)


def _grid():
    th = np.linspace(-1.2, 1.2, NT)
    ph = np.linspace(-0.9, 0.9, NP)
    T, P = np.meshgrid(th, ph, indexing="ij")  # (NT, NP)
    v = np.stack([80000 * np.sin(T) * np.cos(P), 100000 * np.sin(P), 90000 * np.cos(T) * np.cos(P)], -1)
    tri = []
    for a in range(NT - 1):
        for b in range(NP - 1):
            i0, i1, i2, i3 = a * NP + b, (a + 1) * NP + b, (a + 1) * NP + b + 1, a * NP + b + 1
            tri += [(i0, i1, i2), (i0, i2, i3)]
    return v.reshape(-1, 3), np.array(tri)


def _mirror_index() -> np.ndarray:
    a, b = np.meshgrid(np.arange(NT), np.arange(NP), indexing="ij")
    return ((NT - 1 - a) * NP + b).reshape(-1)


def _keypoints(rng) -> np.ndarray:
    kp = np.full(68, -1)
    used = set()
    mid_rows = rng.choice(np.arange(1, NP - 1), len(_MID), replace=False)
    for i, r in zip(_MID, mid_rows, strict=True):
        kp[i] = (NT // 2) * NP + r
        used.add(int(kp[i]))
    cells = [(a, b) for a in range(1, NT // 2) for b in range(1, NP - 1)]
    pick = rng.choice(len(cells), len(_PAIRS), replace=False)
    for (i, j), c in zip(_PAIRS, pick, strict=True):
        a, b = cells[c]
        kp[i], kp[j] = a * NP + b, (NT - 1 - a) * NP + b
    assert len(set(kp.tolist())) == 68
    return kp


def _closed_basis(rng, n_cols: int, scale: float) -> np.ndarray:
    """(3N, n_cols) columns alternating mirror-symmetric / antisymmetric (smooth)."""
    m = _mirror_index()
    grid, _ = _grid()
    cols = []
    for k in range(n_cols):
        c = rng.normal(0, 1, (3, 3))
        u = np.tanh(grid / 60000.0 @ c) * scale  # (n, 3) smooth
        mu = u[m] * np.array([-1.0, 1.0, 1.0])
        u = (u + mu) / 2 if k % 2 == 0 else (u - mu) / 2
        cols.append(u.reshape(-1))
    out = np.stack(cols, 1)
    return out / np.linalg.norm(out, axis=0, keepdims=True)


@pytest.fixture(scope="session")
def mirror_bfm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bfm_mirror")
    rng = np.random.default_rng(0)
    v, tri = _grid()
    n = len(v)
    neck = np.stack([np.linspace(-50000, 50000, 10), np.full(10, -150000.0), np.zeros(10)], 1)
    full = np.concatenate([v, neck])  # trimmed = the first n vertices
    pad = np.zeros((30, 199))
    shape_pc = np.concatenate([_closed_basis(rng, 199, 1.0), pad])
    tex_mu = np.tile([200.0, 160.0, 140.0], n + 10)[:, None]
    tex_pc = rng.normal(0, 1, (3 * (n + 10), 199)) / np.sqrt(3 * n)
    sio.savemat(str(d / "01_MorphableModel.mat"), {
        "shapeMU": full.reshape(-1, 1).astype(np.float32),
        "shapePC": shape_pc.astype(np.float32),
        "shapeEV": np.linspace(20000, 500, 199)[:, None].astype(np.float32),
        "texMU": tex_mu.astype(np.float32), "texPC": tex_pc.astype(np.float32),
        "texEV": np.linspace(20, 1, 199)[:, None].astype(np.float32),
        "tl": (tri + 1).astype(np.float64)})
    sio.savemat(str(d / "Model_Expression.mat"), {
        "mu_exp": np.zeros((3 * n, 1), np.float32),
        "w_exp": _closed_basis(rng, 29, 1.0).astype(np.float32),
        "sigma_exp": np.linspace(8000, 500, 29)[:, None].astype(np.float32)})
    sio.savemat(str(d / "model_info.mat"), {
        "trimIndex": np.arange(1, n + 1, dtype=np.float64)[:, None],
        "keypoints": (_keypoints(rng) + 1).astype(np.float64)[None],
        "tri": (tri + 1).T.astype(np.float64)})
    return d
