"""Batched weighted Procrustes / Umeyama alignment in torch.

Finds ``(s, R, t)`` minimising ``sum_i w_i || s R x_i + t - y_i ||^2`` (similarity) or the
same with ``s = 1`` (rigid). ``R`` is always a proper rotation (det +1): when the best
orthogonal map would be a reflection the smallest singular direction is flipped
(Umeyama 1991). Works in any dimension D (2 for image landmarks, 3 for meshes); the
units of ``t`` and of the aligned points are those of ``dst``.

Degenerate inputs do not produce NaN: when the source points coincide (zero spread) the
result is the pure translation between the centroids (``s = 1``, ``R = I``) and
``degenerate`` is True; when they are collinear (3D) or the target has no spread the
rotation is not unique, an optimal one is returned and ``degenerate`` is True too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AlignResult", "umeyama", "similarity_align", "rigid_align", "apply_similarity"]


@dataclass
class AlignResult:
    """Output of :func:`umeyama`.

    Attributes:
        scale: (B,) similarity scale (ones for rigid alignment).
        R: (B, D, D) proper rotation.
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
) -> AlignResult:
    """Weighted similarity (or rigid) alignment of ``src`` onto ``dst``.

    Args:
        src: (B, N, D) or (N, D) source points.
        dst: same shape, target points.
        weights: (B, N), (N,) or None; non-negative per-point weights (normalised here).
        with_scale: False gives the rigid fit (s = 1).
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
    d = torch.sign(torch.linalg.det(U) * torch.linalg.det(Vh))  # (B,)
    d = torch.where(d == 0, torch.ones_like(d), d)
    fix = torch.ones(B, D, dtype=dtype, device=src.device)
    fix[:, -1] = d
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


def similarity_align(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> AlignResult:
    """Similarity (7-DoF in 3D) alignment; see :func:`umeyama`."""
    return umeyama(src, dst, weights, with_scale=True)


def rigid_align(src: Tensor, dst: Tensor, weights: Tensor | None = None) -> AlignResult:
    """Rigid (6-DoF in 3D) alignment, scale fixed to 1; see :func:`umeyama`."""
    return umeyama(src, dst, weights, with_scale=False)
