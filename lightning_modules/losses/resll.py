"""Residual log-likelihood (ResLL, RLE by Li et al. 2021) and its ResLL Exp variant (thesis 3.3.3).

With x_bar = (mu_gt - mu) / sigma (per landmark, 2D), the thesis (Eq. 3.21) writes

    ResLL = -log Q(x_bar) - log G_phi(x_bar) + log sigma

where Q is a fixed simple density on x_bar and G_phi the flow's density of x_bar (a RealNVP over
the 2D residual, see lightning_modules.components.flows). We implement exactly this equation, with
log sigma counted ONCE (summed over x and y), and with Q a normalised density on x_bar:

    Laplace (default, the mmpose form):  -log Q(x_bar) = log 2 + |x_bar|          (scale b = 1)
    Gaussian:                            -log Q(x_bar) = 0.5 log(2 pi) + x_bar^2 / 2

so the "Q term" -log Q(x_bar) + log sigma is the exact Laplace / Gaussian NLL of mu_gt under
(mu, sigma) in coordinate space, e.g. log(2 sigma) + |mu_gt - mu| / sigma for Laplace.

Why not the RLE repo's form: its code adds log sigma twice (once inside
logQ = log(sigma/amp) + |gt-mu|/(sqrt(2) sigma), once more in nf_loss = log sigma - log_phi), and its
Laplace scale is sqrt(2) sigma; mmpose inherited the double log sigma. Set
`double_log_sigma=True` to reproduce that behaviour (it only re-weights the log sigma term, which
pushes sigma smaller; the optimum mu is unchanged).

sigma = sigmoid(raw) for ResLL (sigma in [0, 1], as RLE/thesis) and exp(raw) for ResLL Exp.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightning_modules.losses.nll import weighted_mean
from lightning_modules.losses.sigma import SIGMA_ACTIVATIONS, activate_sigma

Q_DISTRIBUTIONS = ("laplace", "gaussian")


class ResLLLoss(nn.Module):
    """ResLL = -log Q(x_bar) - log G_phi(x_bar) + log sigma, per landmark.

    Args:
        flow: an nn.Module with `log_prob(x (N, 2)) -> (N,)` (the residual density G_phi, e.g.
            `RealNVPFlow`), or None for G_phi == 1 (then the loss is the Q term alone).
        q_distribution: "laplace" (default) or "gaussian".
        sigma_activation: "sigmoid" (ResLL) or "exp" (ResLL Exp).
        double_log_sigma: add log sigma a second time, as the RLE/mmpose code does.
        min_sigma: lower clamp on sigma.

    Shapes: mu, sigma, target (B, L, 2), normalised crop coords; weight (B, L) optional.
    Returns a scalar: per landmark sum over x, y of the Q term, minus log G of the 2D residual,
    then (weighted) mean over landmarks and batch.
    """

    def __init__(
        self,
        flow: nn.Module | None = None,
        q_distribution: str = "laplace",
        sigma_activation: str = "sigmoid",
        double_log_sigma: bool = False,
        min_sigma: float = 1e-6,
    ) -> None:
        super().__init__()
        if q_distribution not in Q_DISTRIBUTIONS:
            raise ValueError(
                f"ResLLLoss: q_distribution={q_distribution!r}, expected one of {Q_DISTRIBUTIONS}"
            )
        if sigma_activation not in SIGMA_ACTIVATIONS:
            raise ValueError(
                f"ResLLLoss: sigma_activation={sigma_activation!r}, expected one of {SIGMA_ACTIVATIONS}"
            )
        self.flow = flow
        self.q_distribution = q_distribution
        self.sigma_activation = sigma_activation
        self.double_log_sigma = double_log_sigma
        self.min_sigma = min_sigma

    def activate_sigma(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw network output (..., 2) -> sigma (..., 2) > 0."""
        return activate_sigma(raw, self.sigma_activation, self.min_sigma)

    def q_term(self, mu: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, L, 2) x3 -> (B, L): sum over x, y of -log Q(x_bar) + log sigma."""
        sigma = sigma.clamp_min(self.min_sigma)
        x_bar = (target - mu) / sigma
        if self.q_distribution == "laplace":
            nll = math.log(2.0) + x_bar.abs()
        else:
            nll = 0.5 * math.log(2.0 * math.pi) + 0.5 * x_bar**2
        return (nll + torch.log(sigma)).sum(-1)

    def residual_term(self, mu: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, L, 2) x3 -> (B, L): -log G_phi(x_bar) (0 without a flow)."""
        if self.flow is None:
            return torch.zeros(mu.shape[:-1], dtype=mu.dtype, device=mu.device)
        x_bar = (target - mu) / sigma.clamp_min(self.min_sigma)
        log_g = self.flow.log_prob(x_bar.reshape(-1, 2))  # (B*L,)
        return -log_g.reshape(mu.shape[:-1])

    def per_landmark(self, mu: torch.Tensor, sigma: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, L, 2) x3 -> (B, L) loss per landmark."""
        loss = self.q_term(mu, sigma, target) + self.residual_term(mu, sigma, target)
        if self.double_log_sigma:
            loss = loss + torch.log(sigma.clamp_min(self.min_sigma)).sum(-1)
        return loss

    def forward(
        self,
        mu: torch.Tensor,
        sigma: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return weighted_mean(self.per_landmark(mu, sigma, target), weight)


class ResLLExpLoss(ResLLLoss):
    """ResLL Exp (thesis 3.3.3): ResLL with sigma = exp(raw), unrestricted above 1."""

    def __init__(
        self,
        flow: nn.Module | None = None,
        q_distribution: str = "laplace",
        double_log_sigma: bool = False,
        min_sigma: float = 1e-6,
    ) -> None:
        super().__init__(
            flow=flow,
            q_distribution=q_distribution,
            sigma_activation="exp",
            double_log_sigma=double_log_sigma,
            min_sigma=min_sigma,
        )
