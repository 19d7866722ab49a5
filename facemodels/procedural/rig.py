"""Skinning rig of the FLAME-format head: J_regressor (5, V), LBS weights (V, 5), posedirs.

Joints (FLAME order): 0 root at the neck base, 1 neck, 2 jaw (midpoint of the two
temporomandibular joints, so jaw rotations about x open the mouth), 3 left eye, 4 right eye
(eyeball centres). Parents [-1, 0, 1, 1, 1].
"""

from __future__ import annotations

import numpy as np

from facemodels.procedural import anatomy as A
from facemodels.procedural import topology as T
from facemodels.procedural.surface import angles

KINTREE = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)


def _ss(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def j_regressor(topo: T.FlameTopology, verts: np.ndarray) -> np.ndarray:
    """(5, 5023) rows summing to 1; joints = J_regressor @ vertices."""
    J = np.zeros((5, T.N_VERTS))
    # root: bottom ring, weighted by column spacing so the mean is the ring's centre
    psi = topo.psi
    dpsi = (np.roll(psi, -1) - np.roll(psi, 1)) % (2 * np.pi)
    ring = T.head_vertex(T.N_RINGS - 1, np.arange(T.N_COLS))
    J[0, ring] = dpsi / dpsi.sum()
    # jaw: the surface points laterally over both TMJs, averaged (x cancels)
    tmj = np.stack([A.TMJ, A.TMJ * np.array([-1.0, 1.0, 1.0])])
    th, ph = angles(A.CENTRE + (tmj - A.CENTRE) * 1.0)
    fidx, bary = topo.locate(th, ph)
    for f, b in zip(fidx, bary, strict=True):
        np.add.at(J[2], topo.faces[f], 0.5 * b)
    J[1] = 0.5 * (J[0] + J[2])
    J[3, T.LEFT_EYE_SLICE] = 1.0 / T.N_EYE
    J[4, T.RIGHT_EYE_SLICE] = 1.0 / T.N_EYE
    return J


def _root_weight_below(y: np.ndarray) -> np.ndarray:
    """(N,) the root's share from height alone: the neck base below y = -0.112 m."""
    return _ss((-0.112 - y) / 0.04)


def jaw_weight(p: np.ndarray, stomion_y: float) -> np.ndarray:
    """(N,) the lower jaw's skinning weight at mean positions p (N, 3) metres: 1 below the side-view
    line from the TMJ (y, z) to the stomion, in front of the ears, above the neck; 0 above it."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    t0 = np.array([A.TMJ[1], A.TMJ[2]])
    s0 = np.array([stomion_y, 0.087])
    dirv = (s0 - t0) / np.linalg.norm(s0 - t0)
    nrm = np.array([dirv[1], -dirv[0]])  # points down (towards -y) for a forward-going line
    if nrm[0] > 0:
        nrm = -nrm
    d = (np.stack([y, z], 1) - t0) @ nrm
    width = 0.0008 + 0.25 * np.clip(np.abs(x) - 0.022, 0.0, None)
    return _ss(d / width + 0.5) * _ss((z + 0.005) / 0.02) * _ss((y + 0.118) / 0.03)


def lbs_weights(verts: np.ndarray, stomion_y: float) -> np.ndarray:
    """(5023, 5) skinning weights from mean positions (metres)."""
    W = np.zeros((T.N_VERTS, 5))
    p = verts[: T.N_HEAD]
    ring = np.concatenate([[0], np.arange(T.N_HEAD - 1) // T.N_COLS])  # pole = ring 0
    # the neck base follows the root: below y = -0.112 m, and the last rings (boundary = 1)
    w_root = np.maximum(_root_weight_below(p[:, 1]), _ss((ring - (T.N_RINGS - 5)) / 4.0))
    w_jaw = np.minimum(jaw_weight(p, stomion_y), 1.0 - w_root)
    W[: T.N_HEAD, 0] = w_root
    W[: T.N_HEAD, 2] = w_jaw
    W[: T.N_HEAD, 1] = 1.0 - w_root - w_jaw
    W[T.LEFT_EYE_SLICE, 3] = 1.0
    W[T.RIGHT_EYE_SLICE, 4] = 1.0
    return W


def jaw_opening(p: np.ndarray, joint: np.ndarray, stomion_y: float, angle: float) -> np.ndarray:
    """(N, 3) metres: the displacement of mean positions p (N, 3) when the jaw of this rig opens by
    ``angle`` radians about the x axis through ``joint`` (3,) (the J_regressor's jaw joint), blended
    by :func:`jaw_weight` (less the neck base's share) as linear blend skinning does. For a mesh
    without the rig's joints (the BFM-format face): the same jaw as the FLAME-format head's."""
    w = np.minimum(jaw_weight(p, stomion_y), 1.0 - _root_weight_below(p[:, 1]))
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    rel = p - joint
    return w[:, None] * (rel @ rot.T - rel)


def posedirs() -> np.ndarray:
    """(5023, 3, 36) pose correctives: none (zeros) in this model."""
    return np.zeros((T.N_VERTS, 3, 36))
