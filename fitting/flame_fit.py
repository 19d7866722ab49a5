"""Batched two-stage Levenberg-Marquardt fit of a FLAME-format model to 2D landmarks, on
Theseus (thesis section 3.4; METHODS.md A).

Problem per image (all images solved at once, no Python loop over images or landmarks)::

    min 0.5 sum_l || c_l (Pi(K, R(rot) v_l(coeffs, pose) + transl) - y_l) ||^2
        + 0.5 w_shape |shape|^2 + 0.5 w_expr |expr|^2 + 0.5 w_pose |pose|^2

1. closed-form rigid init (:mod:`fitting.rigid_init`) from the mean face;
2. rigid LM (rot, transl), ``rigid_iterations`` steps;
3. non-rigid LM (shape, expression, neck + jaw pose, and rot / transl unless frozen),
   ``nonrigid_iterations`` steps;
4. the full mesh is rebuilt once.

Units: landmarks px, model metres, rotations axis-angle radians. The camera is
``X_cam = diag(1,-1,-1) R(rot) X + transl`` (docs/ARCHITECTURE.md), K defaults to
``f = sqrt(H^2 + W^2)``, ``c = (W/2, H/2)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import theseus as th
import torch
from torch import Tensor, nn
from torch.profiler import record_function

from facemodels.cameras import default_focal, intrinsics

from .costs import PARAM_NAMES, L2PriorCost, ReprojectionCost
from .landmark_model import LandmarkLBS, LandmarkSelection, LBSArrays
from .reprojection import camera_rotation, project, reprojection
from .rigid_init import rigid_init
from .sanitize import SanitizeConfig, sanitize_landmarks
from .solver import LevenbergMarquardtStop, RobustCholeskyDenseSolver

__all__ = ["FitterConfig", "FitResult", "LandmarkFitter", "total_cost"]


@dataclass
class FitterConfig:
    """Hyper-parameters of the fit (configs/fitting/default.yaml mirrors these).

    Attributes:
        image_size: (H, W) px of the landmark frame (the crop).
        focal: px; None -> sqrt(H^2 + W^2).
        principal_point: (cx, cy) px; None -> (W/2, H/2).
        rigid_iterations, nonrigid_iterations: LM steps per stage.
        w_shape, w_expr, w_pose: L2 prior weights (cost units px^2 per coefficient^2 / rad^2).
        w_pose_per_joint: optional weight per free joint (FLAME: (neck, jaw)), overriding w_pose.
        free_rigid_in_nonrigid: keep rot / transl free in the non-rigid stage.
        damping: initial LM damping (Marquardt-scaled when ellipsoidal_damping).
        rel_tolerance: an image stops early once an accepted step lowers its cost by less
            than this fraction (0: always run all iterations).
        chunk_iterations: without gradients, converged images leave the batch every this
            many iterations (0: one Theseus call per stage; the batch runs until all converged).
        adaptive_damping, ellipsoidal_damping: Theseus LM options.
        backward_mode: 'implicit', 'truncated' or 'unroll' (Theseus) for gradients.
        dtype: 'float32' or 'float64'.
    """

    image_size: tuple[int, int] = (256, 256)
    focal: float | None = None
    principal_point: tuple[float, float] | None = None
    rigid_iterations: int = 20
    nonrigid_iterations: int = 20
    w_shape: float = 1.0
    w_expr: float = 1.0
    w_pose: float = 10.0
    w_pose_per_joint: tuple[float, ...] | None = None
    free_rigid_in_nonrigid: bool = True
    damping: float = 1e-3
    rel_tolerance: float = 1e-4
    chunk_iterations: int = 5
    adaptive_damping: bool = True
    ellipsoidal_damping: bool = True
    backward_mode: str = "implicit"
    dtype: str = "float32"
    sanitize: SanitizeConfig = field(default_factory=SanitizeConfig)

    def camera(self, B: int, device=None, dtype=torch.float32) -> Tensor:
        """(B, 3, 3) default intrinsics, px."""
        H, W = self.image_size
        f = self.focal if self.focal is not None else default_focal(H, W)
        cx, cy = self.principal_point if self.principal_point is not None else (W / 2, H / 2)
        return (
            intrinsics(float(f), float(cx), float(cy))
            .to(device=device, dtype=dtype)
            .expand(B, 3, 3)
        )


@dataclass
class FitResult:
    """Output of :meth:`LandmarkFitter.fit` (B images).

    Attributes:
        rot: (B, 3) model-space head rotation, axis-angle radians.
        transl: (B, 3) camera-frame translation, metres.
        shape: (B, S), expr: (B, E) coefficients.
        pose: (B, 3F) free-joint axis-angles (FLAME: neck, jaw), radians.
        R: (B, 3, 3) camera rotation ``diag(1,-1,-1) R(rot)``;  K: (B, 3, 3) px.
        vertices: (B, V, 3) model space, metres (neck / jaw posed, no head rotation).
        vertices_camera: (B, V, 3) camera frame, metres.
        landmarks2d: (B, L, 2) the fitted landmarks projected, px.
        cost: (B,) final objective (0.5 * weighted squared residual + priors); inf if invalid.
        valid: (B,) bool; invalid items hold the fallback (rigid init or frontal, mean face).
        init_rot, init_transl: (B, 3) the closed-form initialisation.
    """

    rot: Tensor
    transl: Tensor
    shape: Tensor
    expr: Tensor
    pose: Tensor
    R: Tensor
    K: Tensor
    vertices: Tensor
    vertices_camera: Tensor
    landmarks2d: Tensor
    cost: Tensor
    valid: Tensor
    init_rot: Tensor
    init_transl: Tensor

    @property
    def coeffs(self) -> Tensor:
        return torch.cat([self.shape, self.expr], -1)


def total_cost(
    terms_error: Tensor, coeffs: Tensor, pose: Tensor, sqrt_w_coeffs: Tensor, sqrt_w_pose: Tensor
) -> Tensor:
    """0.5 * (|e|^2 + |sqrt_w_c * coeffs|^2 + |sqrt_w_p * pose|^2), (B,)."""
    return 0.5 * (
        terms_error.pow(2).sum(-1)
        + (coeffs * sqrt_w_coeffs).pow(2).sum(-1)
        + (pose * sqrt_w_pose).pow(2).sum(-1)
    )


class LandmarkFitter(nn.Module):
    """Fits a FLAME-format LBS model to (B, L, 2) landmarks with confidences.

    Args:
        arrays: model arrays (:class:`fitting.landmark_model.LBSArrays`).
        selection: which model points the L landmarks are.
        config: :class:`FitterConfig`.
        free_joints: joints whose rotation is fitted in the non-rigid stage (FLAME: 1 neck,
            2 jaw); () for a purely linear model (BFM).
        coeff_prior_sigma: optional (K,) per-coefficient standard deviations; the prior on
            coefficient k becomes ``w / sigma_k^2`` (MobileFace's E1). Default: all ones.
    """

    def __init__(
        self,
        arrays: LBSArrays,
        selection: LandmarkSelection,
        config: FitterConfig | None = None,
        free_joints: tuple[int, ...] = (1, 2),
        coeff_prior_sigma: Tensor | np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.config = config or FitterConfig()
        dtype = getattr(torch, self.config.dtype)
        self.arrays = arrays
        self.lmk = LandmarkLBS(arrays, selection, free_joints, dtype)
        V = np.asarray(arrays.v_template).shape[0]
        self.full = LandmarkLBS(
            arrays, LandmarkSelection(vertex_idx=np.arange(V)), free_joints, dtype
        )
        S, E = self.lmk.n_shape, self.lmk.n_expr
        sigma = (
            torch.ones(S + E, dtype=torch.float64)
            if coeff_prior_sigma is None
            else torch.as_tensor(np.asarray(coeff_prior_sigma), dtype=torch.float64).reshape(-1)
        )
        if sigma.shape[0] != S + E:
            raise ValueError(
                f"LandmarkFitter: coeff_prior_sigma must have {S + E} entries, got {sigma.shape[0]}"
            )
        w = torch.cat(
            [torch.full((S,), self.config.w_shape), torch.full((E,), self.config.w_expr)]
        ).double()
        self.register_buffer("sqrt_w_coeffs", (w.sqrt() / sigma).to(dtype))  # (K,)
        wj = self.config.w_pose_per_joint
        if wj is None:
            wj = (self.config.w_pose,) * len(self.lmk.free_joints)
        if len(wj) != len(self.lmk.free_joints):
            raise ValueError(
                f"FitterConfig.w_pose_per_joint: {len(wj)} weights for "
                f"{len(self.lmk.free_joints)} free joints {self.lmk.free_joints}"
            )
        w_pose = torch.tensor([float(w) for w in wj for _ in range(3)], dtype=torch.float64)
        self.register_buffer("sqrt_w_pose", w_pose.sqrt().to(dtype))  # (3F,)

    #: CPU scratch memory kept between fits (bytes); larger buffers are freed after the fit
    KEEP_BUFFER_BYTES = 256 * 2**20

    @property
    def dtype(self) -> torch.dtype:
        return self.lmk.T.dtype

    # ------------------------------------------------------------------ stages
    def _solve_once(
        self,
        init: dict[str, Tensor],
        target: Tensor,
        conf: Tensor,
        K: Tensor,
        optim: tuple[str, ...],
        iterations: int,
        backward_mode: str,
        damping: float | Tensor,
    ) -> tuple[dict[str, Tensor], Tensor | float, Tensor]:
        """One Theseus LM solve. Returns the parameters (optimised ones replaced), the final
        per-image damping and the (B,) converged mask."""
        B, L = conf.shape
        params = {n: th.Vector(tensor=init[n], name=n) for n in PARAM_NAMES}
        tgt = th.Variable(target.reshape(B, 2 * L), name="target")
        cf = th.Variable(conf, name="conf")
        Kv = th.Variable(K.reshape(B, 9), name="K")
        obj = th.Objective(dtype=self.dtype)
        obj.add(ReprojectionCost(self.lmk, params, optim, tgt, cf, Kv, name="reprojection"))
        if "coeffs" in optim and params["coeffs"].dof() > 0:
            obj.add(L2PriorCost(params["coeffs"], self.sqrt_w_coeffs, name="coeff_prior"))
        if "pose" in optim and params["pose"].dof() > 0:
            obj.add(L2PriorCost(params["pose"], self.sqrt_w_pose, name="pose_prior"))
        opt = LevenbergMarquardtStop(
            obj,
            linear_solver_cls=RobustCholeskyDenseSolver,
            vectorize=False,
            max_iterations=iterations,
            step_size=1.0,
            abs_err_tolerance=0.0,
            rel_err_tolerance=self.config.rel_tolerance,
        )
        layer = th.TheseusLayer(opt, vectorize=False).to(target.device)
        inputs = {
            **{n: init[n] for n in PARAM_NAMES},
            "target": target.reshape(B, 2 * L),
            "conf": conf,
            "K": K.reshape(B, 9),
        }
        sol, _ = layer.forward(
            inputs,
            optimizer_kwargs={
                "damping": damping,
                "adaptive_damping": self.config.adaptive_damping,
                "ellipsoidal_damping": self.config.ellipsoidal_damping,
                "backward_mode": backward_mode,
            },
        )
        out = dict(init)
        out.update({n: sol[n] for n in optim})
        done = (
            opt._done
            if opt._done is not None
            else torch.zeros(B, dtype=torch.bool, device=target.device)
        )
        return out, opt._damping, done

    def _solve(
        self,
        init: dict[str, Tensor],
        target: Tensor,
        conf: Tensor,
        K: Tensor,
        optim: tuple[str, ...],
        iterations: int,
        backward_mode: str,
    ) -> dict[str, Tensor]:
        """LM solve of one stage.

        Without gradients the solve runs in chunks of ``config.chunk_iterations`` steps and
        drops converged images between chunks (their per-image damping carries over), so a
        large batch does not pay for its slowest image on every image. With gradients
        (inputs that require grad) it is one Theseus call in ``backward_mode``.
        """
        chunk = self.config.chunk_iterations
        differentiable = torch.is_grad_enabled() and (target.requires_grad or conf.requires_grad)
        if differentiable or chunk <= 0 or chunk >= iterations:
            # without gradients, no implicit-mode final Gauss-Newton step (it is undamped and
            # applied to every item, so it can raise a converged item's cost)
            mode = backward_mode if differentiable else "unroll"
            return self._solve_once(
                init, target, conf, K, optim, iterations, mode, self.config.damping
            )[0]
        B = conf.shape[0]
        p = {n: v.detach().clone() for n, v in init.items()}
        damping = torch.full((B,), self.config.damping, dtype=self.dtype, device=target.device)
        active = torch.ones(B, dtype=torch.bool, device=target.device)
        idx = torch.arange(B, device=target.device)  # the first chunk: every image
        left = iterations
        with torch.no_grad():
            while left > 0:
                if left < iterations:  # compaction: the one host sync per chunk
                    idx = active.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                n = min(chunk, left)
                sub = {k: v[idx] for k, v in p.items()}
                d = damping[idx] if self.config.adaptive_damping else self.config.damping
                sub, d_out, done = self._solve_once(
                    sub, target[idx], conf[idx], K[idx], optim, n, "unroll", d
                )
                for k in optim:
                    p[k][idx] = sub[k]
                if torch.is_tensor(d_out):
                    damping[idx] = d_out.to(damping.dtype)
                active[idx] = active[idx] & ~done  # index_put, no boolean mask: no sync
                left -= n
        return p

    def fit(
        self, landmarks: Tensor, conf: Tensor | None = None, K: Tensor | None = None
    ) -> FitResult:
        """Fit every image of the batch.

        Args:
            landmarks: (B, L, 2) px in the image / crop frame.
            conf: (B, L) confidences (weights); None -> ones.
            K: (B, 3, 3) or (3, 3) intrinsics px; None -> the config's default camera.
        Returns:
            :class:`FitResult`. Never raises for bad data: bad items get ``valid = False``.
            Gradients flow to ``landmarks`` and ``conf`` (Theseus ``backward_mode``).

        float32 matmuls run at full precision inside (``torch.set_float32_matmul_precision``
        is "highest" for the call, then restored): the normal-equation product carries the
        gradient column ``J^T e`` too, and TF32 / bf16 products (10 / 8 mantissa bits) would
        stall the LM above the optimum.
        """
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            return self._fit(landmarks, conf, K)
        finally:
            torch.set_float32_matmul_precision(previous)
            # the CPU normal-equation buffer is reused across the LM iterations of a fit and
            # kept for the next fit up to this size (batch 64 at 1609 landmarks: 190 MB)
            self.lmk.trim_workspace(self.KEEP_BUFFER_BYTES)

    def _fit(self, landmarks: Tensor, conf: Tensor | None, K: Tensor | None) -> FitResult:
        cfg, dt = self.config, self.dtype
        if (
            landmarks.dim() != 3
            or landmarks.shape[-1] != 2
            or landmarks.shape[1] != self.lmk.n_landmarks
        ):
            raise ValueError(
                f"LandmarkFitter.fit: landmarks must be (B, {self.lmk.n_landmarks}, 2), "
                f"got {tuple(landmarks.shape)}"
            )
        B, L, _ = landmarks.shape
        device = landmarks.device
        landmarks = landmarks.to(dt)
        conf = torch.ones(B, L, dtype=dt, device=device) if conf is None else conf.to(dt)
        if conf.shape != (B, L):
            raise ValueError(
                f"LandmarkFitter.fit: conf must be ({B}, {L}), got {tuple(conf.shape)}"
            )
        K = (
            cfg.camera(B, device, dt)
            if K is None
            else K.to(device=device, dtype=dt).expand(B, 3, 3)
        )
        K = K.contiguous()

        lm, cf, valid = sanitize_landmarks(landmarks, conf, cfg.image_size, cfg.sanitize)
        zc = torch.zeros(B, self.lmk.n_coeffs, dtype=dt, device=device)
        zp = torch.zeros(B, self.lmk.n_pose, dtype=dt, device=device)
        mean_pts = self.lmk(zc[:1], zp[:1])[0]  # (L, 3) mean face, model space
        with torch.no_grad():
            rot0, t0 = rigid_init(
                mean_pts, lm, torch.where(valid[:, None], cf, torch.ones_like(cf)), K
            )
            # invalid items: a harmless problem (the mean face's own projection, unit confidences)
            dummy = project(mean_pts @ camera_rotation(rot0).transpose(1, 2) + t0[:, None], K)
        lm = torch.where(valid[:, None, None], lm, dummy)
        cf = torch.where(valid[:, None], cf, torch.ones_like(cf))

        init = {"rot": rot0, "transl": t0, "coeffs": zc, "pose": zp}
        mode = cfg.backward_mode
        with torch.no_grad(), record_function("fit/rigid_stage"):  # only sets the start
            p = self._solve(init, lm, cf, K, ("rot", "transl"), cfg.rigid_iterations, "unroll")
        p = {n: v.detach() for n, v in p.items()}
        optim = (
            ("coeffs",)
            + (("pose",) if self.lmk.n_pose > 0 else ())
            + (("rot", "transl") if cfg.free_rigid_in_nonrigid else ())
        )
        if cfg.nonrigid_iterations > 0:
            with record_function("fit/nonrigid_stage"):
                p = self._solve(p, lm, cf, K, optim, cfg.nonrigid_iterations, mode)
        with record_function("fit/finish"):
            return self._finish(p, lm, cf, K, valid, rot0, t0)

    def _finish(self, p, lm, cf, K, valid, rot0, t0) -> FitResult:
        terms = reprojection(self.lmk, p["rot"], p["transl"], p["coeffs"], p["pose"], K, lm, cf)
        cost = total_cost(terms.error, p["coeffs"], p["pose"], self.sqrt_w_coeffs, self.sqrt_w_pose)
        finite = torch.isfinite(cost) & torch.stack(
            [torch.isfinite(v).all(-1) for v in p.values()]
        ).all(0)
        pts = self.lmk(p["coeffs"].detach(), p["pose"].detach())
        R = camera_rotation(p["rot"].detach())
        depth_ok = ((pts @ R.transpose(1, 2))[..., 2] + p["transl"].detach()[:, None, 2] > 0).all(
            -1
        )
        ok = valid & finite & depth_ok
        fallback = {
            "rot": rot0,
            "transl": t0,
            "coeffs": torch.zeros_like(p["coeffs"]),
            "pose": torch.zeros_like(p["pose"]),
        }
        p = {n: torch.where(ok[:, None], v, fallback[n]) for n, v in p.items()}
        cost = torch.where(ok, cost, torch.full_like(cost, float("inf")))
        verts = self.full(p["coeffs"], p["pose"])  # (B, V, 3) one full-mesh evaluation
        R = camera_rotation(p["rot"])
        verts_cam = verts @ R.transpose(1, 2) + p["transl"][:, None]
        uv = torch.where(
            ok[:, None, None],
            terms.uv,
            project(self.lmk(p["coeffs"], p["pose"]) @ R.transpose(1, 2) + p["transl"][:, None], K),
        )
        S = self.lmk.n_shape
        return FitResult(
            rot=p["rot"],
            transl=p["transl"],
            shape=p["coeffs"][:, :S],
            expr=p["coeffs"][:, S:],
            pose=p["pose"],
            R=R,
            K=K,
            vertices=verts,
            vertices_camera=verts_cam,
            landmarks2d=uv,
            cost=cost,
            valid=ok,
            init_rot=rot0,
            init_transl=t0,
        )
