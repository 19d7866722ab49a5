"""Zhao et al. 2016 2D landmark loss: L_local + L_pairs (Eqs. 2 and 4)."""

from __future__ import annotations

import torch
from torch import nn


def local_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_local = l^-1 sum_j ||f_j - o_j||^2, mean over the batch. pred, target (B, l, 2)."""
    return ((pred - target) ** 2).sum(-1).mean()


def pairs_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_pairs = 2 / (l (l + 1)) sum_{j<k} (||f_j - f_k|| - ||o_j - o_k||)^2, mean over the batch.

    pred, target (B, l, 2). The normaliser is the paper's 2/(l(l+1)) (not 1 / #pairs).
    """
    n = pred.shape[1]
    j, k = torch.triu_indices(n, n, offset=1, device=pred.device)
    # (B, P) pair distances; the 1e-12 keeps the gradient finite for coincident points
    d_pred = ((pred[:, j] - pred[:, k]) ** 2).sum(-1).add(1e-12).sqrt()
    d_gt = ((target[:, j] - target[:, k]) ** 2).sum(-1).add(1e-12).sqrt()
    return (2.0 / (n * (n + 1))) * ((d_pred - d_gt) ** 2).sum(-1).mean()


class ZhaoPairsLoss(nn.Module):
    """L = L_local + lambda_pairs * L_pairs on (B, l, 2) landmarks (any consistent unit)."""

    def __init__(self, lambda_pairs: float = 1.0) -> None:
        super().__init__()
        self.lambda_pairs = lambda_pairs

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return local_loss(pred, target) + self.lambda_pairs * pairs_loss(pred, target)
