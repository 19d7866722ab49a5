"""Small LBS models and fitting problems generated in the tests (not a package module)."""

from __future__ import annotations

import math

import numpy as np
import torch

from facemodels.cameras import default_focal, intrinsics
from fitting.landmark_model import LBSArrays


def tiny_lbs(
    n_vertices: int = 300,
    n_shape: int = 8,
    n_expr: int = 6,
    seed: int = 0,
    pose_scale: float = 1e-3,
) -> LBSArrays:
    """A random head-sized LBS model: 4 joints, chain root -> neck -> (jaw, eye).

    Template: an ellipsoid cap facing +z (metres, ~0.16 m wide); blendshapes: orthonormal
    directions scaled to a few mm; skinning weights: smooth in y so the lower part follows
    the jaw; random pose correctives.
    """
    g = np.random.default_rng(seed)
    theta = g.uniform(-1.2, 1.2, n_vertices)
    phi = g.uniform(-1.0, 1.0, n_vertices)
    tmpl = np.stack(
        [
            0.08 * np.sin(theta) * np.cos(phi),
            0.11 * np.sin(phi),
            0.09 * np.cos(theta) * np.cos(phi),
        ],
        1,
    )
    K = n_shape + n_expr
    q, _ = np.linalg.qr(g.normal(size=(3 * n_vertices, K)))
    dirs = (q * 0.004 * math.sqrt(n_vertices)).reshape(n_vertices, 3, K) / math.sqrt(3)
    nj = 4
    parents = np.array([-1, 0, 1, 1])
    w_jaw = 1.0 / (1.0 + np.exp((tmpl[:, 1] + 0.03) / 0.01))
    w_eye = 0.2 * np.exp(-((tmpl[:, 1] - 0.03) ** 2) / 0.0005)
    w_root = 0.1 * np.ones(n_vertices)
    w_neck = np.clip(1.0 - w_jaw - w_eye - w_root, 0.0, None)
    weights = np.stack([w_root, w_neck, w_jaw, w_eye], 1)
    weights /= weights.sum(1, keepdims=True)
    jreg = np.zeros((nj, n_vertices))
    for j, sel in enumerate(
        [
            tmpl[:, 1] < -0.09,
            np.abs(tmpl[:, 1] + 0.06) < 0.02,
            tmpl[:, 1] < -0.04,
            np.abs(tmpl[:, 1] - 0.03) < 0.02,
        ]
    ):
        idx = np.nonzero(sel)[0] if sel.any() else np.arange(n_vertices)
        jreg[j, idx] = 1.0 / len(idx)
    posedirs = g.normal(size=(n_vertices, 3, 9 * (nj - 1))) * pose_scale
    return LBSArrays(
        v_template=tmpl,
        shapedirs=dirs[:, :, :n_shape],
        exprdirs=dirs[:, :, n_shape:],
        posedirs=posedirs,
        J_regressor=jreg,
        weights=weights,
        parents=parents,
        faces=None,
    )


def random_params(
    B: int,
    n_coeffs: int,
    n_pose: int,
    seed: int,
    dtype=torch.float64,
    coeff_scale=1.0,
    yaw_deg=30.0,
):
    """Random rot (B,3), transl (B,3), coeffs (B,K), pose (B,3F) for a face ~0.6 m away."""
    g = torch.Generator().manual_seed(seed)
    rot = (torch.rand(B, 3, generator=g, dtype=dtype) * 2 - 1) * torch.tensor(
        [0.3, math.radians(yaw_deg), 0.2], dtype=dtype
    )
    transl = torch.stack(
        [
            (torch.rand(B, generator=g, dtype=dtype) - 0.5) * 0.04,
            (torch.rand(B, generator=g, dtype=dtype) - 0.5) * 0.04,
            0.55 + 0.1 * torch.rand(B, generator=g, dtype=dtype),
        ],
        1,
    )
    coeffs = torch.randn(B, n_coeffs, generator=g, dtype=dtype) * coeff_scale
    pose = (torch.rand(B, n_pose, generator=g, dtype=dtype) * 2 - 1) * 0.1
    return rot, transl, coeffs, pose


def default_K(B: int, H: int = 256, W: int = 256, dtype=torch.float64) -> torch.Tensor:
    return intrinsics(default_focal(H, W), W / 2, H / 2).to(dtype).expand(B, 3, 3).clone()


def project_ground_truth(arrays, idx, B: int, seed: int):
    """Random ground-truth parameters of `arrays` and their landmarks `idx` projected with default_K.

    -> (uv (B, L, 2) px float64, gt LandmarkLBS, (rot, transl, coeffs, pose)).
    """
    from fitting.landmark_model import LandmarkLBS, LandmarkSelection
    from fitting.reprojection import reprojection

    gt = LandmarkLBS(arrays, LandmarkSelection(vertex_idx=idx), (1, 2), torch.float64)
    rot, transl, coeffs, pose = random_params(B, gt.n_coeffs, gt.n_pose, seed=seed)
    L = gt.n_landmarks
    zeros = torch.zeros(B, L, 2, dtype=torch.float64)
    ones = torch.ones(B, L, dtype=torch.float64)
    uv = reprojection(gt, rot, transl, coeffs, pose, default_K(B), zeros, ones).uv
    return uv, gt, (rot, transl, coeffs, pose)
