"""SO(3) helpers the analytic Jacobians need (axis-angle, radians)."""

from __future__ import annotations

import torch
from torch import Tensor

from facemodels.rotations import hat

__all__ = ["so3_right_jacobian"]

_SMALL = 1e-6


def so3_right_jacobian(w: Tensor) -> Tensor:
    """Right Jacobian of SO(3) at axis-angle w (B, 3) -> (B, 3, 3).

    ``J_r = I - (1 - cos t)/t^2 [w]x + (t - sin t)/t^3 [w]x^2`` (Taylor series near 0), so that
    ``d(R(w) v)/dw = -R(w) [v]x J_r(w)``.
    """
    t2 = (w * w).sum(-1)
    small = t2 < _SMALL
    t2s = torch.where(small, torch.ones_like(t2), t2)
    t = torch.sqrt(t2s)
    b = torch.where(small, 0.5 - t2 / 24.0, (1.0 - torch.cos(t)) / t2s)
    c = torch.where(small, 1.0 / 6.0 - t2 / 120.0, (t - torch.sin(t)) / (t2s * t))
    Kx = hat(w)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(Kx)
    return eye - b[:, None, None] * Kx + c[:, None, None] * (Kx @ Kx)
