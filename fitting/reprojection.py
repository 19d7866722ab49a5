"""The landmark re-projection residual and its analytic Jacobians (pure torch).

Parameters of one image (all batched):
    rot    (B, 3)  axis-angle of the head rotation in model space, radians; the camera
                   rotation is ``R = diag(1, -1, -1) @ R(rot)`` (docs/ARCHITECTURE.md)
    transl (B, 3)  camera-frame translation, metres: ``X_cam = R X + transl``
    coeffs (B, K)  [shape, expression]
    pose   (B, 3F) free-joint axis-angles (FLAME: neck, jaw), radians

Residual (B, 2L), interleaved (x0, y0, x1, y1, ...)::

    e_l = c_l * (Pi(K, R v_l + transl) - y_l)         px

so that ``0.5 * ||e||^2`` is the thesis' ``0.5 * ||C r||^2`` (eq. 3.40).
"""

from __future__ import annotations

import torch
from torch import Tensor

from facemodels.cameras import model_to_cv_rotation
from facemodels.rotations import axis_angle_to_matrix

from .so3 import so3_right_jacobian

__all__ = [
    "camera_rotation",
    "so3_right_jacobian",
    "project",
    "ReprojectionTerms",
    "reprojection",
    "reprojection_normal",
]


def camera_rotation(rot: Tensor) -> Tensor:
    """(B, 3) model-space axis-angle -> (B, 3, 3) CV camera rotation ``diag(1,-1,-1) R(rot)``."""
    return model_to_cv_rotation(axis_angle_to_matrix(rot))


def project(points_cam: Tensor, K: Tensor) -> Tensor:
    """Pinhole projection. points_cam (B, N, 3) metres, K (B, 3, 3) px -> (B, N, 2) px."""
    z = points_cam[..., 2]
    u = (
        K[:, 0, 0, None] * points_cam[..., 0] / z
        + K[:, 0, 1, None] * points_cam[..., 1] / z
        + K[:, 0, 2, None]
    )
    v = K[:, 1, 1, None] * points_cam[..., 1] / z + K[:, 1, 2, None]
    return torch.stack([u, v], -1)


class ReprojectionTerms:
    """Residual and Jacobian blocks of one evaluation (see :func:`reprojection`).

    Attributes:
        error: (B, 2L) weighted residual, px.
        uv: (B, L, 2) projected landmarks, px.
        J: dict name -> (B, 2L, dof) for the requested variables among
           'rot' (3), 'transl' (3), 'coeffs' (K), 'pose' (3F).
    """

    def __init__(self, error: Tensor, uv: Tensor, J: dict[str, Tensor]):
        self.error, self.uv, self.J = error, uv, J


def _front(model, rot, transl, coeffs, pose, K, target, conf, with_derivatives: bool):
    """Points, projection and residual; with the projection's derivative when asked."""
    B = rot.shape[0]
    v, st = model.evaluate(coeffs, pose)  # (B, L, 3) model space
    R = camera_rotation(rot)  # (B, 3, 3)
    p = v @ R.transpose(1, 2) + transl[:, None, :]  # (B, L, 3) camera frame
    uv = project(p, K)
    error = (conf[..., None] * (uv - target)).reshape(B, -1)
    if not with_derivatives:
        return v, st, R, uv, error, None
    x, y, z = p.unbind(-1)
    iz = 1.0 / z
    fx, fy, s = K[:, 0, 0, None], K[:, 1, 1, None], K[:, 0, 1, None]
    zero = torch.zeros_like(z)
    # d uv / d p, weighted by the confidence: (B, L, 2, 3)
    row_u = torch.stack([fx * iz, s * iz, -(fx * x + s * y) * iz * iz], -1)
    row_v = torch.stack([zero, fy * iz, -fy * y * iz * iz], -1)
    dpi = torch.stack([row_u, row_v], -2) * conf[..., None, None]
    return v, st, R, uv, error, dpi


def _small_jacobians(model, rot, v, st, R, dpi, wrt) -> tuple[dict[str, Tensor], Tensor]:
    """d error / d rot, transl, pose (those in ``wrt``), each (B, 2L, dof), and d uv / d point
    (B, L, 2, 3)."""
    B, L = v.shape[:2]
    J: dict[str, Tensor] = {}
    if "transl" in wrt:
        J["transl"] = dpi.reshape(B, 2 * L, 3)
    dpiR = dpi @ R[:, None]  # (B, L, 2, 3): d uv / d (model-space point)
    if "rot" in wrt:
        # d(R(w) v)/dw = -R [v]x J_r(w)  and  m^T [v]x = (m x v)^T
        Jr = so3_right_jacobian(rot)  # (B, 3, 3)
        m0, m1, m2 = dpiR.unbind(-1)  # (B, L, 2) each; rows = -(m x v), written out
        v0, v1, v2 = (c[..., None] for c in v.unbind(-1))  # (B, L, 1)
        rows = torch.stack([m2 * v1 - m1 * v2, m0 * v2 - m2 * v0, m1 * v0 - m0 * v1], -1)
        J["rot"] = rows.reshape(B, 2 * L, 3) @ Jr
    if "pose" in wrt:
        J["pose"] = model.contract(dpiR, st, False, True)[1].reshape(B, 2 * L, -1)
    return J, dpiR


def reprojection(
    model,
    rot: Tensor,
    transl: Tensor,
    coeffs: Tensor,
    pose: Tensor,
    K: Tensor,
    target: Tensor,
    conf: Tensor,
    wrt: tuple[str, ...] = (),
) -> ReprojectionTerms:
    """Weighted re-projection residual and (optionally) its Jacobians.

    Args:
        model: a :class:`fitting.landmark_model.LandmarkLBS` (or anything with its
            ``evaluate`` / ``contract`` methods).
        rot, transl, coeffs, pose: parameters (see module doc).
        K: (B, 3, 3) intrinsics, px.
        target: (B, L, 2) landmarks, px.
        conf: (B, L) confidences (weights, >= 0).
        wrt: variable names to differentiate with respect to.
    """
    B = rot.shape[0]
    v, st, R, uv, error, dpi = _front(model, rot, transl, coeffs, pose, K, target, conf, bool(wrt))
    J: dict[str, Tensor] = {}
    if wrt:
        small, dpiR = _small_jacobians(model, rot, v, st, R, dpi, wrt)
        if "coeffs" in wrt:
            J["coeffs"] = model.contract(dpiR, st, True, False)[0].reshape(B, 2 * v.shape[1], -1)
        J.update(small)
    return ReprojectionTerms(error, uv, J)


def reprojection_normal(
    model,
    rot: Tensor,
    transl: Tensor,
    coeffs: Tensor,
    pose: Tensor,
    K: Tensor,
    target: Tensor,
    conf: Tensor,
    wrt: tuple[str, ...],
) -> tuple[Tensor, Tensor, Tensor]:
    """Gauss-Newton normal equations of the residual, without the stacked Jacobian.

    With J = d error / d [wrt] (columns in ``wrt`` order, B x 2L x n) and e the error, returns
    ``J^T J`` (B, n, n), ``-J^T e`` (B, n) (Theseus' ``A^T b``, b = -e) and e (B, 2L). The
    coefficient block comes from :meth:`LandmarkLBS.coeff_normal` (the linear basis
    structure; one pass over the only large Jacobian); the small blocks (rot, transl,
    pose: 3 to 12 columns) and the residual ride along as extra columns.
    Same numbers as ``reprojection(..., wrt)`` then ``J^T J``, ``-J^T e``.
    """
    if not wrt:
        raise ValueError("reprojection_normal: wrt must name at least one variable")
    v, st, R, uv, error, dpi = _front(model, rot, transl, coeffs, pose, K, target, conf, True)
    small, dpiR = _small_jacobians(model, rot, v, st, R, dpi, wrt)
    names = [n for n in wrt if n != "coeffs"]
    Y = torch.cat([small[n] for n in names] + [error[..., None]], -1)  # (B, 2L, s + 1)
    s = Y.shape[2] - 1
    sl, o = {}, 0
    for n in names:
        sl[n] = slice(o, o + small[n].shape[2])
        o += small[n].shape[2]
    if "coeffs" in wrt:
        CC, CY, YY = model.coeff_normal(dpiR, st, Y)
    else:
        YY = Y.transpose(1, 2) @ Y

    def block(a: str, b: str) -> Tensor:
        if a == "coeffs":
            return CC if b == "coeffs" else CY[:, :, sl[b]]
        return CY[:, :, sl[a]].transpose(1, 2) if b == "coeffs" else YY[:, sl[a], sl[b]]

    H = torch.cat([torch.cat([block(a, b) for b in wrt], 2) for a in wrt], 1)  # (B, n, n)
    g = torch.cat([CY[:, :, s] if a == "coeffs" else YY[:, sl[a], s] for a in wrt], 1)
    return H, -g, error
