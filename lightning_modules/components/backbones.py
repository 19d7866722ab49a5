"""timm image backbones returning one pooled feature vector per image (num_classes=0)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn


class TimmBackbone(nn.Module):
    """A timm model with its classifier removed: image (B, 3, H, W) -> features (B, num_features).

    Args:
        name: any timm model name (resnet50, convnext_tiny, swin_tiny_patch4_window7_224,
            mobilenetv3_large_100, mobilenetv2_100, resnet18, or tiny `test_*` models).
        pretrained_path: optional local weight file (.pth/.pt/.safetensors state dict); nothing is
            ever downloaded. Classifier weights in the file are ignored.
        img_size: input size for models with a fixed patch grid (Swin); None keeps timm's default.
        **kwargs: passed to `timm.create_model` (None values are dropped so timm defaults apply).

    `num_features` is the length of the output vector (timm's head_hidden_size when the model has
    a pre-logits layer, e.g. MobileNetV3's 1280, else num_features).
    """

    def __init__(
        self,
        name: str,
        pretrained_path: str | None = None,
        img_size: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        if not timm.is_model(name):
            raise ValueError(f"TimmBackbone: unknown timm model name {name!r}")
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        if img_size is not None:
            kwargs["img_size"] = img_size
        self.model = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
        self.name = name
        self.num_features = int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)
        if pretrained_path:
            self.load_pretrained(pretrained_path)

    def load_pretrained(self, path: str | Path) -> None:
        """Loads a local state dict, skipping classifier keys; raises naming missing keys."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"TimmBackbone({self.name}): pretrained_path {path} is not a file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("state_dict", "model"):
                if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                    state = state[key]
        classifier = self.model.default_cfg.get("classifier", "fc")
        state = {k: v for k, v in state.items() if not k.startswith(f"{classifier}.")}
        missing, _ = self.model.load_state_dict(state, strict=False)
        if missing:
            raise KeyError(f"TimmBackbone({self.name}): {path} lacks weights for {missing[:5]}...")

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)
