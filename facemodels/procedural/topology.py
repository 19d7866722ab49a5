"""Mesh topologies of the procedural head: the FLAME-format grid + eyeballs, and the BFM-format grid.

FLAME format (5023 vertices, 9976 faces):
- vertex 0: top pole; vertices 1 + k * 60 + j: ring k (0..77, top -> neck), column j (0..59);
  4681 head vertices, the last ring is the open neck boundary;
- 4681..4851: left eyeball (subject's left, x > 0), 4852..5022: right eyeball; each 13 rings x
  13 columns (index 13 * ring + column) then the front pole (pupil centre) and the back pole.
Columns are mirror symmetric: column j <-> column (-j) % 60 (phi_0 = 0 faces forward, phi_30 = pi).
Quads on the x > 0 side are split along (k, j)-(k+1, j+1), on the x < 0 side along the mirror
diagonal, so the triangulation is mirror symmetric too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemodels.procedural.surface import directions

N_RINGS, N_COLS = 78, 60
N_HEAD = N_RINGS * N_COLS + 1  # 4681
EYE_RINGS, EYE_COLS = 13, 13
N_EYE = EYE_RINGS * EYE_COLS + 2  # 171
N_VERTS = N_HEAD + 2 * N_EYE  # 5023
N_FACES_HEAD = N_COLS * (2 * N_RINGS - 1)  # 9300
N_FACES_EYE = 2 * EYE_COLS + 2 * EYE_COLS * (EYE_RINGS - 1)  # 338
N_FACES = N_FACES_HEAD + 2 * N_FACES_EYE  # 9976
LEFT_EYE_SLICE = slice(N_HEAD, N_HEAD + N_EYE)
RIGHT_EYE_SLICE = slice(N_HEAD + N_EYE, N_VERTS)


def _graded(n: int, knots_u: list[float], knots_v: list[float], smooth: int = 6) -> np.ndarray:
    """n samples of a monotone map u -> v (piecewise linear through the knots at
    u = linspace(0, 1, n)), with the step sizes smoothed so the spacing changes gradually;
    the end values are kept exactly."""
    v = np.interp(np.linspace(0.0, 1.0, n), knots_u, knots_v)
    steps = np.diff(v)
    for _ in range(smooth):
        padded = np.concatenate([steps[:1], steps, steps[-1:]])
        steps = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    steps *= (knots_v[-1] - knots_v[0]) / steps.sum()
    return np.concatenate([[knots_v[0]], knots_v[0] + np.cumsum(steps)])


def head_angles() -> tuple[np.ndarray, np.ndarray]:
    """Ring polar angles theta (78,) and column azimuths psi in [0, 2 pi) (60,), radians."""
    d = np.pi / 180.0
    # ring k sits at u = (k + 1) / 78; dense (~1.6 deg) over the face (50..142 deg)
    th = _graded(N_RINGS + 1, [0.0, 12 / 78, 70 / 78, 1.0], [0.0, 50 * d, 142 * d, 162 * d])[1:]
    # half circle: 31 columns phi_0 = 0 .. phi_30 = pi, ~3.8 deg within +-72 deg
    half = _graded(31, [0.0, 19 / 30, 1.0], [0.0, 72 * d, np.pi])
    psi = np.concatenate([half, 2 * np.pi - half[-2:0:-1]])
    return th, psi


def head_vertex(k: int | np.ndarray, j: int | np.ndarray) -> int | np.ndarray:
    return 1 + k * N_COLS + (j % N_COLS)


def _head_faces() -> np.ndarray:
    faces = [(0, head_vertex(0, j), head_vertex(0, j + 1)) for j in range(N_COLS)]
    for k in range(N_RINGS - 1):
        for j in range(N_COLS):
            a, b = head_vertex(k, j), head_vertex(k, j + 1)
            c, d = head_vertex(k + 1, j), head_vertex(k + 1, j + 1)
            if j < N_COLS // 2:  # x > 0 side: diagonal a-d; triangles {a,b,d} (u>=v), {a,c,d}
                faces += [(a, d, b), (a, c, d)]
            else:  # x < 0 side: diagonal b-c; triangles {a,b,c} (u+v<=1), {b,c,d}
                faces += [(a, c, b), (b, c, d)]
    return np.array(faces, dtype=np.int64)


def eyeball_unit() -> np.ndarray:
    """(171, 3) unit sphere, front pole towards +z; column j <-> (-j) % 13 under x -> -x."""
    al = np.pi * np.arange(1, EYE_RINGS + 1) / (EYE_RINGS + 1)
    be = np.pi / 2 + 2 * np.pi * np.arange(EYE_COLS) / EYE_COLS
    A, B = np.meshgrid(al, be, indexing="ij")
    ring = np.stack([np.sin(A) * np.cos(B), np.sin(A) * np.sin(B), np.cos(A)], -1).reshape(-1, 3)
    return np.concatenate([ring, [[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]]], 0)


def _eye_faces(offset: int) -> np.ndarray:
    front, back = EYE_RINGS * EYE_COLS, EYE_RINGS * EYE_COLS + 1

    def v(i: int, j: int) -> int:
        return i * EYE_COLS + j % EYE_COLS

    faces = [(front, v(0, j), v(0, j + 1)) for j in range(EYE_COLS)]
    faces += [(back, v(EYE_RINGS - 1, j + 1), v(EYE_RINGS - 1, j)) for j in range(EYE_COLS)]
    for i in range(EYE_RINGS - 1):
        for j in range(EYE_COLS):
            a, b, c, d = v(i, j), v(i, j + 1), v(i + 1, j), v(i + 1, j + 1)
            faces += [(a, c, b), (b, c, d)]
    return np.array(faces, dtype=np.int64) + offset


@dataclass(frozen=True)
class FlameTopology:
    theta: np.ndarray  # (78,) ring polar angles, rad
    psi: np.ndarray  # (60,) column azimuths in [0, 2 pi), rad
    faces: np.ndarray  # (9976, 3) int64

    @staticmethod
    def build() -> FlameTopology:
        th, psi = head_angles()
        f = np.concatenate([_head_faces(), _eye_faces(N_HEAD), _eye_faces(N_HEAD + N_EYE)], 0)
        assert f.shape == (N_FACES, 3)
        return FlameTopology(th, psi, f)

    def head_directions(self) -> np.ndarray:
        """(4681, 3) unit ray directions of the head vertices (pole first)."""
        T, P = np.meshgrid(self.theta, self.psi, indexing="ij")
        d = directions(T.ravel(), P.ravel())
        return np.concatenate([[[0.0, 1.0, 0.0]], d], 0)

    def locate(self, theta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Head-grid face index (N,) and barycentric coordinates (N, 3) at parameters (theta, phi)."""
        psi = np.mod(phi, 2 * np.pi)
        th_all = np.concatenate([[0.0], self.theta])
        k = np.clip(np.searchsorted(th_all, theta, side="right") - 1, 0, N_RINGS - 1)  # 0 = cap
        j = np.searchsorted(self.psi, psi, side="right") - 1
        psi_next = np.where(j + 1 < N_COLS, self.psi[np.minimum(j + 1, N_COLS - 1)], 2 * np.pi)
        u = (psi - self.psi[j]) / (psi_next - self.psi[j])
        fidx = np.zeros(len(theta), dtype=np.int64)
        bary = np.zeros((len(theta), 3))
        cap = k == 0
        v = theta / self.theta[0]
        # cap face (pole, (0, j), (0, j+1))
        fidx[cap] = j[cap]
        bary[cap] = np.stack([1 - v, v * (1 - u), v * u], 1)[cap]
        kk = k - 1  # band between ring kk and kk+1
        band = ~cap
        lo = np.maximum(kk, 0)
        vv = (theta - self.theta[lo]) / (
            self.theta[np.minimum(lo + 1, N_RINGS - 1)] - self.theta[lo]
        )
        base = N_COLS + 2 * (lo * N_COLS + j)
        pos = j < N_COLS // 2
        # x > 0 side: (a, d, b) if u >= v else (a, c, d)
        up = u >= vv
        b1 = np.where(
            up[:, None], np.stack([1 - u, vv, u - vv], 1), np.stack([1 - vv, vv - u, u], 1)
        )
        f1 = base + np.where(up, 0, 1)
        # x < 0 side: (a, c, b) if u + v <= 1 else (b, c, d)
        lowr = u + vv <= 1
        b2 = np.where(
            lowr[:, None],
            np.stack([1 - u - vv, vv, u], 1),
            np.stack([1 - vv, 1 - u, u + vv - 1], 1),
        )
        f2 = base + np.where(lowr, 0, 1)
        fidx[band] = np.where(pos, f1, f2)[band]
        bary[band] = np.where(pos[:, None], b1, b2)[band]
        return fidx, bary


@dataclass(frozen=True)
class BfmTopology:
    """A front grid (face, forehead, cheeks, ears; no back of head): rows over theta, cols over phi."""

    theta: np.ndarray
    phi: np.ndarray
    tri: np.ndarray  # (T, 3) int64, 0-based

    @staticmethod
    def build(n_theta: int = 84, n_half_phi: int = 51) -> BfmTopology:
        """Graded grid: ~1.4 deg rows over the face, ~1.5 deg columns within +-45 deg."""
        d = np.pi / 180.0
        th = _graded(n_theta, [0.0, 8 / 83, 76 / 83, 1.0], [30 * d, 50 * d, 145 * d, 155 * d])
        half = _graded(n_half_phi, [0.0, 30 / 50, 1.0], [0.0, 45 * d, 105 * d])
        ph = np.concatenate([-half[:0:-1], half])
        n_phi = len(ph)
        tri = []
        for r in range(n_theta - 1):
            for c in range(n_phi - 1):
                a, b = r * n_phi + c, r * n_phi + c + 1
                cc, dd = a + n_phi, b + n_phi
                if ph[c] >= 0:
                    tri += [(a, dd, b), (a, cc, dd)]
                else:
                    tri += [(a, cc, b), (b, cc, dd)]
        return BfmTopology(th, ph, np.array(tri, dtype=np.int64))

    def params(self) -> tuple[np.ndarray, np.ndarray]:
        T, P = np.meshgrid(self.theta, self.phi, indexing="ij")
        return T.ravel().copy(), P.ravel().copy()
