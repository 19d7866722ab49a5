"""Batched non-metric multidimensional scaling (Kruskal) in torch.

Deep-MDS (METHODS.md E) turns an (n, n) matrix of learned 3D-distance estimates into a
3D configuration by non-metric MDS. This module does it for a whole batch of faces at
once:

- `classical_mds`: Torgerson's classical scaling (double centring + eigh), the start.
- `isotonic_regression`: pool-adjacent-violators, vectorised over the batch (all
  adjacent violating blocks of all batch elements are merged in one pass; passes repeat
  until no violation is left, which is exact: PAV's result does not depend on the order
  in which violating neighbours are pooled).
- `kruskal_stress1`: stress-1 of a configuration against dissimilarities.
- `smacof_nmds`: SMACOF (Guttman transform) alternated with isotonic regression of the
  configuration distances on the order of the dissimilarities.

Ties and zeros as scikit-learn's non-metric MDS (``sklearn.manifold.MDS(metric=False)``,
whose ``IsotonicRegression`` pools equal x values): tied dissimilarities get one disparity,
the mean of their configuration distances before the monotone fit (Kruskal's secondary
approach); a zero off-diagonal dissimilarity is a missing value: it takes no part in the
monotone fit and its disparity is 0.

Units: whatever the dissimilarities are in; the returned configuration has distances
on the scale of the dissimilarities (disparities are rescaled so that their sum of
squares equals the dissimilarities' sum of squares). Reflections are not fixed here: a
configuration is only defined up to a similarity transform including a reflection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "NMDSResult",
    "classical_mds",
    "isotonic_regression",
    "isotonic_regression_torch",
    "kruskal_stress1",
    "pairwise_distances",
    "smacof_nmds",
]


@dataclass
class NMDSResult:
    """Output of `smacof_nmds`.

    points: (B, n, dim) configuration, centred.
    stress: (B,) Kruskal stress-1 of `points` against the input dissimilarities.
    n_iter: number of SMACOF iterations run (the batch stops together).
    """

    points: Tensor
    stress: Tensor
    n_iter: int


def _check_dissimilarities(d: Tensor) -> None:
    if d.dim() != 3 or d.shape[1] != d.shape[2]:
        raise ValueError(f"fitting.nmds: dissimilarities must be (B, n, n), got {tuple(d.shape)}")
    if d.shape[1] < 3:
        raise ValueError(f"fitting.nmds: need at least 3 points, got n={d.shape[1]}")


def pairwise_distances(x: Tensor, eps: float = 0.0) -> Tensor:
    """Euclidean distance matrix. x: (B, n, dim) -> (B, n, n); the diagonal is exactly 0."""
    off_diag = 1 - torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    if eps == 0.0:  # cdist: ~3x faster than the broadcast difference, zero gradient at zero distance
        return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") * off_diag
    diff = x.unsqueeze(2) - x.unsqueeze(1)  # (B, n, n, dim)
    d2 = (diff * diff).sum(-1)
    return torch.sqrt(d2 + eps) * off_diag


def classical_mds(d: Tensor, dim: int = 3) -> Tensor:
    """Torgerson's classical MDS.

    d: (B, n, n) symmetric dissimilarities. Returns (B, n, dim) points whose distances
    reproduce `d` exactly when `d` is Euclidean of rank <= dim (up to an orthogonal map).
    """
    _check_dissimilarities(d)
    n = d.shape[1]
    j = torch.eye(n, dtype=d.dtype, device=d.device) - 1.0 / n  # (n, n) centring matrix
    b = -0.5 * j @ (d * d) @ j  # (B, n, n) Gram matrix
    b = 0.5 * (b + b.transpose(1, 2))
    evals, evecs = torch.linalg.eigh(b)  # ascending
    evals = evals.flip(-1)[:, :dim].clamp_min(0.0)  # (B, dim)
    evecs = evecs.flip(-1)[:, :, :dim]  # (B, n, dim)
    return evecs * evals.sqrt().unsqueeze(1)


def isotonic_regression(y: Tensor, max_passes: int | None = None) -> Tensor:
    """Least-squares non-decreasing fit to each row of y (unit weights).

    y: (B, m) values in the order in which the fit must be non-decreasing. Returns (B, m).
    On the CPU (no gradient, no `max_passes`) each row goes through scipy's linear-time PAV
    (scipy.optimize.isotonic_regression, scipy >= 1.12): ~1000x faster than the vectorised
    passes for learned dissimilarities with many violations (m = 2,278 pairs of iBUG-68).
    Otherwise `isotonic_regression_torch`.
    """
    if y.dim() != 2:
        raise ValueError(f"fitting.nmds.isotonic_regression: y must be (B, m), got {tuple(y.shape)}")
    if y.device.type == "cpu" and not y.requires_grad and max_passes is None:
        try:
            from scipy.optimize import isotonic_regression as _scipy_iso
        except ImportError:  # scipy < 1.12
            _scipy_iso = None
        if _scipy_iso is not None:
            arr = y.detach().double().numpy()
            out = np.stack([_scipy_iso(row).x for row in arr]) if arr.shape[0] else arr.copy()
            return torch.from_numpy(out).to(y.dtype)
    return isotonic_regression_torch(y, max_passes)


def isotonic_regression_torch(y: Tensor, max_passes: int | None = None) -> Tensor:
    """`isotonic_regression` in torch (any device). Vectorised pool-adjacent-violators: every
    pass merges all adjacent blocks whose means violate the order, in all rows at once; at most
    m - 1 passes (exact: PAV's result does not depend on the pooling order). y: (B, m)."""
    if y.dim() != 2:
        raise ValueError(f"fitting.nmds.isotonic_regression: y must be (B, m), got {tuple(y.shape)}")
    bsz, m = y.shape
    if m < 2:
        return y.clone()
    starts = torch.ones_like(y, dtype=torch.bool)  # (B, m) True where a block begins
    passes = max_passes if max_passes is not None else m
    rows = torch.arange(bsz, device=y.device).unsqueeze(1).expand(bsz, m)
    for _ in range(passes):
        block = torch.cumsum(starts.long(), dim=1) - 1  # (B, m) block index of each element
        flat = (rows * m + block).reshape(-1)
        sums = torch.zeros(bsz * m, dtype=y.dtype, device=y.device).index_add_(0, flat, y.reshape(-1))
        counts = torch.zeros(bsz * m, dtype=y.dtype, device=y.device).index_add_(
            0, flat, torch.ones_like(y).reshape(-1)
        )
        means = (sums / counts.clamp_min(1.0))[flat].view(bsz, m)  # (B, m) block mean per element
        # a block start i > 0 violates when the previous block's mean exceeds its own
        viol = starts[:, 1:] & (means[:, :-1] > means[:, 1:])
        if not bool(viol.any()):
            return means
        starts[:, 1:] &= ~viol
    return means


def _upper_pairs(n: int, device: torch.device) -> tuple[Tensor, Tensor]:
    iu = torch.triu_indices(n, n, offset=1, device=device)
    return iu[0], iu[1]


def _rank_structure(d_flat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Order of the dissimilarities (B, m), their tie-group ids in that order (B, m) and the
    mask of the zero (missing) ones in that order (B, m)."""
    order = torch.argsort(d_flat, dim=1, stable=True)
    s = torch.gather(d_flat, 1, order)
    starts = torch.ones_like(s, dtype=torch.bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    return order, torch.cumsum(starts.long(), dim=1) - 1, s == 0


def _disparities(dist_flat: Tensor, rank: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Isotonic regression of configuration distances on the dissimilarity order.

    dist_flat: (B, m); rank: :func:`_rank_structure` of the dissimilarities. Tied
    dissimilarities first share the mean of their distances; zero ones get disparity 0 and
    stay out of the fit. Returns disparities (B, m) in the original pair order.
    """
    order, group, zero = rank
    bsz, m = dist_flat.shape
    sorted_d = torch.gather(dist_flat, 1, order)
    flat = (torch.arange(bsz, device=dist_flat.device)[:, None] * m + group).reshape(-1)
    sums = torch.zeros(bsz * m, dtype=sorted_d.dtype, device=sorted_d.device).index_add(0, flat, sorted_d.reshape(-1))
    counts = torch.zeros(bsz * m, dtype=sorted_d.dtype, device=sorted_d.device).index_add(
        0, flat, torch.ones_like(sorted_d).reshape(-1)
    )
    pooled = (sums / counts.clamp_min(1.0))[flat].view(bsz, m)
    if bool(zero.any()):  # rows with missing values, one at a time (zeros sort first)
        fit = torch.stack([
            torch.cat([torch.zeros_like(row[zr]), isotonic_regression(row[~zr][None])[0]])
            for row, zr in zip(pooled, zero, strict=True)
        ])
    else:
        fit = isotonic_regression(pooled)
    return torch.zeros_like(fit).scatter(1, order, fit)


def kruskal_stress1(points: Tensor, d: Tensor) -> Tensor:
    """Kruskal stress-1 of a configuration against dissimilarities.

    points: (B, n, dim); d: (B, n, n). stress = sqrt(sum (d_ij - dhat_ij)^2 / sum d_ij^2)
    over i < j, where d_ij are the configuration's distances and dhat the isotonic
    regression of d_ij on the order of the dissimilarities (ties and zeros as
    :func:`smacof_nmds`). Returns (B,).
    """
    _check_dissimilarities(d)
    n = d.shape[1]
    i, j = _upper_pairs(n, d.device)
    dist = pairwise_distances(points)[:, i, j]
    dhat = _disparities(dist, _rank_structure(d[:, i, j]))
    return torch.sqrt(((dist - dhat) ** 2).sum(1) / (dist**2).sum(1).clamp_min(1e-30))


def smacof_nmds(
    d: Tensor,
    dim: int = 3,
    n_iter: int = 300,
    eps: float = 1e-6,
    init: Tensor | None = None,
    metric: bool = False,
) -> NMDSResult:
    """Non-metric (Kruskal) MDS by SMACOF, batched over faces.

    d: (B, n, n) symmetric non-negative dissimilarities (diagonal ignored; a zero off the
      diagonal is missing, tied values share one disparity, as scikit-learn).
    dim: embedding dimension (3 for faces).
    n_iter: maximum SMACOF iterations; stops when every element's relative stress
      decrease is below `eps`.
    init: optional (B, n, dim) start; default classical MDS of `d`.
    metric: if True, use `d` itself as disparities (metric SMACOF).
    Returns an `NMDSResult` with centred points (B, n, dim) on the scale of `d`.
    """
    _check_dissimilarities(d)
    d = 0.5 * (d + d.transpose(1, 2))
    bsz, n, _ = d.shape
    i, j = _upper_pairs(n, d.device)
    d_flat = d[:, i, j]  # (B, m)
    rank = _rank_structure(d_flat)
    target_ss = (d_flat**2).sum(1, keepdim=True)  # (B, 1) scale the disparities to this
    x = classical_mds(d, dim) if init is None else init.clone()
    if x.shape != (bsz, n, dim):
        raise ValueError(f"fitting.nmds.smacof_nmds: init must be {(bsz, n, dim)}, got {tuple(x.shape)}")
    x = x - x.mean(1, keepdim=True)
    prev = torch.full((bsz,), float("inf"), dtype=d.dtype, device=d.device)
    it = 0
    for it in range(1, n_iter + 1):
        dist_full = pairwise_distances(x)  # (B, n, n)
        dist = dist_full[:, i, j]
        if metric:
            dhat = d_flat
        else:
            dhat = _disparities(dist, rank)
            dhat = dhat * torch.sqrt(target_ss / (dhat**2).sum(1, keepdim=True).clamp_min(1e-30))
        stress = ((dist - dhat) ** 2).sum(1) / (dist**2).sum(1).clamp_min(1e-30)  # stress-1 squared
        if bool(((prev - stress) <= eps * prev.clamp_min(1e-12)).all()) and it > 1:
            break
        prev = stress
        # Guttman transform: X <- (1/n) B(X) X, B_ij = -dhat_ij / d_ij, B_ii = -sum_j B_ij
        dhat_full = torch.zeros_like(dist_full)
        dhat_full[:, i, j] = dhat
        dhat_full[:, j, i] = dhat
        ratio = torch.where(dist_full > 1e-12, dhat_full / dist_full.clamp_min(1e-12), torch.zeros_like(dist_full))
        bmat = -ratio
        bmat = bmat + torch.diag_embed(ratio.sum(-1))
        x = bmat @ x / n
    return NMDSResult(points=x - x.mean(1, keepdim=True), stress=kruskal_stress1(x, d), n_iter=it)
