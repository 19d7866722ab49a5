"""Test-only stand-in for FLAME/BFM iBUG-68 shapes: the procedural anatomy guides with depth
filled from an ellipsoidal head and random smooth identity deformations (metres, model space)."""

from __future__ import annotations

import numpy as np
import torch

from facemodels.procedural.anatomy import landmark_guides


def synthetic_faces(n: int, seed: int) -> torch.Tensor:
    g = landmark_guides().copy()
    body = 0.095 * np.sqrt(np.clip(1 - (g[:, 0] / 0.078) ** 2 - (g[:, 1] / 0.12) ** 2, 0.05, None))
    g[:, 2] = np.where(np.isnan(g[:, 2]), body, g[:, 2])
    base = torch.as_tensor(g, dtype=torch.float32)  # (68, 3)
    gen = torch.Generator().manual_seed(seed)
    scale = 1 + 0.08 * torch.randn(n, 1, 3, generator=gen)
    x, y = base[:, 0], base[:, 1]
    fields = torch.stack([x * y * 40, x * x * 40, y * y * 40, y], -1)  # (68, 4) smooth fields
    coef = 0.01 * torch.randn(n, 4, 3, generator=gen)
    return base * scale + torch.einsum("lf,nfc->nlc", fields, coef)
