"""Every Jacobian of the fitting residuals against central finite differences (float64),
at batch sizes 1 and 10 with seeded generators."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitting.landmark_model import LandmarkLBS, LandmarkSelection
from fitting.reprojection import reprojection
from tests.fitting.fit_synthetic import default_K, random_params, tiny_lbs

EPS = 1e-6


def _fd(fn, x: torch.Tensor) -> torch.Tensor:
    """Central differences of fn: (B, n) -> (B, m); returns (B, m, n)."""
    cols = []
    for i in range(x.shape[1]):
        d = torch.zeros_like(x)
        d[:, i] = EPS
        cols.append((fn(x + d) - fn(x - d)) / (2 * EPS))
    return torch.stack(cols, -1)


@pytest.fixture(scope="module")
def model():
    arrays = tiny_lbs(n_vertices=120, n_shape=5, n_expr=4, seed=1, pose_scale=5e-3)
    idx = np.arange(0, 120, 3)
    return LandmarkLBS(
        arrays, LandmarkSelection(vertex_idx=idx), free_joints=(1, 2, 3), dtype=torch.float64
    )


@pytest.mark.parametrize("B", [1, 10])
def test_model_jacobians_match_finite_differences(model, B):
    rot, transl, coeffs, pose = random_params(B, model.n_coeffs, model.n_pose, seed=B)
    pose = pose * 3  # up to 0.3 rad per joint: the chain is exercised away from identity
    v, dv_dc, dv_dp = model.jacobians(coeffs, pose)
    L = v.shape[1]
    assert v.shape == (B, L, 3) and dv_dc.shape == (B, L, 3, model.n_coeffs)
    fd_c = _fd(lambda c: model(c, pose).reshape(B, -1), coeffs)
    fd_p = _fd(lambda p: model(coeffs, p).reshape(B, -1), pose)
    torch.testing.assert_close(dv_dc.reshape(B, 3 * L, -1), fd_c, atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(dv_dp.reshape(B, 3 * L, -1), fd_p, atol=1e-8, rtol=1e-6)
    # the Jacobian is not trivially zero
    assert dv_dp.abs().max() > 1e-3 and dv_dc.abs().max() > 1e-4


def test_barycentric_landmarks_interpolate_support_vertices():
    arrays = tiny_lbs(n_vertices=60, n_shape=3, n_expr=2, seed=2)
    arrays.faces = np.array([[0, 1, 2], [3, 4, 5], [2, 7, 9]])
    bary = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8]])
    emb = LandmarkLBS(
        arrays, LandmarkSelection(face_idx=np.array([0, 1, 2]), bary=bary), dtype=torch.float64
    )
    full = LandmarkLBS(arrays, LandmarkSelection(vertex_idx=np.arange(60)), dtype=torch.float64)
    _, _, coeffs, pose = random_params(2, emb.n_coeffs, emb.n_pose, seed=3)
    verts = full(coeffs, pose)  # (2, 60, 3)
    want = torch.einsum(
        "lk,blkd->bld", torch.as_tensor(bary), verts[:, torch.as_tensor(arrays.faces)]
    )
    torch.testing.assert_close(emb(coeffs, pose), want)
    _, dc, dp = emb.jacobians(coeffs, pose)
    fd_c = _fd(lambda c: emb(c, pose).reshape(2, -1), coeffs)
    torch.testing.assert_close(dc.reshape(2, 9, -1), fd_c, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("B", [1, 10])
def test_reprojection_jacobians_match_finite_differences(model, B):
    rot, transl, coeffs, pose = random_params(
        B, model.n_coeffs, model.n_pose, seed=10 + B, yaw_deg=80
    )
    K = default_K(B)
    g = torch.Generator().manual_seed(B)
    L = model.n_landmarks
    target = 128 + 40 * torch.randn(B, L, 2, generator=g, dtype=torch.float64)
    conf = torch.rand(B, L, generator=g, dtype=torch.float64)
    wrt = ("rot", "transl", "coeffs", "pose")
    terms = reprojection(model, rot, transl, coeffs, pose, K, target, conf, wrt=wrt)
    args = {"rot": rot, "transl": transl, "coeffs": coeffs, "pose": pose}
    for name in wrt:

        def fn(x, name=name):
            a = dict(args)
            a[name] = x
            return reprojection(
                model, a["rot"], a["transl"], a["coeffs"], a["pose"], K, target, conf
            ).error

        fd = _fd(fn, args[name])
        torch.testing.assert_close(
            terms.J[name], fd, atol=1e-5, rtol=1e-5, msg=f"d error / d {name}"
        )
        assert terms.J[name].abs().max() > 1e-2


def test_rotation_jacobian_at_identity_is_finite_and_exact(model):
    """The axis-angle derivative at exactly zero rotation (the rigid init of a frontal face)."""
    B = 1
    _, transl, coeffs, pose = random_params(B, model.n_coeffs, model.n_pose, seed=4)
    rot = torch.zeros(B, 3, dtype=torch.float64)
    K = default_K(B)
    target = torch.full((B, model.n_landmarks, 2), 128.0, dtype=torch.float64)
    conf = torch.ones(B, model.n_landmarks, dtype=torch.float64)
    terms = reprojection(model, rot, transl, coeffs, pose, K, target, conf, wrt=("rot",))
    fd = _fd(lambda r: reprojection(model, r, transl, coeffs, pose, K, target, conf).error, rot)
    torch.testing.assert_close(terms.J["rot"], fd, atol=1e-5, rtol=1e-5)
