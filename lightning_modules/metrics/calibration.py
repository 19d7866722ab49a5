"""Calibration of predicted landmark scales: binned predicted sigma vs observed error."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class SigmaCalibration(Metric):
    """Bins landmarks by predicted sigma (px) and averages the observed error (px) per bin.

    Args:
        bin_edges: increasing sigma bin edges in px (K + 1 values); landmarks outside the range are
            put in the first / last bin.

    update(sigma (B, L) px: the per-landmark predicted scale, e.g. the mean of sigma_x, sigma_y;
           error (B, L) px: ||pred - gt||).
    compute() -> dict(sigma_mean (K,), error_mean (K,), count (K,)); empty bins give NaN means;
    and over all landmarks: sigma_all (px), error_all (px) and corr, the Pearson correlation of
    sigma and error (NaN when either is constant). corr near 0 means the confidences carry no
    information about which landmarks are wrong, whatever their scale.
    For a Laplace model E|x - mu| = sigma per coordinate, for a Gaussian sqrt(2/pi) sigma: a
    calibrated model lies on a line through the origin.
    """

    full_state_update = False

    def __init__(self, bin_edges: list[float] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        edges = torch.tensor(bin_edges if bin_edges is not None else [0.0, 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16])
        if edges.ndim != 1 or len(edges) < 2 or not bool((edges[1:] > edges[:-1]).all()):
            raise ValueError(f"SigmaCalibration: bin_edges must be increasing, got {edges.tolist()}")
        self.register_buffer("edges", edges.double(), persistent=False)
        k = len(edges) - 1
        self.add_state("sigma_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("error_sum", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        # sums of s, e, s^2, e^2, s*e over all landmarks (for the overall means and the correlation)
        self.add_state("moments", default=torch.zeros(5, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, sigma: torch.Tensor, error: torch.Tensor) -> None:
        if sigma.shape != error.shape:
            raise ValueError(f"SigmaCalibration: sigma {tuple(sigma.shape)} != error {tuple(error.shape)}")
        s = sigma.detach().double().reshape(-1)
        e = error.detach().double().reshape(-1)
        k = len(self.edges) - 1
        idx = (torch.bucketize(s, self.edges.to(s.device), right=True) - 1).clamp(0, k - 1)
        self.sigma_sum += torch.zeros(k, dtype=torch.float64, device=s.device).index_add_(0, idx, s)
        self.error_sum += torch.zeros(k, dtype=torch.float64, device=s.device).index_add_(0, idx, e)
        self.count += torch.bincount(idx, minlength=k).double()
        self.moments += torch.stack([s.sum(), e.sum(), (s * s).sum(), (e * e).sum(), (s * e).sum()])

    def compute(self) -> dict[str, torch.Tensor]:
        nan = torch.full_like(self.count, float("nan"))
        c = self.count.clamp_min(1.0)
        n = self.count.sum()
        s1, e1, s2, e2, se = (self.moments / n.clamp_min(1.0)).unbind()
        var_s, var_e = s2 - s1 * s1, e2 - e1 * e1
        valid = (n > 1) & (var_s > 1e-12 * s2) & (var_e > 1e-12 * e2)  # constant inputs: no correlation
        corr = (se - s1 * e1) / (var_s * var_e).clamp_min(1e-300).sqrt()
        corr = torch.where(valid, corr, torch.full_like(corr, float("nan")))
        return {
            "sigma_all": torch.where(n > 0, s1, torch.full_like(s1, float("nan"))),
            "error_all": torch.where(n > 0, e1, torch.full_like(e1, float("nan"))),
            "corr": corr,
            "sigma_mean": torch.where(self.count > 0, self.sigma_sum / c, nan),
            "error_mean": torch.where(self.count > 0, self.error_sum / c, nan),
            "count": self.count,
        }


def calibration_figure(stats: dict[str, torch.Tensor], title: str = "sigma calibration"):
    """Matplotlib Figure of binned mean predicted sigma (px) vs mean observed error (px)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    keep = stats["count"] > 0
    s = stats["sigma_mean"][keep].cpu().numpy()
    e = stats["error_mean"][keep].cpu().numpy()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot(s, e, "o-", label="observed")
    top = float(max(s.max(initial=1.0), e.max(initial=1.0)))
    ax.plot([0, top], [0, top], "k--", lw=0.8, label="error = sigma")
    ax.set_xlabel("predicted sigma (px)")
    ax.set_ylabel("mean landmark error (px)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
