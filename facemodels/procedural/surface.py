"""The mean head as an implicit surface, and the ray-cast parametrisation shared by both formats.

The head is the smooth union of
- a body: per-height elliptic cross-sections (cranium cap on top, cheeks, neck below);
- a face block: ``0 < z < h(x, y)`` inside a 2D face outline, ``h`` a thin-plate spline through
  the iBUG-68 landmarks and anatomical control points (nose, lips, eye sockets, cheeks, chin);
- two ears (ellipsoids); optionally the eyeballs (the BFM-format mesh closes the eyes with them).

Every mesh (FLAME-format grid, BFM-format grid) samples this one surface along rays from
``anatomy.CENTRE`` in directions (theta = polar angle from +y, phi = azimuth from +z towards +x).
Units: metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator, RectBivariateSpline

from facemodels.procedural import anatomy as A

MIRROR = np.array([-1.0, 1.0, 1.0])


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum; equals min(a, b) where |a - b| >= k."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -smin(-a, -b, k)


class ThinPlateSpline:
    """z = f(x, y) through (N, 3) control points (x, y, z); tiny ridge for stability."""

    def __init__(self, pts: np.ndarray, reg: float = 1e-9) -> None:
        self.c = pts[:, :2].copy()
        n = len(pts)
        k = self._kernel(self.c, self.c) + reg * np.eye(n)
        p = np.concatenate([np.ones((n, 1)), self.c], axis=1)
        lhs = np.zeros((n + 3, n + 3))
        lhs[:n, :n], lhs[:n, n:], lhs[n:, :n] = k, p, p.T
        rhs = np.concatenate([pts[:, 2], np.zeros(3)])
        sol = np.linalg.solve(lhs, rhs)
        self.w, self.a = sol[:n], sol[n:]

    @staticmethod
    def _kernel(p: np.ndarray, c: np.ndarray) -> np.ndarray:
        r2 = ((p[:, None, :] - c[None, :, :]) ** 2).sum(-1)
        return 0.5 * r2 * np.log(np.maximum(r2, 1e-30))

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        out = np.empty(len(xy))
        for s in range(0, len(xy), 20000):
            q = xy[s : s + 20000]
            out[s : s + 20000] = self._kernel(q, self.c) @ self.w + self.a[0] + q @ self.a[1:]
        return out


def _polygon_sdf(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Signed distance of (N, 2) points to a closed polygon (M, 2); positive inside."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    ab = b - a  # (M, 2)
    ap = p[:, None, :] - a[None]  # (N, M, 2)
    t = np.clip((ap * ab).sum(-1) / (ab * ab).sum(-1), 0.0, 1.0)
    d = np.sqrt(((ap - t[..., None] * ab) ** 2).sum(-1)).min(1)
    # crossing-number inside test
    ya, yb = a[None, :, 1], b[None, :, 1]
    py, px = p[:, None, 1], p[:, None, 0]
    cond = (ya > py) != (yb > py)
    xint = a[None, :, 0] + (py - ya) * (b[None, :, 0] - a[None, :, 0]) / np.where(
        yb == ya, 1e-12, yb - ya
    )
    inside = (cond & (px < xint)).sum(1) % 2 == 1
    return np.where(inside, d, -d)


def _mirror_points(right: np.ndarray) -> np.ndarray:
    """Right half + midline points -> full symmetric set (midline points kept once)."""
    mid = np.abs(right[:, 0]) < 1e-9
    return np.concatenate([right, right[~mid] * MIRROR], axis=0)


@dataclass
class HeadSurface:
    """Implicit mean head. ``inside(p)`` > 0 inside (roughly metres of depth)."""

    with_eyes: bool = False

    def __post_init__(self) -> None:
        prof = A.BODY_PROFILE[::-1]  # increasing y
        self._prof = PchipInterpolator(prof[:, 0], prof[:, 1:], axis=0, extrapolate=True)
        guides = A.landmark_guides()
        nan = np.isnan(guides[:, 2])
        guides[nan, 2] = self.body_front(guides[nan, :2]) - 0.004
        ctrl = np.array([(x, y, np.nan if z is None else z) for x, y, z in A.FACE_CONTROL_RIGHT])
        ctrl = _mirror_points(ctrl)
        nan = np.isnan(ctrl[:, 2])
        ctrl[nan, 2] = self.body_front(ctrl[nan, :2]) - 0.004
        jaw = guides[:17]
        # outward 2D normals of the jaw polyline (x<0 half points to -x, chin to -y)
        tang = np.gradient(jaw[:, :2], axis=0)
        normal = np.stack([tang[:, 1], -tang[:, 0]], 1)
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        normal *= np.sign((normal * (jaw[:, :2] - np.array([0.0, -0.01]))).sum(1))[:, None]
        outer = jaw[3:14].copy()
        outer[:, :2] += 0.010 * normal[3:14]
        outer[:, 2] -= 0.022
        self.tps = ThinPlateSpline(np.concatenate([guides, ctrl, outer], 0))
        foot = jaw[2:15, :2] + 0.0035 * normal[2:15]
        top_r = np.array([[0.071, 0.030], [0.068, 0.075], [0.035, 0.102], [0.0, 0.107]])
        top = np.concatenate([top_r, top_r[-2::-1] * np.array([-1.0, 1.0])], 0)
        # polygon: jaw (right -> left through the chin), then up the left side and back over the top
        self.footprint = np.concatenate([foot, top], 0)
        self.landmark_xy = guides[:, :2]
        # rasterise h and the footprint distance (1.25 mm) and interpolate with bicubic splines
        gx = np.arange(-0.11, 0.1101, 0.00125)
        gy = np.arange(-0.14, 0.1401, 0.00125)
        xy = np.stack(np.meshgrid(gx, gy, indexing="ij"), -1).reshape(-1, 2)
        self._h = RectBivariateSpline(gx, gy, self.tps(xy).reshape(len(gx), len(gy)))
        fp = _polygon_sdf(xy, self.footprint).reshape(len(gx), len(gy))
        self._fp = RectBivariateSpline(gx, gy, fp)

    # --- body --------------------------------------------------------------------------------
    def profile(self, y: np.ndarray) -> tuple[np.ndarray, ...]:
        """Cross-section parameters (a, zm, cf, cb) at heights y (metres)."""
        y = np.asarray(y, dtype=np.float64)
        p = self._prof(np.minimum(y, A.Y_EQ))
        a, zm, cf, cb = (p[..., i] for i in range(4))
        t = np.clip((y - A.Y_EQ) / (A.Y_TOP - A.Y_EQ), 0.0, 1.0)
        f = np.sqrt(np.clip(1.0 - t * t, 0.0, None))
        cap = y > A.Y_EQ
        c = A.CRANIUM
        a = np.where(cap, c["a"] * f, a)
        cf = np.where(cap, c["cf"] * f, cf)
        cb = np.where(cap, c["cb"] * f, cb)
        zm = np.where(cap, c["zm"], zm)
        return a, zm, cf, cb

    @staticmethod
    def front_exponent(y: np.ndarray) -> np.ndarray:
        """Superellipse exponent of the front half of the cross-sections at heights y.

        2 (an ellipse) on the cranium cap and down the neck; up to ``A.FRONT_EXPONENT`` between
        the brows and the jaw, where the cheeks and the mandible keep the face broad in front of
        the ears."""
        y = np.asarray(y, dtype=np.float64)
        lo, hi = A.FRONT_EXPONENT_BAND
        t = np.clip((hi - y) / 0.02, 0, 1) * np.clip((y - lo) / 0.03, 0, 1)
        return 2.0 + (A.FRONT_EXPONENT - 2.0) * t * t * (3 - 2 * t)

    def body_front(self, xy: np.ndarray) -> np.ndarray:
        a, zm, cf, _ = self.profile(xy[:, 1])
        n = self.front_exponent(xy[:, 1])
        u = np.clip(1.0 - np.abs(xy[:, 0] / a) ** n, 0.0, None)
        return zm + cf * u ** (1.0 / n)

    def body(self, p: np.ndarray) -> np.ndarray:
        a, zm, cf, cb = self.profile(p[:, 1])
        a = np.maximum(a, 1e-5)
        front = p[:, 2] > zm
        cz = np.maximum(np.where(front, cf, cb), 1e-5)
        n = np.where(front, self.front_exponent(p[:, 1]), 2.0)
        r = (np.abs(p[:, 0] / a) ** n + np.abs((p[:, 2] - zm) / cz) ** n) ** (1.0 / n)
        val = (1.0 - r) * np.minimum(a, cz)
        above = p[:, 1] - A.Y_TOP
        return np.where(above > 0, np.minimum(val, -above), val)

    # --- face block ------------------------------------------------------------------------
    def face_block(self, p: np.ndarray) -> np.ndarray:
        x = np.clip(p[:, 0], -0.11, 0.11)
        y = np.clip(p[:, 1], -0.14, 0.14)
        h = self._h.ev(x, y)
        fp = self._fp.ev(x, y) - (np.abs(p[:, 0] - x) + np.abs(p[:, 1] - y))
        v = smin(h - p[:, 2], fp, 0.006)
        return smin(v, p[:, 2] - 0.0, 0.004)

    def ears(self, p: np.ndarray) -> np.ndarray:
        q = (
            np.abs(p[:, 0])[:, None] * np.array([1.0, 0, 0]) + p * np.array([0, 1.0, 1.0])
        ) - A.EAR_CENTRE
        r = np.sqrt(((q / A.EAR_AXES) ** 2).sum(1))
        return (1.0 - r) * A.EAR_AXES.min()

    def eyes(self, p: np.ndarray) -> np.ndarray:
        dl = np.linalg.norm(p - A.LEFT_EYE_CENTRE, axis=1)
        dr = np.linalg.norm(p - A.RIGHT_EYE_CENTRE, axis=1)
        return A.EYE_RADIUS - np.minimum(dl, dr)

    def inside(self, p: np.ndarray) -> np.ndarray:
        """(N, 3) metres -> (N,) > 0 inside the head."""
        v = smax(self.body(p), self.face_block(p), 0.004)
        v = smax(v, self.ears(p), 0.004)
        if self.with_eyes:
            v = smax(v, self.eyes(p), 0.0015)
        return v

    # --- ray casting -------------------------------------------------------------------------
    def cast(
        self,
        dirs: np.ndarray,
        origin: np.ndarray | None = None,
        r_max: float = 0.20,
        step: float = 0.002,
        iters: int = 24,
    ) -> np.ndarray:
        """Outermost surface point along each ray origin + t * dir, t in (0, r_max]: (N, 3)."""
        o = A.CENTRE if origin is None else origin
        o = np.broadcast_to(o, dirs.shape)
        n = len(dirs)
        ts = np.arange(r_max, 0.0, -step)
        hit = np.full(n, np.nan)
        todo = np.arange(n)
        for t in ts:
            if len(todo) == 0:
                break
            val = self.inside(o[todo] + t * dirs[todo])
            ins = val > 0
            hit[todo[ins]] = t
            todo = todo[~ins]
        if len(todo):
            raise RuntimeError(f"{len(todo)} rays missed the head surface")
        lo, hi = hit.copy(), hit + step  # inside at lo, outside at hi
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            ins = self.inside(o + mid[:, None] * dirs) > 0
            lo = np.where(ins, mid, lo)
            hi = np.where(ins, hi, mid)
        return o + (0.5 * (lo + hi))[:, None] * dirs

    def cast_front(self, xy: np.ndarray) -> np.ndarray:
        """Front-most surface point (seen from +z) at (N, 2) (x, y): (N, 3)."""
        o = np.concatenate([xy, np.full((len(xy), 1), -0.05)], 1)
        d = np.tile([0.0, 0.0, 1.0], (len(xy), 1))
        return self.cast(d, origin=o, r_max=0.30, step=0.001)


def directions(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Unit directions for polar angle theta (from +y) and azimuth phi (from +z towards +x)."""
    st = np.sin(theta)
    return np.stack([st * np.sin(phi), np.cos(theta), st * np.cos(phi)], axis=-1)


def angles(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(theta, phi) of points (N, 3) seen from the parametrisation centre."""
    d = p - A.CENTRE
    r = np.linalg.norm(d, axis=1)
    return np.arccos(np.clip(d[:, 1] / r, -1, 1)), np.arctan2(d[:, 0], d[:, 2])
