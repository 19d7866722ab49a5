"""3D shape metrics for lifted landmarks and reconstructed meshes.

Functional forms (pure torch / numpy, per sample) and torchmetrics wrappers (one object
per stage, DDP-safe). Shapes are (B, L, 3) in any common unit; every metric says what
it is normalised by.

- `gte`: Zhao et al. ground-truth error, mean_k ||s_k - s~_k|| / d_eyes, d_eyes the
  distance of the outer eye corners (iBUG-68 indices 36, 45) of the ground truth.
- `cvgtce`: the same after the best similarity (c, R, t) of the prediction onto the
  ground truth (least squares, Umeyama; the paper's objective is written with
  unsquared norms, least squares is the standard closed form).
- `ape`: mean point error (in the input unit).
- `mse_procrustes`: Deep-MDS' "MSE after Procrustes"; with `standardize=True` it is
  scipy.spatial.procrustes' disparity (both shapes centred and scaled to unit Frobenius
  norm, prediction similarity-aligned, sum of squared differences); otherwise the mean
  squared point distance after similarity alignment, in unit^2.
- `depth_corr`: Deep-MDS' DepthCorr: the trace of the cross block of the correlation
  matrix between predicted and ground-truth landmarks (numpy's corrcoef with landmarks
  as variables and their x, y, z as observations), i.e. sum_k corr(p_k, g_k); maximum L.
  The paper's values (~71.95 for 72 landmarks) fit this reading.
- `wilcoxon_over_subsets`: the paper's test: per-subset mean errors of two methods on
  10 random subsets of 500 faces, scipy.stats.wilcoxon on the paired means.
- `ced_curve`, `ced_auc`: cumulative error distribution and its normalised area on
  [0, max_error] (MobileFace uses [0, 1] for its normalised mesh distance).
- `icp_procrustes_distance`: MobileFace's evaluation: iterate (project the
  reconstruction onto the ground-truth scan by nearest neighbour, similarity-align to
  the projections), then d = 100 ||S - S_gt||^2 / ||S_gt - mean(S_gt)||^2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scipy import stats
from torch import Tensor
from torchmetrics import Metric

IBUG_OUTER_EYE_CORNERS = (36, 45)


def _check_pair(pred: Tensor, gt: Tensor, name: str) -> None:
    if pred.shape != gt.shape or pred.dim() != 3:
        raise ValueError(
            f"lightning_modules.metrics.shape3d.{name}: pred and gt must both be (B, L, D), "
            f"got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )


def similarity_procrustes(
    src: Tensor, dst: Tensor, allow_reflection: bool = False, with_scale: bool = True
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Least-squares similarity s R src + t ~ dst (Umeyama 1991), batched.

    src, dst: (B, L, D). Returns (aligned (B, L, D), s (B,), R (B, D, D), t (B, D)) with
    aligned = s * src @ R^T + t. det(R) = +1 unless `allow_reflection`.
    """
    _check_pair(src, dst, "similarity_procrustes")
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.transpose(1, 2) @ xs / src.shape[1]  # (B, D, D)
    u, sig, vh = torch.linalg.svd(cov)
    sign = torch.ones_like(sig)
    if not allow_reflection:
        sign[:, -1] = torch.sign(torch.linalg.det(u @ vh))
        sign[sign == 0] = 1.0
    rot = u @ torch.diag_embed(sign) @ vh  # (B, D, D)
    var_s = (xs**2).sum((1, 2)) / src.shape[1]
    if with_scale:
        s = (sig * sign).sum(1) / var_s.clamp_min(1e-30)
    else:
        s = torch.ones_like(var_s)
    t = mu_d.squeeze(1) - s.unsqueeze(1) * (rot @ mu_s.transpose(1, 2)).squeeze(2)  # (B, D)
    aligned = s.view(-1, 1, 1) * (src @ rot.transpose(1, 2)) + t.unsqueeze(1)
    return aligned, s, rot, t


def interocular_outer(gt: Tensor, eye_idx: tuple[int, int] = IBUG_OUTER_EYE_CORNERS) -> Tensor:
    """Outer eye-corner distance of iBUG-68 shapes. gt: (B, 68, D) -> (B,)."""
    if gt.shape[1] <= max(eye_idx):
        raise ValueError(f"shape3d.interocular_outer: need iBUG-68 (B, 68, D), got {tuple(gt.shape)}")
    return (gt[:, eye_idx[0]] - gt[:, eye_idx[1]]).norm(dim=-1)


def ape(pred: Tensor, gt: Tensor) -> Tensor:
    """Average point error mean_k ||p_k - g_k||. (B, L, D) x2 -> (B,) in the input unit."""
    _check_pair(pred, gt, "ape")
    return (pred - gt).norm(dim=-1).mean(1)


def gte(pred: Tensor, gt: Tensor, eye_idx: tuple[int, int] = IBUG_OUTER_EYE_CORNERS) -> Tensor:
    """Ground-truth error: APE / outer eye-corner distance of gt. (B, 68, 3) x2 -> (B,), a fraction."""
    _check_pair(pred, gt, "gte")
    return ape(pred, gt) / interocular_outer(gt, eye_idx).clamp_min(1e-12)


def cvgtce(pred: Tensor, gt: Tensor, eye_idx: tuple[int, int] = IBUG_OUTER_EYE_CORNERS) -> Tensor:
    """Cross-view GT consistency error: GTE after the best similarity of pred onto gt. -> (B,)."""
    aligned, *_ = similarity_procrustes(pred, gt)
    return gte(aligned, gt, eye_idx)


def mse_procrustes(
    pred: Tensor, gt: Tensor, standardize: bool = True, allow_reflection: bool = False
) -> Tensor:
    """MSE after similarity alignment of pred onto gt. (B, L, D) x2 -> (B,).

    standardize=True: scipy.spatial.procrustes' disparity (unitless; scipy allows
    reflections, pass allow_reflection=True to reproduce it exactly).
    standardize=False: mean_k ||s R p_k + t - g_k||^2 in unit^2.
    """
    _check_pair(pred, gt, "mse_procrustes")
    if standardize:
        pred = pred - pred.mean(1, keepdim=True)
        gt = gt - gt.mean(1, keepdim=True)
        pred = pred / pred.flatten(1).norm(dim=1).view(-1, 1, 1).clamp_min(1e-30)
        gt = gt / gt.flatten(1).norm(dim=1).view(-1, 1, 1).clamp_min(1e-30)
    aligned, *_ = similarity_procrustes(pred, gt, allow_reflection=allow_reflection)
    sq = ((aligned - gt) ** 2).sum(-1)  # (B, L)
    return sq.sum(1) if standardize else sq.mean(1)


def depth_corr(pred: Tensor, gt: Tensor) -> Tensor:
    """DepthCorr = sum_k corr(pred_k, gt_k) over the coordinates of each landmark.

    pred, gt: (B, L, 3). Equals np.trace(np.corrcoef(pred_b, gt_b)[:L, L:]) per sample.
    Returns (B,), at most L. Landmarks with zero coordinate variance contribute 0.
    """
    _check_pair(pred, gt, "depth_corr")
    p = pred - pred.mean(-1, keepdim=True)
    g = gt - gt.mean(-1, keepdim=True)
    num = (p * g).sum(-1)
    den = (p.norm(dim=-1) * g.norm(dim=-1)).clamp_min(1e-30)
    return (num / den).sum(1)


def wilcoxon_over_subsets(
    err_a: np.ndarray | Tensor,
    err_b: np.ndarray | Tensor,
    n_subsets: int = 10,
    subset_size: int = 500,
    seed: int = 0,
) -> dict[str, object]:
    """Deep-MDS' significance test of two methods evaluated on the same faces.

    err_a, err_b: (N,) per-face errors of methods a and b (N >= subset_size). Draws
    `n_subsets` random subsets of `subset_size` faces (without replacement within a
    subset), takes each method's mean per subset and runs scipy.stats.wilcoxon on the
    paired means. Returns {'statistic', 'pvalue', 'means_a' (n_subsets,), 'means_b'}.
    """
    a = np.asarray(err_a.detach().cpu() if isinstance(err_a, Tensor) else err_a, dtype=np.float64)
    b = np.asarray(err_b.detach().cpu() if isinstance(err_b, Tensor) else err_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"shape3d.wilcoxon_over_subsets: need two (N,) arrays, got {a.shape} and {b.shape}")
    if a.shape[0] < subset_size:
        raise ValueError(f"shape3d.wilcoxon_over_subsets: N={a.shape[0]} < subset_size={subset_size}")
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(a.shape[0], subset_size, replace=False) for _ in range(n_subsets)])
    means_a, means_b = a[idx].mean(1), b[idx].mean(1)
    res = stats.wilcoxon(means_a, means_b)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "means_a": means_a, "means_b": means_b}


def ced_curve(errors: Tensor, thresholds: Tensor) -> Tensor:
    """Fraction of samples with error <= each threshold. errors (N,), thresholds (T,) -> (T,)."""
    return (errors.unsqueeze(0) <= thresholds.unsqueeze(1)).to(errors.dtype).mean(1)


def ced_auc(errors: Tensor, max_error: float = 1.0) -> Tensor:
    """Normalised area under the CED on [0, max_error], in [0, 1] (exact, no sampling).

    AUC = (1/max) int_0^max F(e) de = mean_i max(0, 1 - e_i / max) for the empirical CDF F.
    """
    if errors.dim() != 1 or errors.numel() == 0:
        raise ValueError(f"shape3d.ced_auc: errors must be a non-empty (N,), got {tuple(errors.shape)}")
    return (1.0 - errors / max_error).clamp(0.0, 1.0).mean()


def icp_procrustes_distance(
    recon: Tensor,
    scan: Tensor,
    n_iter: int = 30,
    with_scale: bool = True,
    init_correspondence: Tensor | None = None,
    scale_factor: float = 100.0,
) -> Tensor:
    """MobileFace's normalised distance of a reconstruction to a ground-truth scan.

    recon: (N, 3) reconstructed vertices; scan: (M, 3) ground-truth points (same unit).
    init_correspondence: optional (N,) long indices into scan for a first alignment
      (MobileFace initialises ICP with annotated landmarks); default: centroid match.
    Iterates: nearest scan point of each aligned vertex, similarity-align recon to those
    points. Returns scalar d = 100 * ||S - P(S)||^2 / ||S_gt - mean(S_gt)||^2 where P(S)
    are the nearest scan points and the denominator sums over the scan points.
    """
    if recon.dim() != 2 or scan.dim() != 2 or recon.shape[1] != 3 or scan.shape[1] != 3:
        raise ValueError(
            f"shape3d.icp_procrustes_distance: need (N, 3) and (M, 3), got {tuple(recon.shape)}, {tuple(scan.shape)}"
        )
    if init_correspondence is not None:
        _, s, rot, t = similarity_procrustes(recon[None], scan[init_correspondence][None], with_scale=with_scale)
        cur = s.view(1, 1) * recon @ rot[0].T + t
    else:
        cur = recon - recon.mean(0) + scan.mean(0)
    for _ in range(n_iter):
        nn_idx = torch.cdist(cur, scan).argmin(1)
        target = scan[nn_idx]
        cur, *_ = similarity_procrustes(recon[None], target[None], with_scale=with_scale)
        cur = cur[0]
    nn_idx = torch.cdist(cur, scan).argmin(1)
    num = ((cur - scan[nn_idx]) ** 2).sum()
    den = ((scan - scan.mean(0)) ** 2).sum()
    return scale_factor * num / den


class MeanPerSample(Metric):
    """Mean over samples of a per-sample metric fn(pred, gt) -> (B,). DDP-safe (sum, count)."""

    full_state_update = False

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], **kwargs) -> None:
        super().__init__(**kwargs)
        self.fn = fn
        self.add_state("total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor) -> None:
        vals = self.fn(pred.detach().double(), gt.detach().double())
        self.total += vals.sum()
        self.count += vals.numel()

    def compute(self) -> Tensor:
        return (self.total / self.count.clamp_min(1.0)).float()


class GTE(MeanPerSample):
    def __init__(self, **kwargs) -> None:
        super().__init__(gte, **kwargs)


class CVGTCE(MeanPerSample):
    def __init__(self, **kwargs) -> None:
        super().__init__(cvgtce, **kwargs)


class APE(MeanPerSample):
    def __init__(self, **kwargs) -> None:
        super().__init__(ape, **kwargs)


class ProcrustesMSE(MeanPerSample):
    def __init__(self, **kwargs) -> None:
        super().__init__(mse_procrustes, **kwargs)


class DepthCorr(MeanPerSample):
    def __init__(self, **kwargs) -> None:
        super().__init__(depth_corr, **kwargs)


class CEDAUC(Metric):
    """AUC of the CED of per-sample errors on [0, max_error]; keeps every error (cat state)."""

    full_state_update = False

    def __init__(self, max_error: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.max_error = max_error
        self.add_state("errors", default=[], dist_reduce_fx="cat")

    def update(self, errors: Tensor) -> None:
        self.errors.append(errors.detach().reshape(-1).double())

    def compute(self) -> Tensor:
        errs = torch.cat(self.errors) if isinstance(self.errors, list) else self.errors
        return ced_auc(errs, self.max_error).float()
