"""Landmark overlay pictures: predicted landmarks coloured by confidence on the input crops.

Plain numpy / PIL (no Lightning), so scripts (predict, reports) can use it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def denormalize(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) ImageNet-normalised float -> (H, W, 3) uint8."""
    img = image.detach().float().cpu().permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN
    return (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)


def confidence_colour(c: float) -> tuple[int, int, int]:
    """Confidence in [0, 1] -> RGB from red (0, unsure) through yellow to green (1, sure)."""
    c = float(np.clip(c, 0.0, 1.0))
    return (int(255 * min(1.0, 2 * (1 - c))), int(255 * min(1.0, 2 * c)), 0)


def draw_landmark_overlay(
    image: torch.Tensor,
    landmarks_px: torch.Tensor,
    confidences: torch.Tensor | None = None,
    target_px: torch.Tensor | None = None,
    min_size: int = 256,
) -> np.ndarray:
    """One overlay picture (S, S, 3) uint8, upscaled so the short side is at least `min_size`.

    image (3, H, W) normalised; landmarks_px (L, 2) crop px; confidences (L,) in [0, 1] (None:
    drawn green); target_px (L, 2) optional ground truth drawn as small white dots underneath.
    """
    rgb = denormalize(image)
    h, w = rgb.shape[:2]
    scale = max(1.0, min_size / min(h, w))
    pil = Image.fromarray(rgb).resize((round(w * scale), round(h * scale)), Image.BILINEAR)
    draw = ImageDraw.Draw(pil)
    lmk = landmarks_px.detach().float().cpu().numpy() * scale
    conf = np.ones(len(lmk)) if confidences is None else confidences.detach().float().cpu().numpy()
    r = 1.5 if len(lmk) > 200 else 2.5
    if target_px is not None:
        for x, y in target_px.detach().float().cpu().numpy() * scale:
            draw.ellipse([x - 1, y - 1, x + 1, y + 1], fill=(255, 255, 255))
    for (x, y), c in zip(lmk, conf, strict=True):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=confidence_colour(c))
    return np.asarray(pil)


def overlay_grid(pictures: list[np.ndarray]) -> np.ndarray:
    """Pictures (S, S, 3) side by side -> (S, N S, 3) uint8 (heights must agree)."""
    if not pictures:
        raise ValueError("overlay_grid: no pictures")
    return np.concatenate(pictures, axis=1)


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Writes an (H, W, 3) uint8 array as PNG, creating the folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(path)
    return path
