"""Wing loss (Feng et al. 2018) and the 520-keypoint paper's Wing + MSE hybrid."""

from __future__ import annotations

import math

import torch
from torch import nn


def wing(x: torch.Tensor, w: float = 15.0, eps: float = 3.0) -> torch.Tensor:
    """Elementwise Wing: w ln(1 + |x|/eps) if |x| < w else |x| - C, C = w - w ln(1 + w/eps).

    Continuous at |x| = w. Units of x, w and eps must agree (px for the paper's w=15, eps=3).
    """
    a = x.abs()
    c = w - w * math.log(1.0 + w / eps)
    return torch.where(a < w, w * torch.log1p(a / eps), a - c)


REDUCTIONS = ("mean", "sample_sum")


class WingLoss(nn.Module):
    """Wing of (B, L, D) pred - target (px), reduced over the elements.

    ``reduction="mean"`` (default): the mean over all B L D elements. ``"sample_sum"``: the
    paper's per-sample loss, the sum over a sample's L D coordinates (Feng et al. 2018,
    Eq. 5), averaged over the batch; it is ``L D`` times the mean, a constant factor that
    only rescales the loss weight and the learning rate.
    """

    def __init__(self, w: float = 15.0, eps: float = 3.0, reduction: str = "mean") -> None:
        super().__init__()
        if w <= 0 or eps <= 0:
            raise ValueError(f"WingLoss: w and eps must be > 0, got w={w}, eps={eps}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"WingLoss: reduction={reduction!r}, expected one of {REDUCTIONS}")
        self.w = w
        self.eps = eps
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        e = wing(pred - target, self.w, self.eps)
        return e.mean() if self.reduction == "mean" else e.flatten(1).sum(1).mean()


TARGET_SETS = ("dense", "sparse68")


class WingMSELoss(nn.Module):
    """L = w1 * Wing(set A) + w2 * MSE(set B) (520-point paper Eq. 2: w1 = 1.5, w2 = 0.5).

    Each term's target set is one of "dense" (the configured landmark set, e.g. the 520 points,
    x, y px + z) or "sparse68" (iBUG-68, x, y px); the public code uses Wing on "dense" and MSE on
    "sparse68". MSE is the mean of squared elementwise errors (px^2).

    forward(preds, targets) takes dicts {"dense": (B, L, D), "sparse68": (B, 68, 2)} of px tensors.
    """

    def __init__(
        self,
        w1: float = 1.5,
        w2: float = 0.5,
        w: float = 15.0,
        eps: float = 3.0,
        wing_on: str = "dense",
        mse_on: str = "sparse68",
    ) -> None:
        super().__init__()
        for key, val in (("wing_on", wing_on), ("mse_on", mse_on)):
            if val not in TARGET_SETS:
                raise ValueError(f"WingMSELoss: {key}={val!r}, expected one of {TARGET_SETS}")
        self.w1, self.w2 = w1, w2
        self.wing = WingLoss(w, eps)
        self.wing_on, self.mse_on = wing_on, mse_on

    def forward(self, preds: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        for name in {self.wing_on, self.mse_on}:
            if name not in preds or name not in targets:
                raise KeyError(f"WingMSELoss: target set {name!r} missing from preds/targets")
        loss_wing = self.wing(preds[self.wing_on], targets[self.wing_on])
        loss_mse = ((preds[self.mse_on] - targets[self.mse_on]) ** 2).mean()
        return self.w1 * loss_wing + self.w2 * loss_mse
