"""Closed-form rigid initialisation: a weighted affine (weak-perspective) camera fitted to
the mean-face landmarks, orthonormalised into a rotation, depth from the scale.

    y_l - ybar ~ P (X_l - Xbar),  P (2, 3) = s [r1; r2]    (weighted least squares)
    R_cv = [r1; r2; r1 x r2] (nearest orthonormal rows via SVD),  z = f / s
    t = z [(ybar - c) / f, 1] - R_cv Xbar

so the perspective LM starts with the face centred, at the right size and roughly the
right orientation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from facemodels.rotations import matrix_to_axis_angle

__all__ = ["rigid_init"]


def rigid_init(
    points: Tensor, landmarks: Tensor, conf: Tensor, K: Tensor, fallback_depth: float = 0.6
) -> tuple[Tensor, Tensor]:
    """Initial head rotation and translation.

    Args:
        points: (L, 3) or (B, L, 3) mean-face landmarks in model space, metres.
        landmarks: (B, L, 2) px.  conf: (B, L) >= 0.  K: (B, 3, 3) px.
        fallback_depth: metres, used where the affine fit is degenerate.
    Returns:
        rot (B, 3) model-space axis-angle (camera R = diag(1,-1,-1) R(rot)), transl (B, 3) metres.
        Finite for every input; degenerate items get a frontal face at ``fallback_depth``.
    """
    B = landmarks.shape[0]
    X = points.expand(B, -1, -1) if points.dim() == 2 else points
    dt = torch.float64  # tiny 3x3 problems: do them in double
    X, y, w, Kd = X.to(dt), landmarks.to(dt), conf.to(dt), K.to(dt)
    wn = w / w.sum(-1, keepdim=True).clamp_min(1e-12)  # (B, L)
    Xbar = (wn[..., None] * X).sum(1)  # (B, 3)
    ybar = (wn[..., None] * y).sum(1)  # (B, 2)
    Xc, yc = X - Xbar[:, None], y - ybar[:, None]
    A = torch.einsum("bl,bli,blj->bij", wn, Xc, Xc)  # (B, 3, 3)
    rhs = torch.einsum("bl,bli,blj->bij", wn, Xc, yc)  # (B, 3, 2)
    ridge = 1e-9 * A.diagonal(dim1=1, dim2=2).sum(-1).clamp_min(1e-12)
    A = A + ridge[:, None, None] * torch.eye(3, dtype=dt, device=A.device)
    P = torch.linalg.solve(A, rhs).transpose(1, 2)  # (B, 2, 3)
    U, S, Vh = torch.linalg.svd(P, full_matrices=False)  # (B,2,2), (B,2), (B,2,3)
    rows = U @ Vh  # (B, 2, 3) orthonormal rows
    r3 = torch.linalg.cross(rows[:, 0], rows[:, 1])
    R_cv = torch.cat([rows, r3[:, None]], 1)  # (B, 3, 3), det +1
    s = S.mean(-1)  # px per metre
    f = 0.5 * (Kd[:, 0, 0] + Kd[:, 1, 1])
    z = f / s.clamp_min(1e-9)
    c = Kd[:, :2, 2]
    t = (
        torch.cat([z[:, None] * (ybar - c) / f[:, None], z[:, None]], 1)
        - (R_cv @ Xbar[..., None])[..., 0]
    )
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=dt, device=A.device)
    rot = matrix_to_axis_angle(flip[:, None] * R_cv)
    ok = torch.isfinite(rot).all(-1) & torch.isfinite(t).all(-1) & (s > 1e-6) & (z > 0)
    frontal_t = torch.stack(
        [torch.zeros_like(z), torch.zeros_like(z), torch.full_like(z, fallback_depth)], 1
    )
    frontal_t = frontal_t - Xbar.nan_to_num() * flip  # centre of the mean face on the optical axis
    rot = torch.where(ok[:, None], rot, torch.zeros_like(rot))
    t = torch.where(ok[:, None], t, frontal_t)
    return rot.to(landmarks.dtype), t.to(landmarks.dtype)
