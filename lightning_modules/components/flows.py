"""RealNVP residual flow over 2D landmark residuals (RLE set-up), built with normflows."""

from __future__ import annotations

import normflows as nf
import torch
from torch import nn


def _coupling_net(tanh: bool) -> nn.Sequential:
    """Linear(2,64)-LReLU-Linear(64,64)-LReLU-Linear(64,2)[-Tanh], Xavier init with gain 0.01."""
    layers: list[nn.Module] = [
        nn.Linear(2, 64),
        nn.LeakyReLU(),
        nn.Linear(64, 64),
        nn.LeakyReLU(),
        nn.Linear(64, 2),
    ]
    if tanh:
        layers.append(nn.Tanh())
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=0.01)
    return net


class RealNVPFlow(nn.Module):
    """Residual density G_phi on R^2: RealNVP with masks [[0,1],[1,0]] x num_pairs, prior N(0, I2).

    As in the RLE repository: each coupling keeps the masked coordinate and maps the other one by
    z * exp(s(.)) + t(.), s-net ending in Tanh, t-net without; weights Xavier-initialised with gain
    0.01 (biases keep PyTorch's default init, as in the RLE code).

    `log_prob(x (N, 2)) -> (N,)` is the log density of x under the flow.
    """

    def __init__(self, num_pairs: int = 3) -> None:
        super().__init__()
        if num_pairs < 0:
            raise ValueError(f"RealNVPFlow: num_pairs must be >= 0, got {num_pairs}")
        flows = []
        for _ in range(num_pairs):
            for mask in ([0.0, 1.0], [1.0, 0.0]):
                b = torch.tensor(mask)
                flows.append(nf.flows.MaskedAffineFlow(b, t=_coupling_net(False), s=_coupling_net(True)))
        prior = nf.distributions.DiagGaussian(2, trainable=False)
        self.flow = nf.NormalizingFlow(q0=prior, flows=flows)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 2) -> log G_phi(x) (N,)."""
        if x.ndim != 2 or x.shape[1] != 2:
            raise ValueError(f"RealNVPFlow.log_prob: expected (N, 2), got {tuple(x.shape)}")
        return self.flow.log_prob(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_prob(x)
