"""Cameras: pinhole (computer-vision convention), orthographic, weak perspective, and the
OpenGL-style model-view / projection pair that DAD-3DHeads stores.

Conventions (docs/ARCHITECTURE.md):
- model space (FLAME): metres, y up, z out of the face, x towards the subject's left;
- camera frame (CV): x right, y down, z forward into the scene; a point in front of the
  camera has positive depth z;
- a camera is (K, R, t) with ``X_cam = R @ X_model + t`` and ``u = K @ X_cam / z``;
  a frontal camera has ``R = diag(1, -1, -1)`` (see :func:`model_to_cv_rotation`);
- pixels: origin top-left, x right, y down, a pixel (i, j) sits at x = j, y = i.

DAD-3DHeads (FORMATS.md, and its reference loader ``FlameDataset._project_vertices_onto_image``):
``v_world = MV @ [v, 1]``; ``p = P @ v_world``; ``xy = p[:2] / p[3]``; ``y_img = H - y``.
The projection matrix already holds the viewport (the loader applies no NDC-to-pixel step),
so ``p[:2] / p[3]`` is in pixels with y up. The OpenGL camera frame is x right, y up,
z backwards (the camera looks down -z), so ``MV = diag(1, -1, -1, 1) @ [[R, t], [0, 1]]``.
For projection matrices that map to normalised device coordinates instead, pass
``ndc=True``: then ``x_px = (x_ndc + 1) W / 2`` and ``y_px = H - (y_ndc + 1) H / 2``
(the standard OpenGL viewport transform followed by the same y flip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

Tensor = torch.Tensor
Tuple2 = tuple[torch.Tensor, torch.Tensor]

#: diag(1, -1, -1): flips FLAME model axes (y up, z to the camera) into CV camera axes.
CV_FROM_GL = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def _check(name: str, x: Tensor, shape: tuple[int | None, ...]) -> None:
    """Raise a ValueError naming ``name`` when ``x`` does not match ``shape`` (None = any)."""
    ok = x.dim() == len(shape) and all(
        s is None or s == d for s, d in zip(shape, x.shape, strict=False)
    )
    if not ok:
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"facemodels.cameras: {name} must have shape {want}, got {tuple(x.shape)}")


def default_focal(H: int, W: int) -> float:
    """Default focal length in pixels, ``sqrt(H^2 + W^2)`` (about a 53 degree diagonal field of view)."""
    return math.sqrt(H * H + W * W)


def intrinsics(f: Tensor | float, cx: Tensor | float, cy: Tensor | float) -> Tensor:
    """Pinhole intrinsics ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``.

    Args:
        f, cx, cy: scalars or (B,) tensors, pixels.
    Returns:
        (3, 3) for scalar input, else (B, 3, 3), float32 unless a tensor input has another dtype.
    """
    f, cx, cy = (torch.as_tensor(v) for v in (f, cx, cy))
    dtype = f.dtype if f.is_floating_point() else torch.float32
    f, cx, cy = torch.broadcast_tensors(f.to(dtype), cx.to(dtype), cy.to(dtype))
    K = torch.zeros(*f.shape, 3, 3, dtype=dtype, device=f.device)
    K[..., 0, 0] = f
    K[..., 1, 1] = f
    K[..., 0, 2] = cx
    K[..., 1, 2] = cy
    K[..., 2, 2] = 1.0
    return K


def model_to_cv_rotation(R_model: Tensor) -> Tensor:
    """``diag(1, -1, -1) @ R_model``: a head rotation in model space -> the CV camera rotation.

    Args:
        R_model: (..., 3, 3) rotation of the head as seen from a frontal camera (or any
            (..., 3, k): columns of model-space vectors).
    Returns:
        (..., 3, 3) R for ``X_cam = R X + t``.

    Rows 2 and 3 are negated rather than multiplied by a constant: moving a constant to a GPU
    on every call is a host -> device copy that synchronises (2.6 per LM iteration of the fit,
    measured on an H200).
    """
    return torch.cat((R_model[..., :1, :], -R_model[..., 1:, :]), dim=-2)


def transform_points(points: Tensor, R: Tensor, t: Tensor) -> Tensor:
    """``R @ p + t`` for every point.

    Args:
        points: (B, N, 3) model space, metres.  R: (B, 3, 3).  t: (B, 3) metres.
    Returns:
        (B, N, 3) camera frame, metres.
    """
    _check("points", points, (None, None, 3))
    _check("R", R, (points.shape[0], 3, 3))
    _check("t", t, (points.shape[0], 3))
    return points @ R.transpose(1, 2) + t[:, None, :]


def project_perspective(points: Tensor, R: Tensor, t: Tensor, K: Tensor) -> tuple[Tensor, Tensor]:
    """Pinhole projection ``u = K (R p + t) / z``.

    Args:
        points: (B, N, 3) model space, metres.
        R: (B, 3, 3) model -> camera rotation (CV convention).
        t: (B, 3) metres.
        K: (B, 3, 3) intrinsics, pixels.
    Returns:
        uv: (B, N, 2) pixels (x right, y down); depth: (B, N) metres along the optical axis.
    """
    _check("K", K, (points.shape[0], 3, 3))
    cam = transform_points(points, R, t)  # (B, N, 3)
    depth = cam[..., 2]
    hom = cam @ K.transpose(1, 2)  # (B, N, 3)
    uv = hom[..., :2] / hom[..., 2:3]
    return uv, depth


def project_orthographic(points: Tensor, R: Tensor, t2d: Tensor) -> Tuple2:
    """Orthographic projection ``uv = (R p)[:2] + t2d`` (model units, no scaling).

    Args:
        points: (B, N, 3).  R: (B, 3, 3) model -> camera (CV).  t2d: (B, 2) same unit as uv.
    Returns:
        uv: (B, N, 2); depth: (B, N) ``(R p)_z`` (relative, larger = farther).
    """
    _check("t2d", t2d, (points.shape[0], 2))
    cam = transform_points(points, R, torch.zeros_like(t2d[:, :1]).expand(-1, 3))
    return cam[..., :2] + t2d[:, None, :], cam[..., 2]


def project_weak_perspective(points: Tensor, R: Tensor, scale: Tensor, t2d: Tensor) -> Tuple2:
    """Weak perspective (scaled orthographic): ``uv = s (R p)[:2] + t2d``.

    Args:
        points: (B, N, 3) metres.  R: (B, 3, 3) model -> camera (CV).
        scale: (B,) pixels per metre.  t2d: (B, 2) pixels.
    Returns:
        uv: (B, N, 2) pixels; depth: (B, N) ``(R p)_z`` metres relative to the model origin.
    """
    _check("scale", scale, (points.shape[0],))
    uv, depth = project_orthographic(points, R, torch.zeros_like(t2d))
    return scale[:, None, None] * uv + t2d[:, None, :], depth


def weak_perspective_from_perspective(
    K: Tensor, R: Tensor, t: Tensor, center: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The weak-perspective camera that matches a pinhole camera at a reference point.

    The reference point (model space, default the origin) projects to the same pixel and the
    scale is ``f / z_ref``; exact for points at the reference depth.

    Args:
        K: (B, 3, 3) (fx = fy assumed).  R: (B, 3, 3).  t: (B, 3) metres.
        center: (B, 3) model-space reference point or None.
    Returns:
        scale (B,) pixels per metre, t2d (B, 2) pixels.
    """
    B = K.shape[0]
    c = torch.zeros(B, 3, dtype=K.dtype, device=K.device) if center is None else center
    uv, z = project_perspective(c[:, None, :], R, t, K)  # (B, 1, 2), (B, 1)
    scale = K[:, 0, 0] / z[:, 0]
    rc = (R @ c[:, :, None])[:, :2, 0]  # (B, 2)
    return scale, uv[:, 0] - scale[:, None] * rc


def gl_projection(
    K: Tensor, H: int, W: int, near: float = 0.01, far: float = 100.0, ndc: bool = False
) -> Tensor:
    """OpenGL-style 4x4 projection for pinhole intrinsics (see the module docstring).

    Args:
        K: (B, 3, 3) pixels.  H, W: image size in pixels.
        near, far: clip distances in metres (they only set the unused depth row).
        ndc: False -> ``p[:2] / p[3]`` is in pixels (DAD-3DHeads); True -> in NDC [-1, 1].
    Returns:
        (B, 4, 4).
    """
    _check("K", K, (None, 3, 3))
    B = K.shape[0]
    P = torch.zeros(B, 4, 4, dtype=K.dtype, device=K.device)
    # OpenGL eye frame: x_gl = x_cv, y_gl = -y_cv, z_gl = -z_cv, so w = -z_gl = depth.
    P[:, 0, 0] = K[:, 0, 0]
    P[:, 0, 1] = -K[:, 0, 1]
    P[:, 0, 2] = -K[:, 0, 2]
    P[:, 1, 1] = K[:, 1, 1]
    P[:, 1, 2] = K[:, 1, 2] - H  # y_up_px = H - y_px
    P[:, 2, 2] = -(far + near) / (far - near)
    P[:, 2, 3] = -2.0 * far * near / (far - near)
    P[:, 3, 2] = -1.0
    if ndc:
        # x_ndc = 2 x_px / W - 1 and y_ndc = 2 y_up_px / H - 1 (homogeneous rows).
        P[:, 0] = 2.0 / W * P[:, 0] - P[:, 3]
        P[:, 1] = 2.0 / H * P[:, 1] - P[:, 3]
    return P


def krt_to_gl(
    K: Tensor,
    R: Tensor,
    t: Tensor,
    H: int,
    W: int,
    near: float = 0.01,
    far: float = 100.0,
    ndc: bool = False,
) -> tuple[Tensor, Tensor]:
    """(K, R, t) -> (MV, P) in the DAD-3DHeads layout.

    Args:
        K: (B, 3, 3) pixels.  R: (B, 3, 3).  t: (B, 3) metres.  H, W: image size, pixels.
    Returns:
        MV: (B, 4, 4) model -> OpenGL eye frame; P: (B, 4, 4) (see :func:`gl_projection`).
    """
    _check("R", R, (K.shape[0], 3, 3))
    _check("t", t, (K.shape[0], 3))
    B = K.shape[0]
    flip = CV_FROM_GL.to(R)
    MV = torch.zeros(B, 4, 4, dtype=R.dtype, device=R.device)
    MV[:, :3, :3] = flip @ R
    MV[:, :3, 3] = t @ flip  # flip is diagonal
    MV[:, 3, 3] = 1.0
    return MV, gl_projection(K, H, W, near, far, ndc)


def project_gl(points: Tensor, MV: Tensor, P: Tensor, H: int, W: int, ndc: bool = False) -> Tensor:
    """Project like DAD-3DHeads: ``p = P MV [v, 1]``, ``xy = p[:2] / p[3]``, ``y = H - y``.

    Args:
        points: (B, N, 3) model space.  MV, P: (B, 4, 4).  H, W: image size, pixels.
        ndc: set when P maps to NDC; the OpenGL viewport transform is applied first.
    Returns:
        (B, N, 2) pixels, y down.
    """
    _check("points", points, (None, None, 3))
    _check("MV", MV, (points.shape[0], 4, 4))
    _check("P", P, (points.shape[0], 4, 4))
    hom = torch.cat([points, torch.ones_like(points[..., :1])], dim=-1)  # (B, N, 4)
    p = hom @ (P @ MV).transpose(1, 2)  # (B, N, 4)
    xy = p[..., :2] / p[..., 3:4]
    if ndc:
        xy = torch.stack([(xy[..., 0] + 1.0) * W / 2.0, (xy[..., 1] + 1.0) * H / 2.0], dim=-1)
    return torch.stack([xy[..., 0], H - xy[..., 1]], dim=-1)


def gl_to_krt(
    MV: Tensor, P: Tensor, H: int, W: int, ndc: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """(MV, P) -> (K, R, t) reproducing :func:`project_gl` exactly with :func:`project_perspective`.

    Works for any P whose pixel projection is a finite pinhole camera: the 3x4 pixel camera
    ``M = A P MV`` (A: the y flip and, for ``ndc``, the viewport) is split by an RQ decomposition
    into ``K [R | t]`` with K upper triangular, positive diagonal, ``K[2, 2] = 1`` and
    ``det R = +1``. A uniform scale s inside MV cannot be told apart from distance; it is
    absorbed as ``t / s`` (same pixels, depth in units of the unscaled model).

    Args:
        MV, P: (B, 4, 4).  H, W: image size, pixels.
    Returns:
        K (B, 3, 3) pixels, R (B, 3, 3), t (B, 3) metres.
    Raises:
        ValueError: when the camera is degenerate (singular 3x3 block).
    """
    _check("MV", MV, (None, 4, 4))
    _check("P", P, (MV.shape[0], 4, 4))
    dtype = MV.dtype
    A = torch.zeros(3, 4, dtype=torch.float64, device=MV.device)
    if ndc:  # x_px = (x_ndc + 1) W / 2 ; y_px = H - (y_ndc + 1) H / 2
        A[0, 0], A[0, 3] = W / 2.0, W / 2.0
        A[1, 1], A[1, 3] = -H / 2.0, H / 2.0
    else:  # x_px = x ; y_px = H - y
        A[0, 0] = 1.0
        A[1, 1], A[1, 3] = -1.0, float(H)
    A[2, 3] = 1.0
    M = A @ P.double() @ MV.double()  # (B, 3, 4) pixel camera
    M3 = M[:, :, :3]
    det = torch.linalg.det(M3)
    if bool((det.abs() < 1e-12).any()):
        raise ValueError("facemodels.cameras.gl_to_krt: P @ MV has a singular 3x3 block")
    # M is defined up to scale; a proper (non-mirrored) camera has det > 0 and w > 0 in front.
    M = M * torch.sign(det)[:, None, None]
    K, Rm = _rq(M[:, :, :3])
    scale = K[:, 2, 2].clone()
    K = K / scale[:, None, None]
    t = torch.linalg.solve(K, M[:, :, 3:4])[..., 0] / scale[:, None]
    return K.to(dtype), Rm.to(dtype), t.to(dtype)


def _rq(M: Tensor) -> tuple[Tensor, Tensor]:
    """RQ decomposition ``M = K R`` with K upper triangular, positive diagonal, R orthonormal.

    Args:
        M: (B, 3, 3) float64.
    Returns:
        K (B, 3, 3), R (B, 3, 3).
    """
    rev = torch.flip(torch.eye(3, dtype=M.dtype, device=M.device), dims=[0])  # anti-identity
    Q, U = torch.linalg.qr((rev @ M).transpose(1, 2))
    K = rev @ U.transpose(1, 2) @ rev
    R = rev @ Q.transpose(1, 2)
    sign = torch.sign(torch.diagonal(K, dim1=1, dim2=2))  # (B, 3)
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    K = K * sign[:, None, :]
    R = R * sign[:, :, None]
    return K, R


@dataclass
class PerspectiveCamera:
    """A batch of pinhole cameras in the CV convention.

    Attributes:
        K: (B, 3, 3) intrinsics, pixels.
        R: (B, 3, 3) model -> camera rotation.
        t: (B, 3) translation, metres.
    """

    K: Tensor
    R: Tensor
    t: Tensor

    def project(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N, 3) model-space metres -> uv (B, N, 2) pixels, depth (B, N) metres."""
        return project_perspective(points, self.R, self.t, self.K)

    def to_gl(self, H: int, W: int, ndc: bool = False) -> tuple[Tensor, Tensor]:
        """The DAD-3DHeads (MV, P) pair, each (B, 4, 4)."""
        return krt_to_gl(self.K, self.R, self.t, H, W, ndc=ndc)

    @classmethod
    def from_gl(cls, MV: Tensor, P: Tensor, H: int, W: int, ndc: bool = False) -> PerspectiveCamera:
        """Inverse of :meth:`to_gl`."""
        return cls(*gl_to_krt(MV, P, H, W, ndc=ndc))
