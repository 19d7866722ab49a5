"""Zhao et al. (2016) depth MLP: standardised 2D landmarks -> standardised depth.

Standardisation (the paper's Eq. 9/12): subtract the per-face means of u and v and
divide both by (std(u) + std(v)) / 2; the same scale divides the target depth. Depth is
then read back in the input's unit by multiplying by that scale (up to an additive
constant: the depth mean is not recoverable from 2D).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def standardise_2d(xy: Tensor, eps: float = 1e-8) -> tuple[Tensor, Tensor, Tensor]:
    """Zhao's standardisation of 2D landmarks.

    xy: (B, L, 2) in any unit (px). Returns (xy_std (B, L, 2) unitless, mean (B, 1, 2),
    scale (B, 1, 1) in the input unit) with xy = xy_std * scale + mean.
    """
    if xy.dim() != 3 or xy.shape[-1] != 2:
        raise ValueError(f"depth_mlp.standardise_2d: xy must be (B, L, 2), got {tuple(xy.shape)}")
    mean = xy.mean(1, keepdim=True)
    std = xy.std(1, unbiased=False)  # (B, 2)
    scale = (0.5 * (std[:, 0] + std[:, 1])).clamp_min(eps).view(-1, 1, 1)
    return (xy - mean) / scale, mean, scale


_ACTIVATIONS = {"tanh": nn.Tanh, "identity": nn.Identity}


class DepthMLP(nn.Module):
    """Six fully-connected layers of widths (2n, 2n, 2n, 2n, 2n, n), tanh between them.

    Input (B, n, 2) standardised 2D landmarks (flattened to 2n), output (B, n)
    standardised depth. The paper applies tanh after every layer (Eq. 10), which bounds
    the output to (-1, 1) although standardised depths of yawed faces exceed 1; the
    output activation is therefore configurable and defaults to identity.

    init: "glorot" (Keras' default, which the paper's implementation used: Glorot-uniform
    weights, zero biases) or "torch" (nn.Linear's default, ~3x smaller weight variance).
    """

    def __init__(
        self,
        n_landmarks: int = 68,
        widths_mult: tuple[int, ...] = (2, 2, 2, 2, 2),
        output_activation: str = "identity",
        init: str = "glorot",
    ) -> None:
        super().__init__()
        if init not in ("glorot", "torch"):
            raise ValueError(f"DepthMLP: init must be 'glorot' or 'torch', got {init!r}")
        if output_activation not in _ACTIVATIONS:
            raise ValueError(f"DepthMLP: output_activation must be one of {list(_ACTIVATIONS)}, got {output_activation!r}")
        n = n_landmarks
        layers: list[nn.Module] = []
        d_in = 2 * n
        for m in widths_mult:
            layers += [nn.Linear(d_in, m * n), nn.Tanh()]
            d_in = m * n
        layers += [nn.Linear(d_in, n), _ACTIVATIONS[output_activation]()]
        self.net = nn.Sequential(*layers)
        self.n_landmarks = n
        if init == "glorot":
            for m in self.net:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

    def forward(self, xy_std: Tensor) -> Tensor:
        """xy_std: (B, n, 2) standardised -> (B, n) standardised depth."""
        if xy_std.shape[1:] != (self.n_landmarks, 2):
            raise ValueError(f"DepthMLP: expected (B, {self.n_landmarks}, 2), got {tuple(xy_std.shape)}")
        return self.net(xy_std.flatten(1))

    def lift(self, xy: Tensor) -> Tensor:
        """Lift raw 2D landmarks (B, n, 2) (any unit) to (B, n, 3): x, y unchanged, z in the
        same unit (zero-mean; sign convention of the training targets)."""
        xy_std, _, scale = standardise_2d(xy)
        z = self.forward(xy_std) * scale.view(-1, 1)
        return torch.cat([xy, z.unsqueeze(-1)], dim=-1)
