"""SpiralNet++ mesh decoder (Gong et al. 2019) as used by the thesis (Sec. 3.3.1, Eqs. 3.10-3.12).

features (B, F) -> linear map onto the vertices of the coarsest mesh level (B, V_0, C_0) -> per
level k: up-sample U_k X (B, V_{k+1}, C_k), spiral convolution (gather each vertex's spiral of S
vertex features, concatenate to S * C_k, linear map to C_{k+1}), ELU -> a final spiral convolution
to `out_channels` without activation: (B, V_m, out_channels).
"""

from __future__ import annotations

import torch
from torch import nn


class SpiralConv(nn.Module):
    """x (B, V, C_in) -> (B, V, C_out): Linear over the concatenated features along each spiral.

    spiral: (V, S) int64 vertex indices, spiral[i, 0] == i by convention.
    """

    def __init__(self, in_channels: int, out_channels: int, spiral: torch.Tensor) -> None:
        super().__init__()
        spiral = torch.as_tensor(spiral, dtype=torch.long)
        if spiral.ndim != 2:
            raise ValueError(f"SpiralConv: spiral indices must be (V, S), got {tuple(spiral.shape)}")
        self.register_buffer("spiral", spiral, persistent=False)  # (V, S)
        self.linear = nn.Linear(in_channels * spiral.shape[1], out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, v, c = x.shape
        if v != self.spiral.shape[0]:
            raise ValueError(f"SpiralConv: input has {v} vertices, spirals cover {self.spiral.shape[0]}")
        gathered = x[:, self.spiral.reshape(-1)]  # (B, V * S, C)
        return self.linear(gathered.reshape(b, v, -1))  # (B, V, S * C) -> (B, V, C_out)


class SpiralDecoder(nn.Module):
    """Features (B, F) -> vertex outputs (B, V_m, out_channels) on the finest level.

    Args:
        in_features: F.
        up_matrices: m dense up-sampling matrices, coarse to fine; up_matrices[k] is
            (V_{k+1}, V_k) (rows of barycentric weights).
        spirals: m spiral index tensors; spirals[k] is (V_{k+1}, S_k) for level k + 1.
        channels: m + 1 feature widths: channels[0] on the coarsest level, channels[k + 1] after
            the spiral convolution on level k + 1.
        out_channels: outputs per finest vertex (4 = mu_x, mu_y, raw sigma_x, raw sigma_y).
    """

    def __init__(
        self,
        in_features: int,
        up_matrices: list[torch.Tensor],
        spirals: list[torch.Tensor],
        channels: list[int],
        out_channels: int = 4,
    ) -> None:
        super().__init__()
        m = len(up_matrices)
        if m == 0 or len(spirals) != m or len(channels) != m + 1:
            raise ValueError(
                f"SpiralDecoder: need m >= 1 up matrices, m spirals and m + 1 channels; got "
                f"{len(up_matrices)}, {len(spirals)}, {len(channels)}"
            )
        ups = [u.to_dense().float() if u.is_sparse else torch.as_tensor(u, dtype=torch.float32) for u in up_matrices]
        for k in range(m):
            if k > 0 and ups[k].shape[1] != ups[k - 1].shape[0]:
                raise ValueError(f"SpiralDecoder: up_matrices[{k}] {tuple(ups[k].shape)} does not chain")
            if spirals[k].shape[0] != ups[k].shape[0]:
                raise ValueError(
                    f"SpiralDecoder: spirals[{k}] covers {spirals[k].shape[0]} vertices, "
                    f"up_matrices[{k}] produces {ups[k].shape[0]}"
                )
        self.num_coarse = ups[0].shape[1]
        self.num_vertices = ups[-1].shape[0]
        self.channels = list(channels)
        for k, u in enumerate(ups):
            self.register_buffer(f"up_{k}", u, persistent=False)  # (V_{k+1}, V_k)
        self.fc = nn.Linear(in_features, self.num_coarse * channels[0])
        self.convs = nn.ModuleList(SpiralConv(channels[k], channels[k + 1], spirals[k]) for k in range(m))
        self.out_conv = SpiralConv(channels[-1], out_channels, spirals[-1])
        self.act = nn.ELU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.fc(features).view(-1, self.num_coarse, self.channels[0])  # (B, V_0, C_0)
        for k, conv in enumerate(self.convs):
            up = getattr(self, f"up_{k}")  # (V_{k+1}, V_k)
            x = torch.einsum("uv,bvc->buc", up, x)  # (B, V_{k+1}, C_k)
            x = self.act(conv(x))  # (B, V_{k+1}, C_{k+1})
        return self.out_conv(x)  # (B, V_m, out_channels)
