"""Regression heads: pooled features (B, F) -> per-landmark outputs (B, L, C)."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """Linear(F, (L + E) * C) reshaped to (B, L + E, C).

    C = 4 for (mu_x, mu_y, raw_sigma_x, raw_sigma_y); E = num_extra extra rows (e.g. the 68 sparse
    points the 520-keypoint model also predicts).
    """

    def __init__(self, in_features: int, num_landmarks: int, channels: int = 4, num_extra: int = 0) -> None:
        super().__init__()
        self.num_landmarks, self.channels = num_landmarks + num_extra, channels
        self.fc = nn.Linear(in_features, self.num_landmarks * channels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features).view(-1, self.num_landmarks, self.channels)


class MLPHead(nn.Module):
    """Linear(F, H) - GELU - Dropout - Linear(H, (L + E) * C), reshaped to (B, L + E, C)."""

    def __init__(
        self,
        in_features: int,
        num_landmarks: int,
        channels: int = 4,
        hidden: int = 1024,
        dropout: float = 0.0,
        num_extra: int = 0,
    ) -> None:
        super().__init__()
        self.num_landmarks, self.channels = num_landmarks + num_extra, channels
        self.mlp = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, self.num_landmarks * channels),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).view(-1, self.num_landmarks, self.channels)
