"""Scaled-orthographic (weak-perspective) fit of a 3D shape to 2D landmarks, and depth read-off.

Used to turn a 3D landmark configuration known up to a similarity (the mean face, an
NMDS result) into depths for given 2D image landmarks: fit s, R (proper rotation), t
with x_img = s (R X)_x + t_x, y_img = -(s (R X)_y) + t_y (image y down, model y up),
then z_img = s (R X)_z (positive towards the camera, image-px scale).

The fit alternates the missing depth column with a 3D similarity Procrustes (block
coordinate descent on ||s R X - [u, z]||^2), started from an affine least-squares
solution whose 2x3 part is projected onto orthonormal rows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from facemodels.procrustes import affine_camera, similarity_align


def fit_weak_perspective(model: Tensor, xy_img: Tensor, n_iter: int = 30) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fit a weak-perspective camera of a model-space shape to image landmarks.

    model: (B, L, 3) model space (y up, z out of the face), any unit and position.
    xy_img: (B, L, 2) image px, x right, y down.
    Returns (scale (B,) px per model unit, R (B, 3, 3) proper rotation, t (B, 2) px
    (image frame), z_img (B, L) depth in px, positive towards the camera, zero-mean).
    """
    if model.dim() != 3 or model.shape[-1] != 3 or xy_img.shape != model.shape[:2] + (2,):
        raise ValueError(
            f"fit_weak_perspective: need model (B, L, 3) and xy_img (B, L, 2), got {tuple(model.shape)}, {tuple(xy_img.shape)}"
        )
    u = torch.stack([xy_img[..., 0], -xy_img[..., 1]], -1)  # (B, L, 2) y up
    cam = affine_camera(model, u)  # affine init: u - mu_u ~ s R[:2] (model - mean)
    s, rot = cam.scale, cam.R
    mu_u = cam.image_mean[:, None]  # (B, 1, 2)
    xc = model - cam.points_mean[:, None]
    uc = u - mu_u
    for _ in range(n_iter):
        z = s.view(-1, 1) * (xc @ rot[:, 2].unsqueeze(-1)).squeeze(-1)  # (B, L)
        res = similarity_align(xc, torch.cat([uc, z.unsqueeze(-1)], -1))
        s, rot = res.scale, res.R
    cam = s.view(-1, 1, 1) * xc @ rot.transpose(1, 2)  # (B, L, 3)
    z = cam[..., 2] - cam[..., 2].mean(1, keepdim=True)
    t = torch.stack([mu_u[:, 0, 0], -mu_u[:, 0, 1]], -1)
    return s, rot, t, z


def lift_with_shape(model: Tensor, xy_img: Tensor, n_iter: int = 30) -> Tensor:
    """(B, L, 3) model-space shape + (B, L, 2) image px -> (B, L, 3): x, y as given, z px
    towards the camera from the fitted weak-perspective view of `model`."""
    *_, z = fit_weak_perspective(model, xy_img, n_iter)
    return torch.cat([xy_img, z.unsqueeze(-1)], -1)


def fix_chirality_ibug68(points: Tensor) -> Tensor:
    """Reflect configurations that are mirror images of a face (known up to a similarity
    incl. reflection, e.g. from MDS) so that they are right-handed like model space.

    points: (B, 68, 3) iBUG-68. Uses the sign of (eye_L - eye_R) x (brows - chin) . (nose
    tip - eye/chin centre): positive for model space (x to the subject's left, y up, z out).
    Returns (B, 68, 3) with the last coordinate negated where the sign was negative.
    """
    if points.dim() != 3 or points.shape[1:] != (68, 3):
        raise ValueError(f"fix_chirality_ibug68: need (B, 68, 3), got {tuple(points.shape)}")
    a = points[:, 45] - points[:, 36]
    b = points[:, 17:27].mean(1) - points[:, 8]
    c = points[:, 30] - (points[:, 36] + points[:, 45] + points[:, 8]) / 3
    sign = torch.sign((torch.linalg.cross(a, b, dim=-1) * c).sum(-1))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    flip = torch.ones_like(points)
    flip[..., 2] = sign.view(-1, 1)
    return points * flip
