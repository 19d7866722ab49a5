"""Closed-form rigid initialisation: a weighted affine (weak-perspective) camera fitted to
the mean-face landmarks (:func:`facemodels.procrustes.affine_camera`), orthonormalised into a
rotation, depth from the scale.

    y_l - ybar ~ P (X_l - Xbar),  P (2, 3) = s [r1; r2]    (weighted least squares)
    R_cv = [r1; r2; r1 x r2] (nearest orthonormal rows via SVD),  z = f / s
    t = z [(ybar - c) / f, 1] - R_cv Xbar

so the perspective LM starts with the face centred, at the right size and roughly the
right orientation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from facemodels.cameras import model_to_cv_rotation
from facemodels.procrustes import affine_camera
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
    cam = affine_camera(X, y, w)  # y - ybar ~ s R[:2] (X - Xbar)
    R_cv, s, Xbar, ybar = cam.R, cam.scale, cam.points_mean, cam.image_mean  # s: px per metre
    f = 0.5 * (Kd[:, 0, 0] + Kd[:, 1, 1])
    z = f / s.clamp_min(1e-9)
    c = Kd[:, :2, 2]
    t = (
        torch.cat([z[:, None] * (ybar - c) / f[:, None], z[:, None]], 1)
        - (R_cv @ Xbar[..., None])[..., 0]
    )
    rot = matrix_to_axis_angle(model_to_cv_rotation(R_cv))  # diag(1,-1,-1) is its own inverse
    ok = torch.isfinite(rot).all(-1) & torch.isfinite(t).all(-1) & (s > 1e-6) & (z > 0)
    frontal_t = torch.stack(
        [torch.zeros_like(z), torch.zeros_like(z), torch.full_like(z, fallback_depth)], 1
    )
    # the centre of the mean face (in CV axes) on the optical axis
    frontal_t = frontal_t - model_to_cv_rotation(Xbar.nan_to_num()[..., None])[..., 0]
    rot = torch.where(ok[:, None], rot, torch.zeros_like(rot))
    t = torch.where(ok[:, None], t, frontal_t)
    return rot.to(landmarks.dtype), t.to(landmarks.dtype)
