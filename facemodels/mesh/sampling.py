"""Point sampling on meshes: farthest-point orders and the max-margin view direction.

* :func:`farthest_point_order`: deterministic farthest-point sampling (ties go to the
  lowest index), started at the point closest to the centroid.
* :func:`symmetric_farthest_point_order`: the same, keeping left-right mirror pairs
  together so every requested prefix is closed under the mirror.
* :func:`view_direction`: the direction from which every triangle of a surface is seen
  front-facing with the largest margin (a linear then a quadratic programme).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import linprog, minimize

__all__ = ["farthest_point_order", "symmetric_farthest_point_order", "view_direction"]


def farthest_point_order(
    points: np.ndarray, n: int, start: int | None = None, initial: Sequence[int] = ()
) -> np.ndarray:
    """Deterministic farthest-point sampling.

    Args:
        points: (N, D) float.
        n: number of points to select (<= N).
        start: first index; default the point closest to the centroid (ignored when
            ``initial`` is given).
        initial: indices selected first, in this order (their count may exceed n: then
            the first n are returned).
    Returns:
        (n,) int64 indices into ``points`` in selection order (every prefix after the
        initial ones is an FPS extension).
    """
    points = np.asarray(points, dtype=np.float64)
    N = len(points)
    if not 1 <= n <= N:
        raise ValueError(f"farthest_point_order: n must be in [1, {N}], got {n}")
    init = [int(i) for i in initial]
    if not init:
        init = [
            int(np.argmin(((points - points.mean(0)) ** 2).sum(1))) if start is None else int(start)
        ]
    if len(set(init)) != len(init):
        raise ValueError("farthest_point_order: initial indices repeat")
    order = list(init[:n])
    d = np.full(N, np.inf)
    for i in order:
        np.minimum(d, ((points - points[i]) ** 2).sum(1), out=d)
    d[order] = -1.0
    while len(order) < n:
        nxt = int(np.argmax(d))  # first maximum: lowest index on ties
        order.append(nxt)
        np.minimum(d, ((points - points[nxt]) ** 2).sum(1), out=d)
        d[nxt] = -1.0
    return np.asarray(order, dtype=np.int64)


def symmetric_farthest_point_order(
    points: np.ndarray, mirror: np.ndarray, targets: Sequence[int], initial: Sequence[int] = ()
) -> np.ndarray:
    """Farthest-point sampling that keeps left-right pairs together.

    Each pick of a vertex also picks its mirror partner, so every prefix whose length is
    in ``targets`` is closed under the mirror; when only one slot is left before a target
    the farthest unpicked self-symmetric (midline) vertex is taken instead.

    Args:
        points: (N, 3) positions.
        mirror: (N,) involution, ``mirror[i]`` = partner of i (``i`` on the midline).
        targets: sizes whose prefixes must be mirror-closed; the result has max(targets).
        initial: indices selected first, in this order (must be mirror-closed and no
            longer than the smallest target); default the midline vertex closest to the
            centroid (and its partner if there is no midline).
    Returns:
        (max(targets),) int64 indices in selection order.
    Raises:
        ValueError: if a target cannot be met (no midline vertex left for an odd slot).
    """
    p = np.asarray(points, dtype=np.float64)
    mirror = np.asarray(mirror, dtype=np.int64)
    N = len(p)
    if not (mirror[mirror] == np.arange(N)).all():
        raise ValueError("symmetric_farthest_point_order: mirror must be an involution")
    targets = sorted(int(t) for t in targets)
    if targets[0] < 1 or targets[-1] > N:
        raise ValueError(
            f"symmetric_farthest_point_order: targets must lie in [1, {N}], got {targets}"
        )
    mid = mirror == np.arange(N)
    d2c = ((p - p.mean(0)) ** 2).sum(1)
    start = int(np.argmin(np.where(mid, d2c, np.inf))) if mid.any() else int(np.argmin(d2c))
    order: list[int] = []
    d = np.full(N, np.inf)

    def add(i: int) -> None:
        order.append(i)
        np.minimum(d, ((p - p[i]) ** 2).sum(1), out=d)
        d[i] = -1.0  # picked

    init = [int(i) for i in initial]
    if init:
        if set(mirror[init].tolist()) != set(init) or len(set(init)) != len(init):
            raise ValueError(
                "symmetric_farthest_point_order: initial must be mirror-closed without repeats"
            )
        for i in init:
            add(i)
    else:
        add(start)
        if mirror[start] != start:
            add(int(mirror[start]))
    for t in targets:
        if len(order) > t:
            raise ValueError(
                f"symmetric_farthest_point_order: cannot stop at {t} (already {len(order)})"
            )
        while len(order) < t:
            cand = int(np.argmax(d))
            if mirror[cand] == cand:
                add(cand)
            elif t - len(order) >= 2:
                add(cand)
                add(int(mirror[cand]))
            else:
                dm = np.where(mid, d, -1.0)
                cand = int(np.argmax(dm))
                if dm[cand] < 0:
                    raise ValueError(
                        f"symmetric_farthest_point_order: no midline vertex left to reach {t}"
                    )
                add(cand)
    return np.asarray(order, dtype=np.int64)


def view_direction(
    points: np.ndarray, faces: np.ndarray, plane_x: float | None = None
) -> tuple[np.ndarray, float]:
    """The unit direction from which every triangle is seen front-facing, max-margin.

    Maximises ``min_t n_t . d`` over unit ``d`` for the unit normals ``n_t`` of the
    triangles (counter-clockwise seen from outside): a linear programme (``|d_i| <= 1``)
    decides feasibility, then the equivalent quadratic programme ``min |w|^2`` subject to
    ``n_t . w >= 1`` (a hard-margin SVM through the origin; ``d = w / |w|``, margin
    ``1 / |w|``) gives the rotation-invariant optimum. With ``plane_x`` given (a left-right
    symmetric surface, whose optimum has no x component) the x component is zeroed.

    Args:
        points: (N, 3) vertex positions.
        faces: (F, 3) triangles, oriented with normals pointing out of the surface.
        plane_x: symmetry plane x = plane_x of the surface, or None.
    Returns:
        (d (3,) unit float64, margin): the smallest ``n_t . d``; margin > 0 iff the
        orthographic projection along d is fold-free (no triangle seen from behind).
    """
    p = np.asarray(points, dtype=np.float64)
    t = p[np.asarray(faces, dtype=np.int64)]
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    nrm = np.linalg.norm(n, axis=1)
    n = n[nrm > 1e-12 * max(nrm.max(initial=0.0), 1e-300)]
    n = n / np.linalg.norm(n, axis=1, keepdims=True)
    # LP over (d, s): minimise -s subject to s - n_t . d <= 0, |d_i| <= 1
    res = linprog(
        c=np.array([0.0, 0.0, 0.0, -1.0]),
        A_ub=np.concatenate([-n, np.ones((len(n), 1))], 1),
        b_ub=np.zeros(len(n)),
        bounds=[(-1.0, 1.0)] * 3 + [(None, 1.0)],
        method="highs",
    )
    if res.status != 0:
        raise RuntimeError(f"view_direction: linear programme failed: {res.message}")
    d, s = np.asarray(res.x[:3], dtype=np.float64), float(res.x[3])
    if s > 0:
        qp = minimize(
            lambda w: float(w @ w),
            d / s,  # feasible: n_t . d / s >= 1
            jac=lambda w: 2.0 * w,
            constraints=[{"type": "ineq", "fun": lambda w: n @ w - 1.0, "jac": lambda w: n}],
            method="SLSQP",
            options={"ftol": 1e-12, "maxiter": 200},
        )
        if qp.success and (n @ qp.x).min() > 1.0 - 1e-6:
            d = np.asarray(qp.x, dtype=np.float64)
    if plane_x is not None:
        d[0] = 0.0
    if np.linalg.norm(d) < 1e-12:
        d = np.array([0.0, 0.0, 1.0])
    d = d / np.linalg.norm(d)
    return d, float((n @ d).min(initial=np.inf))
