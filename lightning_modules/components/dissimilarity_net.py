"""Deep-MDS symmetric dissimilarity network: a pair of 2D landmarks -> their 3D distance."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def pair_features(p: Tensor, q: Tensor) -> Tensor:
    """Symmetric pair encoding of the paper (Eq. 6).

    p, q: (..., 2) 2D points. Returns (..., 6) = [|xp-xq|, |yp-yq|, xp xq, yp yq,
    exp(-|xp-xq|), exp(-|yp-yq|)]; swapping p and q leaves it unchanged.
    """
    ad = (p - q).abs()
    return torch.cat([ad, p * q, torch.exp(-ad)], dim=-1)


class DissimilarityNet(nn.Module):
    """Five equal-width layers with one additive skip connection, then a linear output.

    Input (..., 6) pair features; output (...,) estimated 3D distance (non-negative via
    softplus). With width 24 it has 2,593 parameters (< 3000, as the paper requires).
    The skip adds the first hidden layer's output to the fourth's input.

    output: "distance" (the net's output is the distance) or "depth" (the net's output is the
    pair's depth difference |dz| and the distance is sqrt(|dx|^2 + |dy|^2 + dz^2) with |dx|, |dy|
    the first two pair features: in an orthographic canonical view the in-plane part of the 3D
    distance is known, only the depth part has to be learned). Same parameters either way.

    activation: "elu", "silu" or "tanh" (the paper does not name one).
    normalise: standardise the 6 pair features before the first layer with a fixed per-feature
    mean and std (buffers `feature_mean`, `feature_std` (6,), saved in checkpoints), taken from the
    features of the first forward pass in training mode and frozen from then on (no trainable
    parameters; until then the identity). The raw features span very different ranges (x_i x_j up to
    ~16 from the corner origin, exp(-|dx|) in (0, 1]), which slows Adam down.
    """

    ACTIVATIONS = {"elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh}

    def __init__(self, width: int = 24, n_layers: int = 5, skip_from: int = 1, skip_to: int = 4,
                 output: str = "distance", activation: str = "elu", normalise: bool = False) -> None:
        super().__init__()
        if activation not in self.ACTIVATIONS:
            raise ValueError(f"DissimilarityNet: activation must be one of {sorted(self.ACTIVATIONS)}, got {activation!r}")
        if not 1 <= skip_from < skip_to <= n_layers:
            raise ValueError(f"DissimilarityNet: need 1 <= skip_from < skip_to <= n_layers, got {skip_from}, {skip_to}, {n_layers}")
        if output not in ("distance", "depth"):
            raise ValueError(f"DissimilarityNet: output must be 'distance' or 'depth', got {output!r}")
        self.output = output
        self.layers = nn.ModuleList([nn.Linear(6 if k == 0 else width, width) for k in range(n_layers)])
        self.out = nn.Linear(width, 1)
        self.act = self.ACTIVATIONS[activation]()
        self.skip_from, self.skip_to = skip_from, skip_to
        self.normalise = normalise
        self.register_buffer("feature_mean", torch.zeros(6))
        self.register_buffer("feature_std", torch.ones(6))
        self.register_buffer("feature_stats_set", torch.zeros((), dtype=torch.bool))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        """Checkpoints written before the feature statistics existed load as 'not set' (identity)."""
        unset = {"feature_mean": torch.zeros_like(self.feature_mean), "feature_std": torch.ones_like(self.feature_std),
                 "feature_stats_set": torch.zeros_like(self.feature_stats_set)}
        for name, value in unset.items():
            state_dict.setdefault(prefix + name, value)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _standardise(self, feats: Tensor) -> Tensor:
        """(..., 6) -> (..., 6) standardised with the frozen feature statistics (set on the first
        training-mode call)."""
        if self.training and not bool(self.feature_stats_set):
            flat = feats.detach().reshape(-1, 6)
            if flat.shape[0] < 2:
                raise ValueError(f"DissimilarityNet: need >= 2 pairs to set the feature statistics, got {flat.shape[0]}")
            self.feature_mean.copy_(flat.mean(0))
            self.feature_std.copy_(flat.std(0).clamp_min(1e-6))
            self.feature_stats_set.fill_(True)
        return (feats - self.feature_mean.to(feats.dtype)) / self.feature_std.to(feats.dtype)

    def forward(self, feats: Tensor) -> Tensor:
        """feats: (..., 6) -> (...,) distance."""
        h = self._standardise(feats) if self.normalise else feats
        saved = None
        for k, layer in enumerate(self.layers, start=1):
            if k == self.skip_to and saved is not None:
                h = h + saved
            h = self.act(layer(h))
            if k == self.skip_from:
                saved = h
        out = nn.functional.softplus(self.out(h)).squeeze(-1)
        if self.output == "depth":
            return (feats[..., 0] ** 2 + feats[..., 1] ** 2 + out**2).clamp_min(1e-12).sqrt()
        return out

    def matrix(self, xy: Tensor) -> Tensor:
        """All-pairs dissimilarity matrix. xy: (B, n, 2) -> (B, n, n), symmetric, zero diagonal."""
        n = xy.shape[1]
        iu = torch.triu_indices(n, n, offset=1, device=xy.device)
        d = self.forward(pair_features(xy[:, iu[0]], xy[:, iu[1]]))  # (B, m)
        out = xy.new_zeros(xy.shape[0], n, n)
        out[:, iu[0], iu[1]] = d
        out[:, iu[1], iu[0]] = d
        return out


class DeepMDSNet(nn.Module):
    """The two trainable parts of Deep-MDS: a view auto-encoder and a dissimilarity net.

    The framework's parameter count is printed by `n_parameters()` (the paper: 27,505 for
    72 landmarks; ours for 68 landmarks with the default widths: 27,097).
    """

    def __init__(self, autoencoder: nn.Module, dissimilarity: DissimilarityNet) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.dissimilarity = dissimilarity

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def forward(self, xy_std: Tensor) -> tuple[Tensor, Tensor]:
        """(B, n, 2) standardised input view -> (canonical view (B, n, 2), dissimilarities (B, n, n))."""
        canon = self.autoencoder(xy_std)
        return canon, self.dissimilarity.matrix(canon)
