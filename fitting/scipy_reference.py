"""The same two-stage landmark fit, one image at a time, with
``scipy.optimize.least_squares(method='lm')`` (MINPACK) and the exact Jacobian.

The baseline against which the batched Theseus fitter is measured: same model, same
priors, same closed-form rigid init, same residual ``[c (Pi - y), sqrt(w) coeffs,
sqrt(w) pose]``; scipy's ``cost = 0.5 |f|^2`` equals :func:`fitting.flame_fit.total_cost`.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import least_squares
from torch import Tensor

from .flame_fit import LandmarkFitter
from .reprojection import reprojection
from .rigid_init import rigid_init
from .sanitize import sanitize_landmarks

__all__ = ["ScipyFitResult", "scipy_fit"]


@dataclass
class ScipyFitResult:
    """Per-image scipy results (B images), float64.

    Attributes:
        rot, transl (B, 3); coeffs (B, K); pose (B, 3F); cost (B,) final 0.5 |f|^2;
        nfev (B,) residual evaluations (both stages); seconds: wall time of the whole batch.
    """

    rot: np.ndarray
    transl: np.ndarray
    coeffs: np.ndarray
    pose: np.ndarray
    cost: np.ndarray
    nfev: np.ndarray
    seconds: float


def scipy_fit(
    fitter: LandmarkFitter,
    landmarks: Tensor,
    conf: Tensor | None = None,
    K: Tensor | None = None,
    ftol: float = 1e-8,
    xtol: float = 1e-8,
    max_nfev: int | None = None,
) -> ScipyFitResult:
    """Fit every image separately with MINPACK LM (rigid stage, then non-rigid stage).

    Args:
        fitter: supplies the model, priors, camera default and stage options.
        landmarks: (B, L, 2) px.  conf: (B, L) or None.  K: (B, 3, 3) / (3, 3) or None.
        ftol, xtol, max_nfev: passed to ``least_squares`` (per stage).
    """
    t0 = time.perf_counter()
    cfg = fitter.config
    model = copy.deepcopy(fitter.lmk).double().cpu()
    B, L, _ = landmarks.shape
    lm_all = landmarks.detach().double().cpu()
    conf_all = (
        torch.ones(B, L, dtype=torch.float64) if conf is None else conf.detach().double().cpu()
    )
    K_all = (
        cfg.camera(B, dtype=torch.float64)
        if K is None
        else K.detach().double().cpu().expand(B, 3, 3)
    )
    lm_all, conf_all, _ = sanitize_landmarks(lm_all, conf_all, cfg.image_size, cfg.sanitize)
    sw_c = fitter.sqrt_w_coeffs.detach().double().cpu().numpy()
    sw_p = fitter.sqrt_w_pose.detach().double().cpu().numpy()
    nK, nP = model.n_coeffs, model.n_pose
    with torch.no_grad():
        mean_pts = model(
            torch.zeros(1, nK, dtype=torch.float64), torch.zeros(1, nP, dtype=torch.float64)
        )[0]
    out = {k: [] for k in ("rot", "transl", "coeffs", "pose", "cost", "nfev")}
    for b in range(B):
        lm, cf, Kb = lm_all[b : b + 1], conf_all[b : b + 1], K_all[b : b + 1]
        rot0, t0_ = rigid_init(mean_pts, lm, cf, Kb)

        def unpack(x, free_all):
            if free_all:
                r, t, c, p = np.split(x, [3, 6, 6 + nK])
            else:
                r, t, c, p = x[:3], x[3:6], np.zeros(nK), np.zeros(nP)
            return [torch.from_numpy(np.ascontiguousarray(a))[None] for a in (r, t, c, p)]

        def fun(x, free_all, lm=lm, cf=cf, Kb=Kb):
            r, t, c, p = unpack(x, free_all)
            with torch.no_grad():
                e = reprojection(model, r, t, c, p, Kb, lm, cf).error[0].numpy()
            return np.concatenate([e, sw_c * c[0].numpy(), sw_p * p[0].numpy()]) if free_all else e

        def jac(x, free_all, lm=lm, cf=cf, Kb=Kb):
            r, t, c, p = unpack(x, free_all)
            wrt = ("rot", "transl", "coeffs", "pose") if free_all else ("rot", "transl")
            with torch.no_grad():
                J = reprojection(model, r, t, c, p, Kb, lm, cf, wrt=wrt).J
            top = np.concatenate([J[n][0].numpy() for n in wrt], 1)  # (2L, n)
            if not free_all:
                return top
            n = top.shape[1]
            prior = np.zeros((nK + nP, n))
            prior[np.arange(nK), 6 + np.arange(nK)] = sw_c
            prior[nK + np.arange(nP), 6 + nK + np.arange(nP)] = sw_p
            return np.concatenate([top, prior], 0)

        x0 = np.concatenate([rot0[0].numpy(), t0_[0].numpy()])
        kw = dict(method="lm", ftol=ftol, xtol=xtol, gtol=1e-10, max_nfev=max_nfev)
        s1 = least_squares(fun, x0, jac=jac, args=(False,), **kw)
        x1 = np.concatenate([s1.x, np.zeros(nK + nP)])
        if cfg.nonrigid_iterations > 0:
            s2 = least_squares(fun, x1, jac=jac, args=(True,), **kw)
            x, cost, nfev = s2.x, s2.cost, s1.nfev + s2.nfev
        else:
            x, cost, nfev = x1, s1.cost, s1.nfev
        r, t, c, p = (a[0].numpy() for a in unpack(x, True))
        for k, v in zip(
            ("rot", "transl", "coeffs", "pose", "cost", "nfev"),
            (r, t, c, p, cost, nfev),
            strict=True,
        ):
            out[k].append(v)
    return ScipyFitResult(
        **{k: np.asarray(v) for k, v in out.items()}, seconds=time.perf_counter() - t0
    )
