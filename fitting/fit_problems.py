"""Synthetic fitting problems: random procedural-FLAME faces projected into a crop.

Used by the noise table, the benchmark and the tests. Parameters are drawn from a seeded
generator; landmarks are exact projections (plus optional Gaussian pixel noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .flame_fit import LandmarkFitter
from .reprojection import reprojection

__all__ = ["SyntheticBatch", "make_problems"]


@dataclass
class SyntheticBatch:
    """Ground truth of B problems.

    Attributes:
        landmarks: (B, L, 2) px (noisy if noise_px > 0); clean: (B, L, 2) px.
        vertices: (B, V, 3) model space metres.
        rot, transl (B, 3); coeffs (B, K); pose (B, 3F); K (B, 3, 3).
    """

    landmarks: Tensor
    clean: Tensor
    vertices: Tensor
    rot: Tensor
    transl: Tensor
    coeffs: Tensor
    pose: Tensor
    K: Tensor


def make_problems(
    fitter: LandmarkFitter,
    B: int,
    seed: int = 0,
    noise_px: float = 0.0,
    shape_std: float = 1.0,
    expr_std: float = 0.7,
    yaw_deg: float = 45.0,
    pitch_deg: float = 20.0,
    roll_deg: float = 10.0,
    jaw_open_deg: float = 15.0,
    neck_deg: float = 0.0,
    depth: tuple[float, float] = (0.4, 0.55),
) -> SyntheticBatch:
    """B random faces in the fitter's default camera (float64 ground truth).

    Head rotation uniform in +-(pitch, yaw, roll) (axis-angle of the model rotation), jaw
    opening uniform in [0, jaw_open_deg] about x, neck within +-neck_deg, depth uniform in
    ``depth`` metres, small lateral offsets.
    """
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    model = fitter.lmk
    nK, nS = model.n_coeffs, model.n_shape

    def u(*shape):
        return torch.rand(*shape, generator=g, dtype=dt) * 2 - 1

    rot = u(B, 3) * torch.tensor(
        [math.radians(pitch_deg), math.radians(yaw_deg), math.radians(roll_deg)], dtype=dt
    )
    z = depth[0] + (depth[1] - depth[0]) * torch.rand(B, generator=g, dtype=dt)
    transl = torch.stack([0.01 * u(B), 0.01 * u(B), z], 1)
    coeffs = torch.randn(B, nK, generator=g, dtype=dt)
    coeffs[:, :nS] *= shape_std
    coeffs[:, nS:] *= expr_std
    pose = torch.zeros(B, model.n_pose, dtype=dt)
    if model.n_pose >= 6:
        pose[:, :3] = u(B, 3) * math.radians(neck_deg)
        pose[:, 3] = torch.rand(B, generator=g, dtype=dt) * math.radians(jaw_open_deg)
    K = fitter.config.camera(B, dtype=dt).clone()
    lmk64 = _double(model)
    L = model.n_landmarks
    with torch.no_grad():
        clean = reprojection(
            lmk64,
            rot,
            transl,
            coeffs,
            pose,
            K,
            torch.zeros(B, L, 2, dtype=dt),
            torch.ones(B, L, dtype=dt),
        ).uv
        verts = _double(fitter.full)(coeffs, pose)
    noisy = (
        clean + noise_px * torch.randn(clean.shape, generator=g, dtype=dt)
        if noise_px > 0
        else clean.clone()
    )
    return SyntheticBatch(noisy, clean, verts, rot, transl, coeffs, pose, K)


def _double(module):
    import copy

    return copy.deepcopy(module).double().cpu()
