"""Alignment in torch: batched weighted Procrustes / Umeyama, and the affine-camera fit.

:func:`umeyama` finds ``(s, R, t)`` minimising ``sum_i w_i || s R x_i + t - y_i ||^2``
(similarity) or the same with ``s = 1`` (rigid). By default ``R`` is a proper rotation
(det +1): when the best orthogonal map would be a reflection the smallest singular
direction is flipped (Umeyama 1991). ``reflection=True`` returns the best orthogonal map
instead (det +-1), as ``scipy.linalg.orthogonal_procrustes`` / ``scipy.spatial.procrustes``
and MATLAB's ``procrustes(..., 'reflection', 'best')``. Works in any dimension D (2 for
image landmarks, 3 for meshes); the units of ``t`` and of the aligned points are those of
``dst``.

:func:`affine_camera` is the closed-form weak-perspective (scaled orthographic) camera of
3D points seen as 2D points: a weighted least-squares affine map ``P`` (2, 3), its rows
projected onto the nearest orthonormal pair (the orthogonal Procrustes step), completed to
a rotation.

Degenerate inputs do not produce NaN: when the source points coincide (zero spread) the
result is the pure translation between the centroids (``s = 1``, ``R = I``) and
``degenerate`` is True; when they are collinear (3D) or the target has no spread the
rotation is not unique, an optimal one is returned and ``degenerate`` is True too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "AlignResult",
    "AffineCamera",
    "umeyama",
    "similarity_align",
    "rigid_align",
    "apply_similarity",
    "affine_camera",
]


@dataclass
class AlignResult:
    """Output of :func:`umeyama`.

    Attributes:
        scale: (B,) similarity scale (ones for rigid alignment).
        R: (B, D, D) proper rotation (orthogonal, det +-1, with ``reflection=True``).
        t: (B, D) translation, units of ``dst``.
        aligned: (B, N, D) ``s * src @ R^T + t``.
        degenerate: (B,) bool, True where the alignment is not unique (see module doc).
    """

    scale: Tensor
    R: Tensor
    t: Tensor
    aligned: Tensor
    degenerate: Tensor


def apply_similarity(points: Tensor, scale: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """``s * R @ p + t`` for row-vector points.

    Args:
        points: (B, N, D).
        scale: (B,).
        R: (B, D, D).
        t: (B, D).
    Returns:
        (B, N, D).
    """
    return scale[:, None, None] * points @ R.transpose(-1, -2) + t[:, None, :]


def umeyama(
    src: Tensor,
    dst: Tensor,
    weights: Tensor | None = None,
    with_scale: bool = True,
    eps: float = 1e-9,
    reflection: bool = False,
) -> AlignResult:
    """Weighted similarity (or rigid) alignment of ``src`` onto ``dst``.

    Args:
        src: (B, N, D) or (N, D) source points.
        dst: same shape, target points.
        weights: (B, N), (N,) or None; non-negative per-point weights (normalised here).
        with_scale: False gives the rigid fit (s = 1).
        reflection: True allows ``R`` with det -1 when it fits better (the unconstrained
            orthogonal Procrustes solution, scipy's convention); False keeps det +1.
        eps: relative length tolerance for degeneracy (raised to 100 machine epsilons of
            the dtype): a spread below ``tol * (1 + |centroid|)`` counts as zero.
    Returns:
        :class:`AlignResult`; with unbatched (N, D) inputs every field loses its batch dim.
    """
    if src.shape != dst.shape:
        raise ValueError(f"umeyama: src {tuple(src.shape)} and dst {tuple(dst.shape)} must match")
    unbatched = src.dim() == 2
    if unbatched:
        src, dst = src[None], dst[None]
        if weights is not None and weights.dim() == 1:
            weights = weights[None]
    if src.dim() != 3:
        raise ValueError(f"umeyama: expected points (B, N, D) or (N, D), got {tuple(src.shape)}")
    B, N, D = src.shape
    dtype = src.dtype
    if weights is None:
        w = src.new_ones(B, N)
    else:
        w = weights.to(dtype)
        if w.dim() == 1:
            w = w[None].expand(B, N)
        if w.shape != (B, N):
            raise ValueError(
                f"umeyama: weights must be (B, N) = {(B, N)} or (N,), got {tuple(weights.shape)}"
            )
        if (w < 0).any():
            raise ValueError("umeyama: weights must be non-negative")
    wsum = w.sum(-1, keepdim=True)  # (B, 1)
    zero_weight = wsum[:, 0] <= 0
    w = w / torch.where(wsum > 0, wsum, torch.ones_like(wsum))  # (B, N), sums to 1 (or 0)

    mu_x = (w[..., None] * src).sum(1)  # (B, D)
    mu_y = (w[..., None] * dst).sum(1)  # (B, D)
    xc = src - mu_x[:, None]  # (B, N, D)
    yc = dst - mu_y[:, None]
    var_x = (w * (xc * xc).sum(-1)).sum(-1)  # (B,)
    var_y = (w * (yc * yc).sum(-1)).sum(-1)
    sigma = (w[..., None] * yc).transpose(1, 2) @ xc  # (B, D, D) = sum w y x^T
    U, S, Vh = torch.linalg.svd(sigma)
    fix = torch.ones(B, D, dtype=dtype, device=src.device)
    if not reflection:
        d = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))  # (B,)
        fix[:, -1] = torch.where(d == 0, torch.ones_like(d), d)
    R = U @ torch.diag_embed(fix) @ Vh  # (B, D, D)

    # degeneracy tests, on lengths relative to the cloud size / centroid magnitude
    tol = max(eps, 100.0 * torch.finfo(dtype).eps)
    ref_x = 1.0 + (mu_x * mu_x).sum(-1).sqrt()
    ref_y = 1.0 + (mu_y * mu_y).sum(-1).sqrt()
    no_spread = var_x.sqrt() <= tol * ref_x
    target_flat = var_y.sqrt() <= tol * ref_y
    if D >= 3:
        # collinear source: second principal variance ~ 0 (relative to the first)
        cov_x = (w[..., None] * xc).transpose(1, 2) @ xc  # (B, D, D)
        sx = torch.linalg.svdvals(cov_x)  # (B, D) variances along the principal axes
        rank_deficient = sx[:, 1] <= tol * sx[:, 0]
    else:
        rank_deficient = torch.zeros_like(no_spread)  # collinear 2D points still fix R
    degenerate = no_spread | rank_deficient | target_flat | zero_weight

    eye = torch.eye(D, dtype=dtype, device=src.device).expand(B, D, D)
    R = torch.where(no_spread[:, None, None], eye, R)
    if with_scale:
        safe_var = torch.where(no_spread, torch.ones_like(var_x), var_x)
        scale = (S * fix).sum(-1) / safe_var
        scale = torch.where(no_spread, torch.ones_like(scale), scale)
    else:
        scale = torch.ones(B, dtype=dtype, device=src.device)
    t = mu_y - scale[:, None] * (mu_x[:, None] @ R.transpose(1, 2))[:, 0]
    aligned = apply_similarity(src, scale, R, t)
    out = AlignResult(scale=scale, R=R, t=t, aligned=aligned, degenerate=degenerate)
    if unbatched:
        out = AlignResult(
            *(getattr(out, f)[0] for f in ("scale", "R", "t", "aligned", "degenerate"))
        )
    return out


def similarity_align(
    src: Tensor, dst: Tensor, weights: Tensor | None = None, reflection: bool = False
) -> AlignResult:
    """Similarity (7-DoF in 3D) alignment; see :func:`umeyama`."""
    return umeyama(src, dst, weights, with_scale=True, reflection=reflection)


def rigid_align(
    src: Tensor, dst: Tensor, weights: Tensor | None = None, reflection: bool = False
) -> AlignResult:
    """Rigid (6-DoF in 3D) alignment, scale fixed to 1; see :func:`umeyama`."""
    return umeyama(src, dst, weights, with_scale=False, reflection=reflection)


@dataclass
class AffineCamera:
    """Output of :func:`affine_camera`: ``image - image_mean ~ scale * R[:2] (points - points_mean)``.

    Attributes:
        scale: (B,) image units per point unit, the mean of the two singular values of ``P``.
        R: (B, 3, 3) proper rotation; its first two rows are the orthonormalised rows of ``P``.
        points_mean: (B, 3) weighted centroid of the points.
        image_mean: (B, 2) weighted centroid of the image points.
    """

    scale: Tensor
    R: Tensor
    points_mean: Tensor
    image_mean: Tensor


def affine_camera(
    points: Tensor, image: Tensor, weights: Tensor | None = None, ridge: float = 1e-9
) -> AffineCamera:
    """Closed-form weak-perspective camera of 3D ``points`` onto 2D ``image`` points.

    Solves ``min_P sum_l w_l || (y_l - ybar) - P (X_l - Xbar) ||^2`` (weighted normal
    equations with a ridge of ``ridge * trace`` of the weighted scatter, so coplanar points
    stay finite), then ``P = U S V^T -> rows = U V^T`` (nearest orthonormal rows),
    ``R = [r1; r2; r1 x r2]`` (det +1) and ``scale = mean(S)``. No sign convention of the
    image axes is applied: flip them before the call when the image y axis points down.

    Args:
        points: (B, L, 3) any unit.
        image: (B, L, 2) any unit (px).
        weights: (B, L) >= 0 or None (uniform); normalised here.
        ridge: relative Tikhonov term of the 3 x 3 normal equations.
    Returns:
        :class:`AffineCamera`, in the dtype of ``points``.
    """
    if points.dim() != 3 or points.shape[-1] != 3 or image.shape != points.shape[:2] + (2,):
        raise ValueError(
            f"affine_camera: need points (B, L, 3) and image (B, L, 2), "
            f"got {tuple(points.shape)}, {tuple(image.shape)}"
        )
    B, L, _ = points.shape
    w = points.new_ones(B, L) if weights is None else weights.to(points.dtype)
    wn = w / w.sum(-1, keepdim=True).clamp_min(1e-12)  # (B, L)
    Xbar = (wn[..., None] * points).sum(1)  # (B, 3)
    ybar = (wn[..., None] * image).sum(1)  # (B, 2)
    Xc, yc = points - Xbar[:, None], image - ybar[:, None]
    A = torch.einsum("bl,bli,blj->bij", wn, Xc, Xc)  # (B, 3, 3)
    rhs = torch.einsum("bl,bli,blj->bij", wn, Xc, yc)  # (B, 3, 2)
    lam = ridge * A.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(1e-12)  # (B,)
    A = A + lam[:, None, None] * torch.eye(3, dtype=A.dtype, device=A.device)
    P = torch.linalg.solve(A, rhs).transpose(1, 2)  # (B, 2, 3)
    U, S, Vh = torch.linalg.svd(P, full_matrices=False)  # (B, 2, 2), (B, 2), (B, 2, 3)
    rows = U @ Vh  # (B, 2, 3) orthonormal rows
    r3 = torch.linalg.cross(rows[:, 0], rows[:, 1], dim=-1)
    R = torch.cat([rows, r3[:, None]], 1)  # (B, 3, 3), det +1
    return AffineCamera(scale=S.mean(-1), R=R, points_mean=Xbar, image_mean=ybar)
