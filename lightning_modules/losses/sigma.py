"""Maps a raw network output to a positive landmark scale sigma."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SIGMA_ACTIVATIONS = ("exp", "sigmoid", "softplus")


def activate_sigma(raw: torch.Tensor, activation: str, min_sigma: float = 1e-6) -> torch.Tensor:
    """raw (...) -> sigma (...) with sigma >= min_sigma.

    "sigmoid": sigma in (0, 1) (ResLL as in RLE and the thesis); "exp": sigma in (0, inf)
    (ResLL Exp, NGLL); "softplus": a smoother alternative to exp.
    """
    if activation == "sigmoid":
        sigma = torch.sigmoid(raw)
    elif activation == "exp":
        sigma = torch.exp(raw.clamp(max=20.0))
    elif activation == "softplus":
        sigma = F.softplus(raw)
    else:
        raise ValueError(f"activate_sigma: activation={activation!r}, expected one of {SIGMA_ACTIVATIONS}")
    return sigma.clamp_min(min_sigma)
