"""Negative Gaussian log-likelihood (NGLL) for landmarks with per-coordinate scales.

Thesis Eq. 3.14 (as Wood et al. 2022): loss = log sigma + (mu_gt - mu)^2 / (2 sigma^2), per
coordinate; the constant 0.5 log(2 pi) is dropped.
"""

from __future__ import annotations

import torch
from torch import nn

from lightning_modules.losses.sigma import SIGMA_ACTIVATIONS, activate_sigma


class NGLLLoss(nn.Module):
    """Gaussian NLL of the ground truth under N(mu, sigma^2), per coordinate.

    Args:
        sigma_activation: how the raw scale output becomes sigma: "exp" (default, Wood et al.
            predict log sigma), "sigmoid" or "softplus".
        min_sigma: lower clamp on sigma (normalised units) to keep log sigma finite.

    Shapes: mu, sigma, target (B, L, 2) in the same units (normalised crop coords);
    weight (B, L) optional (1 use, 0 ignore). Returns a scalar: sum over the 2 coordinates,
    mean over landmarks and batch (weighted mean when weight is given).
    """

    def __init__(self, sigma_activation: str = "exp", min_sigma: float = 1e-6) -> None:
        super().__init__()
        if sigma_activation not in SIGMA_ACTIVATIONS:
            raise ValueError(
                f"NGLLLoss: sigma_activation={sigma_activation!r}, expected one of {SIGMA_ACTIVATIONS}"
            )
        self.sigma_activation = sigma_activation
        self.min_sigma = min_sigma

    def activate_sigma(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw network output (..., 2) -> sigma (..., 2) > 0."""
        return activate_sigma(raw, self.sigma_activation, self.min_sigma)

    def per_landmark(self, mu: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, L, 2) x3 -> (B, L): log sigma + r^2 / (2 sigma^2), summed over x, y."""
        sigma = sigma.clamp_min(self.min_sigma)
        nll = torch.log(sigma) + (target - mu) ** 2 / (2.0 * sigma**2)
        return nll.sum(-1)

    def forward(
        self,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return weighted_mean(self.per_landmark(mu, sigma, target), weight)


def weighted_mean(values: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B, L) values, weighted by (B, L) weights when given (0 weights are ignored)."""
    if weight is None:
        return values.mean()
    weight = weight.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)
