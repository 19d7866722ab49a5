"""Backbone + head: image (B, 3, H, W) -> per-landmark outputs (B, L, C)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


class LandmarkNet(nn.Module):
    """Composes a feature backbone with a head.

    Args:
        backbone: module with `num_features` mapping (B, 3, H, W) -> (B, F).
        head: an nn.Module, or a callable `head(in_features=F) -> nn.Module` (a Hydra
            `_partial_: true` config), so configs need not repeat each backbone's F.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module | Callable[..., nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        if not isinstance(head, nn.Module):
            head = head(in_features=int(backbone.num_features))
        self.head = head

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(image))
