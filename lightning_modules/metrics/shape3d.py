"""3D shape metrics for lifted landmarks and reconstructed meshes.

Functional forms (pure torch / numpy, per sample) and torchmetrics wrappers (one object
per stage, DDP-safe). Shapes are (B, L, 3) in any common unit; every metric says what
it is normalised by.

- `gte`: Zhao et al. ground-truth error, mean_k ||s_k - s~_k|| / d_eyes, d_eyes the
  distance of the outer eye corners (iBUG-68 indices 36, 45) of the ground truth.
- `cvgtce`: the same after the best similarity (c, R, t) of the prediction onto the
  ground truth (least squares, Umeyama: facemodels.procrustes; the paper's objective is written with
  unsquared norms, least squares is the standard closed form).
- `ape`: mean point error (in the input unit).
- `mse_procrustes`: Deep-MDS' "MSE after Procrustes"; with `standardize=True` it is
  scipy.spatial.procrustes' disparity (both shapes centred and scaled to unit Frobenius
  norm, prediction similarity-aligned, sum of squared differences); otherwise the mean
  squared point distance after similarity alignment, in unit^2.
- `depth_corr`: DepthCorr as Deep-MDS uses it, defined by the paper it cites (Moniz et al. 2018,
  DepthNets; their code: `np.sum(np.diag(np.abs(np.corrcoef(preds, actuals, rowvar=0)[:K, K:])))`
  with one row per face): over a SET of faces, the Pearson correlation, across the faces, of each
  landmark's predicted and ground-truth depth, absolute value, summed over the landmarks; at most
  L (72 for the paper's BFM set, hence its 71.95). Depths are centred per face (depth is known up
  to a constant) and divided by the ground truth's 3D outer-eye distance (face size; DepthNets
  divides by the image size), so the world's units and the face size in the image do not count.
  It is a set statistic, not a mean of per-face values (`DepthCorr` accumulates the sums).
- `depth_error`: mean absolute depth error after removing each face's mean depth, / the 3D
  outer-eye distance of the ground truth (per face).
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

from facemodels.procrustes import similarity_align, umeyama

IBUG_OUTER_EYE_CORNERS = (36, 45)


def _check_pair(pred: Tensor, gt: Tensor, name: str) -> None:
    if pred.shape != gt.shape or pred.dim() != 3:
        raise ValueError(
            f"lightning_modules.metrics.shape3d.{name}: pred and gt must both be (B, L, D), "
            f"got {tuple(pred.shape)} and {tuple(gt.shape)}"
        )


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
    _check_pair(pred, gt, "cvgtce")
    return gte(similarity_align(pred, gt).aligned, gt, eye_idx)


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
    aligned = similarity_align(pred, gt, reflection=allow_reflection).aligned
    sq = ((aligned - gt) ** 2).sum(-1)  # (B, L)
    return sq.sum(1) if standardize else sq.mean(1)


def normalised_depth(pred: Tensor, gt: Tensor) -> tuple[Tensor, Tensor]:
    """Per-face centred depths divided by the gt's outer-eye distance. (B, 68, 3) x2 -> (B, 68) x2, unitless."""
    _check_pair(pred, gt, "normalised_depth")
    size = interocular_outer(gt).clamp_min(1e-12).view(-1, 1)
    zp = pred[..., 2] - pred[..., 2].mean(1, keepdim=True)
    zg = gt[..., 2] - gt[..., 2].mean(1, keepdim=True)
    return zp / size, zg / size


def depth_corr_from_depths(zp: Tensor | np.ndarray, zg: Tensor | np.ndarray) -> float:
    """DepthCorr of a set of faces from their depths: sum_k |corr_n(zp[n, k], zg[n, k])|.

    zp, zg: (N, L) depths (any unit; N >= 2 faces). Landmarks whose depth does not vary over the
    set (zero variance) contribute 0. Returns a float in [0, L].
    """
    a = torch.as_tensor(np.asarray(zp), dtype=torch.float64) if not isinstance(zp, Tensor) else zp.double()
    b = torch.as_tensor(np.asarray(zg), dtype=torch.float64) if not isinstance(zg, Tensor) else zg.double()
    if a.shape != b.shape or a.dim() != 2 or a.shape[0] < 2:
        raise ValueError(f"shape3d.depth_corr_from_depths: need two (N >= 2, L) arrays, got {tuple(a.shape)}, {tuple(b.shape)}")
    n = a.shape[0]
    return float(_corr_sum(n, a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), (a * b).sum(0)))


def _corr_sum(n: Tensor | float, sp: Tensor, sg: Tensor, spp: Tensor, sgg: Tensor, spg: Tensor) -> Tensor:
    """sum_k |Pearson r_k| from per-landmark sums (L,) over n faces (zero-variance landmarks: 0)."""
    cov = spg - sp * sg / n
    vp = (spp - sp * sp / n).clamp_min(0.0)
    vg = (sgg - sg * sg / n).clamp_min(0.0)
    den = (vp * vg).sqrt()
    ok = den > 1e-30 * n
    r = torch.where(ok, cov / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den))
    return r.abs().sum()


def depth_corr(pred: Tensor, gt: Tensor) -> Tensor:
    """DepthCorr of a set of B >= 2 faces (Moniz et al. 2018, as cited by Deep-MDS).

    pred, gt: (B, L, 3) (any unit, z = depth). Depths centred per face and divided by the gt's
    outer-eye distance (iBUG-68 36, 45), then sum over landmarks of |corr over the B faces|.
    Returns a scalar tensor in [0, L].
    """
    zp, zg = normalised_depth(pred, gt)
    return torch.tensor(depth_corr_from_depths(zp, zg), dtype=torch.float64)


def depth_error(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean |z - z_gt| over landmarks after removing each face's mean depth, / the gt's 3D outer-eye
    distance. (B, 68, 3) x2 (z = depth, any common unit) -> (B,), a fraction."""
    zp, zg = normalised_depth(pred, gt)
    return (zp - zg).abs().mean(1)


def wilcoxon_over_subsets(
    err_a: np.ndarray | Tensor,
    err_b: np.ndarray | Tensor,
    n_subsets: int = 10,
    subset_size: int = 500,
    seed: int = 0,
    stat: Callable[[np.ndarray], float] | None = None,
) -> dict[str, object]:
    """Deep-MDS' significance test of two methods evaluated on the same faces.

    err_a, err_b: (N, ...) per-face values of methods a and b (N >= subset_size). Draws
    `n_subsets` random subsets of `subset_size` faces (without replacement within a
    subset), computes each method's subset statistic (`stat(values[subset])`, default the
    mean of (N,) per-face errors; e.g. DepthCorr of (N, 2, L) stacked predicted / GT depths)
    and runs scipy.stats.wilcoxon on the paired statistics.
    Returns {'statistic', 'pvalue', 'means_a' (n_subsets,), 'means_b'}.
    """
    a = np.asarray(err_a.detach().cpu() if isinstance(err_a, Tensor) else err_a, dtype=np.float64)
    b = np.asarray(err_b.detach().cpu() if isinstance(err_b, Tensor) else err_b, dtype=np.float64)
    if a.shape != b.shape or (stat is None and a.ndim != 1):
        raise ValueError(f"shape3d.wilcoxon_over_subsets: need two (N,) arrays (or (N, ...) with stat), got {a.shape} and {b.shape}")
    if a.shape[0] < subset_size:
        raise ValueError(f"shape3d.wilcoxon_over_subsets: N={a.shape[0]} < subset_size={subset_size}")
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.choice(a.shape[0], subset_size, replace=False) for _ in range(n_subsets)])
    if stat is None:
        means_a, means_b = a[idx].mean(1), b[idx].mean(1)
    else:
        means_a = np.array([stat(a[i]) for i in idx])
        means_b = np.array([stat(b[i]) for i in idx])
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
        cur = umeyama(recon, scan[init_correspondence], with_scale=with_scale).aligned
    else:
        cur = recon - recon.mean(0) + scan.mean(0)
    for _ in range(n_iter):
        nn_idx = torch.cdist(cur, scan).argmin(1)
        target = scan[nn_idx]
        cur = umeyama(recon, target, with_scale=with_scale).aligned
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


class DepthCorr(Metric):
    """DepthCorr over every face seen (see `depth_corr`): per-landmark sums of the normalised
    depths, their squares and products (DDP: summed), the correlation sum at compute()."""

    full_state_update = False

    def __init__(self, n_landmarks: int = 68, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("n", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        for key in ("sp", "sg", "spp", "sgg", "spg"):
            self.add_state(key, default=torch.zeros(n_landmarks, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, gt: Tensor) -> None:
        zp, zg = normalised_depth(pred.detach().double(), gt.detach().double())
        if zp.shape[1] != self.sp.shape[0]:
            raise ValueError(f"shape3d.DepthCorr: built for {self.sp.shape[0]} landmarks, got (B, {zp.shape[1]}, 3)")
        self.n += zp.shape[0]
        self.sp += zp.sum(0)
        self.sg += zg.sum(0)
        self.spp += (zp * zp).sum(0)
        self.sgg += (zg * zg).sum(0)
        self.spg += (zp * zg).sum(0)

    def compute(self) -> Tensor:
        if self.n < 2:
            return torch.tensor(float("nan"))
        return _corr_sum(self.n, self.sp, self.sg, self.spp, self.sgg, self.spg).float()


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
