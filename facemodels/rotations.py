"""Rotation representations in torch: batched, differentiable, float32 / float64.

Every function accepts arbitrary leading batch dimensions ``(...)`` and keeps dtype and
device. Matrices act on column vectors: ``x' = R @ x`` (row-vector code uses ``x @ R.T``).

The axis-angle, quaternion and 6D conversions are RoMa's (``roma``); the two Euler conventions
below (the suite's model space and 3DDFA's Pose_Para), which no library has, are written here.

Conventions
-----------
* Axis-angle ``(..., 3)``: direction = axis, norm = angle in radians (Rodrigues).
* Quaternion ``(..., 4)``: ``(w, x, y, z)``, scalar first.
* 6D (Zhou et al., CVPR 2019, "On the continuity of rotation representations"):
  the first two COLUMNS of R concatenated, ``(..., 6) = [R[:, 0], R[:, 1]]``; decoding
  is Gram-Schmidt.
* Model-space Euler angles (FLAME model space: y up, z out of the face, x towards the
  subject's left), ``(..., 3) = [yaw, pitch, roll]`` in DEGREES::

      R = Ry(yaw) @ Rx(pitch) @ Rz(roll)

  with the standard right-handed elementary rotations ``Rx(a) = [[1,0,0],[0,c,-s],[0,s,c]]``
  and so on. Applied to vertices this means roll first (about z), then pitch (about x),
  then yaw (about the vertical y axis, outermost). Positive yaw turns the face (+z)
  towards +x (the subject's left); positive pitch turns the face (+z) towards -y (looking
  down); positive roll turns +x towards +y. Gimbal lock is at pitch = +-90 deg (never
  reached by faces); yaw is unambiguous over (-180, 180].
* 3DDFA / 300W-LP ``Pose_Para[:3] = [pitch, yaw, roll]`` in RADIANS, matrix exactly as
  3DDFA's ``angle2matrix_3ddfa`` (face3d ``mesh/transform.py``)::

      R = Rx'(pitch) @ Ry'(yaw) @ Rz'(roll),
      Rx'(a) = [[1,0,0],[0,c,s],[0,-s,c]]   (= Rx(-a))
      Ry'(a) = [[c,0,-s],[0,1,0],[s,0,c]]   (= Ry(-a))
      Rz'(a) = [[c,s,0],[-s,c,0],[0,0,1]]   (= Rz(-a))

  so ``R = (Rz(roll) Ry(yaw) Rx(pitch))^T``; the fitted vertices are
  ``s * R @ v + t`` (BFM space, y up, later flipped to image rows). Gimbal lock at
  yaw = +-90 deg. ``matrix_to_3ddfa_euler`` is the exact inverse of this matrix
  (3DDFA's own ``matrix2angle`` assumes a different order and is not its inverse).
"""

from __future__ import annotations

import roma
import torch
from torch import Tensor

__all__ = [
    "hat",
    "rotation_x",
    "rotation_y",
    "rotation_z",
    "axis_angle_to_matrix",
    "matrix_to_axis_angle",
    "quaternion_to_matrix",
    "matrix_to_quaternion",
    "axis_angle_to_quaternion",
    "quaternion_to_axis_angle",
    "rotation_6d_to_matrix",
    "matrix_to_rotation_6d",
    "euler_to_matrix",
    "matrix_to_euler",
    "euler_3ddfa_to_matrix",
    "matrix_to_3ddfa_euler",
    "geodesic_angle",
]

def _check_last(x: Tensor, n: int, name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.shape[-1:] != (n,):
        raise ValueError(f"{name}: expected shape (..., {n}), got {tuple(x.shape)}")


def _check_matrix(R: Tensor, name: str) -> None:
    if not torch.is_tensor(R):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(R).__name__}")
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected shape (..., 3, 3), got {tuple(R.shape)}")


def hat(v: Tensor) -> Tensor:
    """Skew-symmetric cross-product matrix: ``hat(v) @ x == cross(v, x)``.

    Args:
        v: (..., 3).
    Returns:
        (..., 3, 3).
    """
    _check_last(v, 3, "hat")
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(v.shape[:-1] + (3, 3))


def _elementary(angle: Tensor, axis: int) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    o, i = torch.zeros_like(angle), torch.ones_like(angle)
    if axis == 0:
        rows = [i, o, o, o, c, -s, o, s, c]
    elif axis == 1:
        rows = [c, o, s, o, i, o, -s, o, c]
    else:
        rows = [c, -s, o, s, c, o, o, o, i]
    return torch.stack(rows, dim=-1).reshape(angle.shape + (3, 3))


def rotation_x(angle: Tensor) -> Tensor:
    """Right-handed rotation about x by ``angle`` radians (...,) -> (..., 3, 3)."""
    return _elementary(angle, 0)


def rotation_y(angle: Tensor) -> Tensor:
    """Right-handed rotation about y by ``angle`` radians (...,) -> (..., 3, 3)."""
    return _elementary(angle, 1)


def rotation_z(angle: Tensor) -> Tensor:
    """Right-handed rotation about z by ``angle`` radians (...,) -> (..., 3, 3)."""
    return _elementary(angle, 2)


# ----------------------------------------------------------------------------------------
# axis-angle, quaternions, 6D: RoMa (roma.rotvec_to_rotmat, ...), batched, without data-dependent
# indexing (no device synchronisation, no graph breaks). RoMa's quaternions are (x, y, z, w); the
# suite's are (w, x, y, z), converted at this boundary only.
# ----------------------------------------------------------------------------------------
def axis_angle_to_matrix(axis_angle: Tensor) -> Tensor:
    """Rodrigues' formula (``roma.rotvec_to_rotmat``; first order below 1e-6 rad, so value and
    gradient are finite at the zero rotation).

    Args:
        axis_angle: (..., 3) radians.
    Returns:
        (..., 3, 3) rotation matrices.
    """
    _check_last(axis_angle, 3, "axis_angle_to_matrix")
    return roma.rotvec_to_rotmat(axis_angle)


def matrix_to_axis_angle(R: Tensor) -> Tensor:
    """Inverse of :func:`axis_angle_to_matrix`; angle in [0, pi] (``roma.rotmat_to_rotvec``, via
    quaternions).

    Args:
        R: (..., 3, 3) rotation matrices.
    Returns:
        (..., 3) axis-angle, radians.
    """
    _check_matrix(R, "matrix_to_axis_angle")
    return roma.rotmat_to_rotvec(R)


def _wxyz(q_xyzw: Tensor) -> Tensor:
    return torch.cat([q_xyzw[..., 3:], q_xyzw[..., :3]], dim=-1)


def _xyzw(q_wxyz: Tensor) -> Tensor:
    return torch.cat([q_wxyz[..., 1:], q_wxyz[..., :1]], dim=-1)


def _positive_w(q: Tensor) -> Tensor:
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: Tensor) -> Tensor:
    """Unit quaternion (normalised here) ``(..., 4) = (w, x, y, z)`` -> (..., 3, 3)."""
    _check_last(q, 4, "quaternion_to_matrix")
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(q.dtype).tiny)
    return roma.unitquat_to_rotmat(_xyzw(q))


def matrix_to_quaternion(R: Tensor) -> Tensor:
    """Rotation matrix -> unit quaternion ``(w, x, y, z)`` with ``w >= 0`` (Markley's variant of
    Shepperd's method, ``roma.rotmat_to_unitquat``: unit even for slightly non-orthonormal input).

    Args:
        R: (..., 3, 3).
    Returns:
        (..., 4).
    """
    _check_matrix(R, "matrix_to_quaternion")
    return _positive_w(_wxyz(roma.rotmat_to_unitquat(R)))


def axis_angle_to_quaternion(axis_angle: Tensor) -> Tensor:
    """(..., 3) radians -> (..., 4) ``(w, x, y, z)``; stable at zero."""
    _check_last(axis_angle, 3, "axis_angle_to_quaternion")
    return _wxyz(roma.rotvec_to_unitquat(axis_angle))


def quaternion_to_axis_angle(q: Tensor) -> Tensor:
    """(..., 4) unit ``(w, x, y, z)`` -> (..., 3) radians, angle in [0, pi]; stable at identity."""
    _check_last(q, 4, "quaternion_to_axis_angle")
    return roma.unitquat_to_rotvec(_xyzw(q), shortest_arc=True)


def rotation_6d_to_matrix(d6: Tensor, eps: float = 1e-8) -> Tensor:
    """Zhou et al.'s 6D: Gram-Schmidt of two 3-vectors into the first two columns of R
    (``roma.special_gramschmidt``).

    Args:
        d6: (..., 6) = [a1 (3), a2 (3)], any non-parallel pair.
        eps: norm floor against division by zero.
    Returns:
        (..., 3, 3) with columns ``b1 = a1/|a1|``, ``b2`` (a2 minus its b1 part,
        normalised), ``b3 = b1 x b2``.
    """
    _check_last(d6, 6, "rotation_6d_to_matrix")
    return roma.special_gramschmidt(torch.stack([d6[..., :3], d6[..., 3:]], dim=-1), epsilon=eps)


def matrix_to_rotation_6d(R: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns of R concatenated."""
    _check_matrix(R, "matrix_to_rotation_6d")
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


# ----------------------------------------------------------------------------------------
# Euler angles, model space: [yaw, pitch, roll] degrees, R = Ry(yaw) Rx(pitch) Rz(roll)
# ----------------------------------------------------------------------------------------
def euler_to_matrix(angles_deg: Tensor) -> Tensor:
    """Model-space Euler angles -> rotation.

    Args:
        angles_deg: (..., 3) = [yaw, pitch, roll] in degrees.
    Returns:
        (..., 3, 3) ``Ry(yaw) @ Rx(pitch) @ Rz(roll)``.
    """
    _check_last(angles_deg, 3, "euler_to_matrix")
    a = torch.deg2rad(angles_deg)
    return rotation_y(a[..., 0]) @ rotation_x(a[..., 1]) @ rotation_z(a[..., 2])


def matrix_to_euler(R: Tensor, eps: float = 1e-6) -> Tensor:
    """Inverse of :func:`euler_to_matrix`.

    yaw in (-180, 180], pitch in [-90, 90], roll in (-180, 180]. At gimbal lock
    (|pitch| = 90, ``cos(pitch) < eps``) roll is set to 0 and the rotation about the
    vertical axis is put into yaw.

    Args:
        R: (..., 3, 3).
    Returns:
        (..., 3) = [yaw, pitch, roll] in degrees.
    """
    _check_matrix(R, "matrix_to_euler")
    # R[1] = [cp sr, cp cr, -sp];  R[:, 2] = [sy cp, -sp, cy cp]
    sp = (-R[..., 1, 2]).clamp(-1.0, 1.0)
    cp = torch.sqrt(R[..., 1, 0] ** 2 + R[..., 1, 1] ** 2)
    pitch = torch.atan2(sp, cp)
    lock = cp < eps
    yaw = torch.where(
        lock, torch.atan2(-R[..., 2, 0], R[..., 0, 0]), torch.atan2(R[..., 0, 2], R[..., 2, 2])
    )
    roll = torch.where(lock, torch.zeros_like(yaw), torch.atan2(R[..., 1, 0], R[..., 1, 1]))
    return torch.rad2deg(torch.stack([yaw, pitch, roll], dim=-1))


# ----------------------------------------------------------------------------------------
# 3DDFA / 300W-LP Pose_Para: [pitch, yaw, roll] radians, R = Rx'(p) Ry'(y) Rz'(r)
# ----------------------------------------------------------------------------------------
def euler_3ddfa_to_matrix(angles_rad: Tensor) -> Tensor:
    """3DDFA's ``angle2matrix_3ddfa`` (the convention of 300W-LP ``Pose_Para[:3]``).

    Args:
        angles_rad: (..., 3) = [pitch, yaw, roll] in radians.
    Returns:
        (..., 3, 3) ``Rx(-pitch) @ Ry(-yaw) @ Rz(-roll)`` (standard right-handed
        elementary rotations), i.e. 3DDFA's primed matrices; vertices map as
        ``s * R @ v + t``.
    """
    _check_last(angles_rad, 3, "euler_3ddfa_to_matrix")
    p, y, r = angles_rad.unbind(-1)
    return rotation_x(-p) @ rotation_y(-y) @ rotation_z(-r)


def matrix_to_3ddfa_euler(R: Tensor, eps: float = 1e-6) -> Tensor:
    """Exact inverse of :func:`euler_3ddfa_to_matrix`.

    pitch, roll in (-pi, pi], yaw in [-pi/2, pi/2]. At gimbal lock (|yaw| = pi/2) roll
    is set to 0.

    Args:
        R: (..., 3, 3).
    Returns:
        (..., 3) = [pitch, yaw, roll] in radians.
    """
    _check_matrix(R, "matrix_to_3ddfa_euler")
    # M = R^T = Rz(r) Ry(y) Rx(p): M[2,0] = -sy, M[2,1] = cy sp, M[2,2] = cy cp,
    # M[1,0] = sr cy, M[0,0] = cr cy.
    sy = (-R[..., 0, 2]).clamp(-1.0, 1.0)
    cy = torch.sqrt(R[..., 0, 0] ** 2 + R[..., 0, 1] ** 2)
    yaw = torch.atan2(sy, cy)
    lock = cy < eps
    # at lock (r = 0): M = Ry(+-90) Rx(p): M[0,1] = sy sp, M[1,1] = cp
    pitch = torch.where(
        lock,
        torch.atan2(torch.sign(sy) * R[..., 1, 0], R[..., 1, 1]),
        torch.atan2(R[..., 1, 2], R[..., 2, 2]),
    )
    roll = torch.where(lock, torch.zeros_like(yaw), torch.atan2(R[..., 0, 1], R[..., 0, 0]))
    return torch.stack([pitch, yaw, roll], dim=-1)


def geodesic_angle(R1: Tensor, R2: Tensor) -> Tensor:
    """Angle of ``R1^T R2`` in radians, (..., 3, 3) x2 -> (...,), in [0, pi]."""
    _check_matrix(R1, "geodesic_angle")
    _check_matrix(R2, "geodesic_angle")
    return matrix_to_axis_angle(R1.transpose(-1, -2) @ R2).norm(dim=-1)
