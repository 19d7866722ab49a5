"""Zhao et al. 2016 2D landmark CNN: 4 conv layers (normalisation, dropout, ReLU), 2 max-pools, 2 FC."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(c_in: int, c_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
    )


class ZhaoCNN(nn.Module):
    """image (B, 3, H, W) -> landmarks (B, l, 2) in normalised crop coords [-0.5, 0.5].

    conv1 - conv2 - maxpool - conv3 - conv4 - maxpool - FC(hidden) - ReLU - Dropout - FC(2 l).
    The paper does not give widths, strides or the input size; defaults: widths 32/64/128/128,
    the first conv with stride 2, and an adaptive average pool to `pool_to` x `pool_to` before
    the first FC so its size does not grow with the input resolution (a choice, documented).
    """

    def __init__(
        self,
        num_landmarks: int = 68,
        widths: tuple[int, int, int, int] = (32, 64, 128, 128),
        fc_hidden: int = 512,
        dropout: float = 0.1,
        fc_dropout: float = 0.3,
        pool_to: int = 8,
    ) -> None:
        super().__init__()
        self.num_landmarks = num_landmarks
        w1, w2, w3, w4 = widths
        stem = _conv_block(3, w1, dropout)
        stem[0].stride = (2, 2)
        self.features = nn.Sequential(
            stem,
            _conv_block(w1, w2, dropout),
            nn.MaxPool2d(2),
            _conv_block(w2, w3, dropout),
            _conv_block(w3, w4, dropout),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(pool_to),
        )
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Linear(w4 * pool_to * pool_to, fc_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(fc_dropout),
            nn.Linear(fc_hidden, 2 * num_landmarks),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(image)).view(-1, self.num_landmarks, 2)
