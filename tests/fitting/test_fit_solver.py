"""The linear-algebra pieces under the LM: block-assembled normal equations == Theseus'
stacked ones; the robust Cholesky never raises for one bad item."""

from __future__ import annotations

import numpy as np
import theseus as th
import torch

from fitting.costs import PARAM_NAMES, L2PriorCost, ReprojectionCost
from fitting.landmark_model import LandmarkLBS, LandmarkSelection
from fitting.solver import BlockDenseLinearization, RobustCholeskyDenseSolver
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
