"""Per-image input checks before a batched fit.

Each image is checked on its own so that one bad item never touches the others: bad
items are flagged (``valid = False``) and their inputs are replaced by a harmless
well-posed problem before the solve; the fitter returns the fallback (init / mean face)
for them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["SanitizeConfig", "sanitize_landmarks"]


@dataclass
class SanitizeConfig:
    """Thresholds of :func:`sanitize_landmarks`.

    Attributes:
        min_landmarks: fewer landmarks with confidence > conf_eps make an image invalid.
        conf_eps: confidences at or below this count as missing.
        far_margin: a landmark further than ``far_margin * max(H, W)`` px outside the
            image is dropped (confidence 0).
        min_extent_px: the weighted landmark spread (largest std, px) must exceed this.
        collinear_ratio: the ratio of the smaller to the larger std of the weighted 2D
            landmark cloud must exceed this (else: collinear, pose unobservable).
    """

    min_landmarks: int = 6
    conf_eps: float = 1e-6
    far_margin: float = 1.0
    min_extent_px: float = 0.5
    collinear_ratio: float = 0.02


def sanitize_landmarks(
    landmarks: Tensor, conf: Tensor, image_size: tuple[int, int], cfg: SanitizeConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """Clean landmarks and confidences per image.

    Args:
        landmarks: (B, L, 2) px.
        conf: (B, L) confidences (any real values).
        image_size: (H, W) px.
    Returns:
        landmarks (B, L, 2) finite, conf (B, L) in [0, inf) finite, valid (B,) bool.
        Non-finite landmarks or confidences make the whole image invalid.
    """
    H, W = image_size
    finite_item = torch.isfinite(landmarks).all(-1).all(-1) & torch.isfinite(conf).all(-1)  # (B,)
    lm = torch.nan_to_num(landmarks, nan=0.0, posinf=0.0, neginf=0.0)
    c = torch.nan_to_num(conf, nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0)
    m = cfg.far_margin * max(H, W)
    inside = (lm[..., 0] > -m) & (lm[..., 0] < W + m) & (lm[..., 1] > -m) & (lm[..., 1] < H + m)
    c = torch.where(inside, c, torch.zeros_like(c))
    c = torch.where(c > cfg.conf_eps, c, torch.zeros_like(c))
    enough = (c > 0).sum(-1) >= cfg.min_landmarks
    # weighted 2D spread: collinear or collapsed landmark sets are unobservable
    w = c / c.sum(-1, keepdim=True).clamp_min(1e-12)  # (B, L)
    mean = (w[..., None] * lm).sum(1, keepdim=True)
    d = lm - mean
    cov = torch.einsum("bl,bli,blj->bij", w, d, d)  # (B, 2, 2)
    ev = torch.linalg.eigvalsh(cov.double()).clamp_min(0.0).sqrt()  # (B, 2) ascending stds
    spread_ok = (ev[:, 1] > cfg.min_extent_px) & (ev[:, 0] > cfg.collinear_ratio * ev[:, 1])
    valid = finite_item & enough & spread_ok.to(finite_item.device)
    return lm, c, valid
