"""Tests for facemodels.rotations: hand-computed cases, round trips, gradients."""

import math

import numpy as np
import pytest
import torch

from facemodels import rotations as rot


def _random_rotations(n: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g, dtype=dtype)
    return rot.quaternion_to_matrix(q)


def _assert_rotation(R: torch.Tensor, atol: float) -> None:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye, atol=atol, rtol=0)
    torch.testing.assert_close(
        torch.linalg.det(R), torch.ones(R.shape[:-2], dtype=R.dtype), atol=atol, rtol=0
    )


# ---------------------------------------------------------------- hand-computed cases
def test_axis_angle_hand_case_90_deg_about_z():
    R = rot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2], dtype=torch.float64))
    expected = torch.tensor(
        [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64
    )
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)
    # x axis goes to y axis
    torch.testing.assert_close(
        R @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
        torch.tensor([0.0, 1, 0], dtype=torch.float64),
        atol=1e-12,
        rtol=0,
    )


def test_axis_angle_hand_case_120_deg_about_diagonal_permutes_axes():
    w = torch.ones(3, dtype=torch.float64) / math.sqrt(3) * (2 * math.pi / 3)
    R = rot.axis_angle_to_matrix(w)
    expected = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=torch.float64)  # x->y->z->x
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)
    torch.testing.assert_close(rot.matrix_to_axis_angle(expected), w, atol=1e-12, rtol=0)


def test_axis_angle_zero_is_identity_with_finite_gradient():
    w = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    R = rot.axis_angle_to_matrix(w)
    torch.testing.assert_close(R, torch.eye(3, dtype=torch.float64).expand(2, 3, 3))
    # d(R v)/dw at 0 = -hat(v) ; check via gradient of a linear functional
    v = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    c = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64)
    (R[0] @ v @ c).backward()
    expected = torch.cross(v, c, dim=0)  # c . (w x v) = w . (v x c)
    torch.testing.assert_close(w.grad[0], expected, atol=1e-12, rtol=0)
    assert torch.isfinite(w.grad).all()


def test_matrix_to_axis_angle_identity_and_gradient_finite():
    R = torch.eye(3, dtype=torch.float64).repeat(3, 1, 1).requires_grad_(True)
    w = rot.matrix_to_axis_angle(R)
    torch.testing.assert_close(w, torch.zeros(3, 3, dtype=torch.float64))
    w.sum().backward()
    assert torch.isfinite(R.grad).all()


def test_model_euler_hand_cases():
    # yaw 90: face normal +z turns to +x (subject's left)
    R = rot.euler_to_matrix(torch.tensor([90.0, 0.0, 0.0], dtype=torch.float64))
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        R @ z, torch.tensor([1.0, 0, 0], dtype=torch.float64), atol=1e-12, rtol=0
    )
    # pitch 90: face normal +z turns to -y (looking down)
    R = rot.euler_to_matrix(torch.tensor([0.0, 90.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        R @ z, torch.tensor([0.0, -1, 0], dtype=torch.float64), atol=1e-12, rtol=0
    )
    # roll 90: +x turns to +y
    R = rot.euler_to_matrix(torch.tensor([0.0, 0.0, 90.0], dtype=torch.float64))
    x = torch.tensor([1.0, 0, 0], dtype=torch.float64)
    torch.testing.assert_close(
        R @ x, torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-12, rtol=0
    )


def test_model_euler_order_is_yaw_outermost():
    # yaw 90 then pitch 30 then roll 0: R = Ry(90) Rx(30); write it out by hand.
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    Ry = np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]])
    Rx = np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])
    R = rot.euler_to_matrix(torch.tensor([90.0, 30.0, 0.0], dtype=torch.float64))
    np.testing.assert_allclose(R.numpy(), Ry @ Rx, atol=1e-12)


def test_3ddfa_hand_case_matches_face3d_formula():
    # face3d angle2matrix_3ddfa written out in numpy, angles in radians [pitch, yaw, roll]
    x, y, z = 0.3, -0.7, 0.2
    Rx = np.array([[1, 0, 0], [0, math.cos(x), math.sin(x)], [0, -math.sin(x), math.cos(x)]])
    Ry = np.array([[math.cos(y), 0, -math.sin(y)], [0, 1, 0], [math.sin(y), 0, math.cos(y)]])
    Rz = np.array([[math.cos(z), math.sin(z), 0], [-math.sin(z), math.cos(z), 0], [0, 0, 1]])
    expected = Rx @ Ry @ Rz
    R = rot.euler_3ddfa_to_matrix(torch.tensor([x, y, z], dtype=torch.float64))
    np.testing.assert_allclose(R.numpy(), expected, atol=1e-12)
    back = rot.matrix_to_3ddfa_euler(R)
    np.testing.assert_allclose(back.numpy(), [x, y, z], atol=1e-12)


def test_3ddfa_pure_yaw_relates_to_model_yaw():
    # With pitch = roll = 0: 3DDFA R = Ry(-yaw) = model R(yaw = -deg(yaw_3ddfa)).
    R3 = rot.euler_3ddfa_to_matrix(torch.tensor([0.0, 0.5, 0.0], dtype=torch.float64))
    Rm = rot.euler_to_matrix(torch.tensor([-math.degrees(0.5), 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(R3, Rm, atol=1e-12, rtol=0)


def test_6d_hand_case():
    d6 = torch.tensor([2.0, 0.0, 0.0, 1.0, 3.0, 0.0], dtype=torch.float64)
    R = rot.rotation_6d_to_matrix(d6)
    torch.testing.assert_close(R, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)
    d6 = torch.tensor([0.0, 1.0, 0.0, -5.0, 0.0, 0.0], dtype=torch.float64)  # columns y, -x
    R = rot.rotation_6d_to_matrix(d6)
    expected = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64)
    torch.testing.assert_close(R, expected, atol=1e-12, rtol=0)


def test_hat_is_cross_product():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(rot.hat(a) @ b[..., None], torch.cross(a, b, dim=-1)[..., None])


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("dtype,atol", [(torch.float32, 2e-5), (torch.float64, 1e-10)])
def test_round_trips_and_orthonormality(dtype, atol):
    R = _random_rotations(200, dtype)
    _assert_rotation(R, atol)
    # matrix -> axis-angle -> matrix
    torch.testing.assert_close(
        rot.axis_angle_to_matrix(rot.matrix_to_axis_angle(R)), R, atol=atol * 10, rtol=0
    )
    # matrix -> quaternion -> matrix
    torch.testing.assert_close(
        rot.quaternion_to_matrix(rot.matrix_to_quaternion(R)), R, atol=atol, rtol=0
    )
    # 6D
    torch.testing.assert_close(
        rot.rotation_6d_to_matrix(rot.matrix_to_rotation_6d(R)), R, atol=atol, rtol=0
    )
    # model Euler
    R2 = rot.euler_to_matrix(rot.matrix_to_euler(R))
    torch.testing.assert_close(R2, R, atol=atol * 10, rtol=0)
    # 3DDFA Euler
    R3 = rot.euler_3ddfa_to_matrix(rot.matrix_to_3ddfa_euler(R))
    torch.testing.assert_close(R3, R, atol=atol * 10, rtol=0)
    for out in (
        rot.axis_angle_to_matrix(torch.randn(10, 3, dtype=dtype)),
        rot.rotation_6d_to_matrix(torch.randn(10, 6, dtype=dtype)),
    ):
        assert out.dtype == dtype
        _assert_rotation(out, atol)


def test_axis_angle_round_trip_preserves_vector_below_pi():
    g = torch.Generator().manual_seed(3)
    axis = torch.nn.functional.normalize(
        torch.randn(100, 3, generator=g, dtype=torch.float64), dim=-1
    )
    angle = torch.rand(100, 1, generator=g, dtype=torch.float64) * 3.1
    angle[:5] = torch.tensor([[0.0], [1e-9], [1e-5], [1e-3], [3.14159]], dtype=torch.float64)
    w = axis * angle
    torch.testing.assert_close(
        rot.matrix_to_axis_angle(rot.axis_angle_to_matrix(w)), w, atol=1e-9, rtol=0
    )
    torch.testing.assert_close(
        rot.quaternion_to_axis_angle(rot.axis_angle_to_quaternion(w)), w, atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        rot.quaternion_to_matrix(rot.axis_angle_to_quaternion(w)),
        rot.axis_angle_to_matrix(w),
        atol=1e-12,
        rtol=0,
    )


def test_euler_round_trip_in_range_and_gimbal_lock():
    g = torch.Generator().manual_seed(4)
    ang = torch.stack(
        [
            torch.rand(100, generator=g) * 340 - 170,
            torch.rand(100, generator=g) * 170 - 85,
            torch.rand(100, generator=g) * 340 - 170,
        ],
        -1,
    ).double()
    torch.testing.assert_close(
        rot.matrix_to_euler(rot.euler_to_matrix(ang)), ang, atol=1e-9, rtol=0
    )
    lock = torch.tensor([[30.0, 90.0, 20.0], [-40.0, -90.0, 10.0]], dtype=torch.float64)
    R = rot.euler_to_matrix(lock)
    back = rot.matrix_to_euler(R)
    assert torch.isfinite(back).all()
    assert (back[:, 2] == 0).all()
    torch.testing.assert_close(rot.euler_to_matrix(back), R, atol=1e-9, rtol=0)


def test_3ddfa_round_trip_in_range_and_gimbal_lock():
    g = torch.Generator().manual_seed(5)
    ang = torch.stack(
        [
            torch.rand(100, generator=g) * 6 - 3,
            torch.rand(100, generator=g) * 3 - 1.5,
            torch.rand(100, generator=g) * 6 - 3,
        ],
        -1,
    ).double()
    torch.testing.assert_close(
        rot.matrix_to_3ddfa_euler(rot.euler_3ddfa_to_matrix(ang)), ang, atol=1e-9, rtol=0
    )
    lock = torch.tensor([[0.4, math.pi / 2, 0.3], [-0.2, -math.pi / 2, 0.5]], dtype=torch.float64)
    R = rot.euler_3ddfa_to_matrix(lock)
    back = rot.matrix_to_3ddfa_euler(R)
    assert (back[:, 2] == 0).all()
    torch.testing.assert_close(rot.euler_3ddfa_to_matrix(back), R, atol=1e-9, rtol=0)


def test_geodesic_angle():
    R1 = _random_rotations(8)
    w = torch.nn.functional.normalize(torch.randn(8, 3, dtype=torch.float64), dim=-1) * 0.7
    R2 = R1 @ rot.axis_angle_to_matrix(w)
    torch.testing.assert_close(
        rot.geodesic_angle(R1, R2), torch.full((8,), 0.7, dtype=torch.float64)
    )


# ---------------------------------------------------------------- gradients vs finite differences
@pytest.mark.parametrize(
    "fn,dim",
    [
        (rot.axis_angle_to_matrix, 3),
        (rot.rotation_6d_to_matrix, 6),
        (rot.euler_to_matrix, 3),
        (rot.euler_3ddfa_to_matrix, 3),
        (lambda q: rot.matrix_to_axis_angle(rot.quaternion_to_matrix(q)), 4),
    ],
)
def test_gradcheck(fn, dim):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(4, dim, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)


def test_gradcheck_axis_angle_near_zero():
    x = (torch.randn(3, 3, dtype=torch.float64) * 1e-5).requires_grad_(True)
    assert torch.autograd.gradcheck(rot.axis_angle_to_matrix, (x,), eps=1e-7, atol=1e-6)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        rot.axis_angle_to_matrix(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        rot.matrix_to_euler(torch.zeros(4, 3, 2))
