"""The linear-algebra pieces under the LM: block-assembled normal equations == Theseus'
stacked ones (and the structured ones == the explicit Jacobian); the robust Cholesky never
raises for one bad item; the LM stops items stuck at their optimum."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import theseus as th
import torch

from fitting.costs import PARAM_NAMES, L2PriorCost, ReprojectionCost
from fitting.landmark_model import LandmarkLBS, LandmarkSelection
from fitting.reprojection import reprojection, reprojection_normal
from fitting.solver import (
    BlockDenseLinearization,
    LevenbergMarquardtStop,
    RobustCholeskyDenseSolver,
)
from tests.fitting.fit_synthetic import default_K, random_params, tiny_lbs


def _objective(B=3):
    arrays = tiny_lbs(n_vertices=90, n_shape=4, n_expr=3, seed=5)
    model = LandmarkLBS(
        arrays, LandmarkSelection(vertex_idx=np.arange(0, 90, 3)), (1, 2), torch.float64
    )
    rot, transl, coeffs, pose = random_params(B, model.n_coeffs, model.n_pose, seed=2)
    params = {
        n: th.Vector(tensor=t, name=n)
        for n, t in zip(PARAM_NAMES, (rot, transl, coeffs, pose), strict=True)
    }
    L = model.n_landmarks
    g = torch.Generator().manual_seed(0)
    tgt = th.Variable(
        128 + 30 * torch.randn(B, 2 * L, generator=g, dtype=torch.float64), name="target"
    )
    conf = th.Variable(torch.rand(B, L, generator=g, dtype=torch.float64), name="conf")
    K = th.Variable(default_K(B).reshape(B, 9), name="K")
    obj = th.Objective(dtype=torch.float64)
    obj.add(ReprojectionCost(model, params, PARAM_NAMES, tgt, conf, K, name="r"))
    obj.add(
        L2PriorCost(
            params["coeffs"],
            torch.linspace(0.5, 2.0, model.n_coeffs, dtype=torch.float64),
            name="p",
        )
    )
    obj.update()  # sets the batch size
    return obj


def test_block_normal_equations_equal_the_stacked_ones():
    obj = _objective()
    dense = th.DenseLinearization(obj)
    dense.linearize()
    block = BlockDenseLinearization(obj, ordering=dense.ordering)
    block.linearize()
    torch.testing.assert_close(block.AtA, dense.AtA)
    torch.testing.assert_close(block.Atb, dense.Atb)
    # and the Atb sign convention: A^T b with b = -error
    assert dense.Atb.abs().max() > 0


def test_robust_cholesky_solves_good_items_and_zeroes_hopeless_ones():
    obj = _objective(B=3)
    solver = RobustCholeskyDenseSolver(obj)
    assert isinstance(solver.linearization, BlockDenseLinearization)
    g = torch.Generator().manual_seed(0)
    M = torch.randn(3, 5, 5, generator=g, dtype=torch.float64)
    AtA = M @ M.transpose(1, 2) + 0.1 * torch.eye(5, dtype=torch.float64)
    AtA[1] = -torch.eye(5, dtype=torch.float64)  # indefinite: no Cholesky, even with jitter
    AtA[2, 0, 0] = AtA[2, 0, 0] - (
        torch.linalg.eigvalsh(AtA[2]).min() + 1e-9
    )  # PSD, barely singular
    b = torch.randn(3, 5, 1, generator=g, dtype=torch.float64)
    x = solver._solve_sytem(b, AtA)
    assert torch.isfinite(x).all()
    torch.testing.assert_close(x[0], torch.linalg.solve(AtA[0], b[0])[:, 0])
    assert (x[1] == 0).all()
    # the branch-free form (what runs on a GPU: no host sync) gives the same numbers
    torch.testing.assert_close(solver._robust_solve(b, AtA, always_retry=True), x)
    good = AtA[[0, 0]]
    torch.testing.assert_close(
        solver._robust_solve(b[:2], good, always_retry=True), solver._robust_solve(b[:2], good)
    )


def _normal_problem(B, dtype, barycentric=False, seed=3):
    arrays = tiny_lbs(n_vertices=90, n_shape=4, n_expr=3, seed=5)
    if barycentric:
        arrays.faces = np.array([[0, 1, 2], [3, 4, 5], [2, 7, 9], [10, 11, 12]])
        sel = LandmarkSelection(
            face_idx=np.array([0, 1, 2, 3]),
            bary=np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]),
        )
    else:
        sel = LandmarkSelection(vertex_idx=np.arange(0, 90, 3))
    model = LandmarkLBS(arrays, sel, (1, 2), dtype)
    rot, transl, coeffs, pose = (
        t.to(dtype) for t in random_params(B, model.n_coeffs, model.n_pose, seed=seed)
    )
    pose = pose * 3  # the chain away from identity: the joint term dAt is not ~0
    L = model.n_landmarks
    g = torch.Generator().manual_seed(seed)
    target = (128 + 30 * torch.randn(B, L, 2, generator=g, dtype=torch.float64)).to(dtype)
    conf = torch.rand(B, L, generator=g, dtype=torch.float64).to(dtype)
    return model, (rot, transl, coeffs, pose, default_K(B).to(dtype), target, conf)


@pytest.mark.parametrize("barycentric", [False, True])
@pytest.mark.parametrize(
    "wrt",
    [
        ("rot", "transl", "coeffs", "pose"),
        ("rot", "transl"),
        ("coeffs", "pose"),
        ("transl", "coeffs"),
    ],
)
def test_structured_normal_equations_equal_the_stacked_jacobian(wrt, barycentric):
    """reprojection_normal (coefficient block from the basis structure, never the stacked J)
    == J^T J and -J^T e from the explicit Jacobians, on the reused-buffer path (no grad)
    and on the autograd path, in float64 and float32."""
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        model, args = _normal_problem(4, dtype, barycentric)
        terms = reprojection(model, *args, wrt=wrt)
        J = torch.cat([terms.J[n] for n in wrt], 2)
        want_H, want_g = (
            J.transpose(1, 2) @ J,
            -(J.transpose(1, 2) @ terms.error[..., None])[..., 0],
        )
        with torch.no_grad():
            H, g, err = reprojection_normal(model, *args, wrt=wrt)
        scale = want_H.abs().amax((1, 2), keepdim=True)
        torch.testing.assert_close(H / scale, want_H / scale, atol=tol, rtol=0)
        torch.testing.assert_close(g / scale[..., 0], want_g / scale[..., 0], atol=tol, rtol=0)
        torch.testing.assert_close(err, terms.error)
        # the autograd path (fresh tensors, no out= buffers) gives the same and is differentiable
        target = args[5].clone().requires_grad_(True)
        H2, g2, _ = reprojection_normal(model, *args[:5], target, args[6], wrt=wrt)
        torch.testing.assert_close(H2.detach(), H)
        torch.testing.assert_close(g2.detach(), g)
        g2.sum().backward()
        assert target.grad is not None and target.grad.abs().max() > 0


def test_reused_buffer_is_resized_and_not_carried_by_copies():
    model, args = _normal_problem(5, torch.float64)
    wrt = ("rot", "transl", "coeffs", "pose")
    with torch.no_grad():
        big = reprojection_normal(model, *args, wrt=wrt)[0]
        small = reprojection_normal(model, *(a[:2] for a in args), wrt=wrt)[0]  # shrinks: a view
        big2 = reprojection_normal(model, *args, wrt=wrt)[0]
    torch.testing.assert_close(small, big[:2])
    torch.testing.assert_close(big2, big)
    assert "_ws" in model.__dict__ and "_ws" not in copy.deepcopy(model).__dict__
    nbytes = sum(t.numel() * t.element_size() for t in model.__dict__["_ws"].values())
    model.trim_workspace(nbytes)  # at the limit: kept
    assert model.__dict__["_ws"]
    model.trim_workspace(nbytes - 1)  # above it: freed, and the next call makes it again
    assert not model.__dict__["_ws"]
    with torch.no_grad():
        torch.testing.assert_close(reprojection_normal(model, *args, wrt=wrt)[0], big)


def test_lm_convergence_counts_accepted_small_steps_and_flat_rejected_ones():
    """Per item: an accepted step converges when its relative decrease is < tol; a rejected
    one when the LM model's predicted decrease is < tol * cost (an item at its float32 noise
    floor, where every step is rejected); converged items stay converged."""
    obj = _objective(B=5)
    opt = LevenbergMarquardtStop(
        obj, linear_solver_cls=RobustCholeskyDenseSolver, rel_err_tolerance=1e-4
    )
    opt.reset(damping=1e-3, adaptive_damping=True, backward_mode=th.BackwardMode.UNROLL)
    last = torch.full((5,), 1000.0, dtype=torch.float64)
    err = torch.tensor([990.0, 999.99, 1000.0, 1000.0, 1000.0], dtype=torch.float64)
    opt._last_reject = torch.tensor([False, False, True, True, True])
    opt._pred = torch.tensor([5.0, 0.005, 0.05, 5.0, 0.2], dtype=torch.float64)
    done = opt._check_convergence(err, last)
    # accepted big step | accepted tiny step | rejected, flat model | rejected, model
    # predicts 5 (0.5 %) | rejected, predicts 0.2 (2e-4 > 1e-4)
    assert done.tolist() == [False, True, True, False, False]
    opt._last_reject = torch.tensor([False, False, False, True, True])
    opt._pred = torch.full((5,), 10.0, dtype=torch.float64)
    done = opt._check_convergence(err - 50.0, err)  # every item takes a big step now
    assert done.tolist() == [False, True, True, False, False]  # sticky


def test_rigid_cost_reuses_the_fixed_shape_only_while_it_is_unchanged():
    """With coeffs and pose held fixed (the rigid stage) the cost evaluates the landmarks once;
    a new coeffs tensor, or an in-place change of it, is seen at the next evaluation."""
    model, (rot, transl, coeffs, pose, K, target, conf) = _normal_problem(2, torch.float64)
    B, L = target.shape[:2]
    params = {
        n: th.Vector(tensor=t, name=n)
        for n, t in zip(PARAM_NAMES, (rot, transl, coeffs, pose), strict=True)
    }
    cost = ReprojectionCost(
        model,
        params,
        ("rot", "transl"),
        th.Variable(target.reshape(B, 2 * L), name="target"),
        th.Variable(conf, name="conf"),
        th.Variable(K.reshape(B, 9), name="K"),
    )

    def want(c):
        return reprojection(model, rot, transl, c, pose, K, target, conf).error

    with torch.no_grad():
        torch.testing.assert_close(cost.error(), want(coeffs))
        torch.testing.assert_close(cost.normal_equations()[1], cost.normal_equations()[1])
        new = coeffs + 0.5
        params["coeffs"].update(new)
        torch.testing.assert_close(cost.error(), want(new))
        new.mul_(2.0)  # in place: same object, new version
        torch.testing.assert_close(cost.error(), want(new))
        H, g = cost.normal_equations()
        terms = reprojection(model, rot, transl, new, pose, K, target, conf, wrt=("rot", "transl"))
        J = torch.cat([terms.J["rot"], terms.J["transl"]], 2)
        torch.testing.assert_close(H, J.transpose(1, 2) @ J)
