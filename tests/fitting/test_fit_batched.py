"""The fit is batched by construction: what the GPU path needs, checked on the CPU.

* no Python loop over faces or landmarks: the number of tensor ops a whole fit dispatches
  does not change when the batch is 4x larger, nor when one evaluation of the normal
  equations has 4x the landmarks;
* nothing is created off the input's dtype (a float64 fit makes no float32 tensor) or
  device: the per-iteration pieces (normal equations, residual, priors, linearisation, the
  robust Cholesky solve, the convergence test) run on the ``meta`` device, where any tensor
  made on the CPU fails the device check and any host synchronisation (``.item()``,
  ``bool(tensor)``) raises.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import theseus as th
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from fitting.costs import PARAM_NAMES, L2PriorCost, ReprojectionCost
from fitting.flame_fit import FitterConfig, LandmarkFitter
from fitting.landmark_model import LandmarkLBS, LandmarkSelection
from fitting.reprojection import reprojection, reprojection_normal
from fitting.solver import (
    BlockDenseLinearization,
    LevenbergMarquardtStop,
    RobustCholeskyDenseSolver,
)
from tests.fitting.fit_synthetic import default_K, project_ground_truth, random_params, tiny_lbs

ALL = ("rot", "transl", "coeffs", "pose")


class OpLog(TorchDispatchMode):
    """Counts the ATen ops dispatched and the dtypes of their floating-point outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.float_dtypes: Counter[torch.dtype] = Counter()
        self.other_dtype_ops: Counter[tuple] = Counter()  # (op, dtype, shape) not float64

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops[str(func)] += 1
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.is_floating_point():
                self.float_dtypes[t.dtype] += 1
                if t.dtype != torch.float64:
                    self.other_dtype_ops[(str(func), t.dtype, tuple(t.shape))] += 1
        return out


@pytest.fixture(scope="module")
def arrays():
    return tiny_lbs(n_vertices=240, n_shape=6, n_expr=4, seed=3)


def _fitter(arrays, idx, dtype="float64"):
    cfg = FitterConfig(
        w_shape=1e-3,
        w_expr=1e-3,
        dtype=dtype,
        rigid_iterations=6,
        nonrigid_iterations=6,
        chunk_iterations=3,
    )
    return LandmarkFitter(arrays, LandmarkSelection(vertex_idx=idx), cfg, free_joints=(1, 2))


def test_whole_fit_dispatches_the_same_ops_for_a_4x_batch(arrays):
    """The B = 12 batch is the B = 3 batch four times over (same convergence per item), so a
    loop over faces anywhere in the fit (stages, LM iterations, chunks, finish) shows up as
    more ops. The items also come out identical: no item sees another."""
    idx = np.arange(0, 240, 4)
    fitter = _fitter(arrays, idx)
    uv, _, _ = project_ground_truth(arrays, idx, 3, seed=1)
    uv = uv + 0.5 * torch.randn(
        uv.shape, generator=torch.Generator().manual_seed(0), dtype=uv.dtype
    )
    K = default_K(3)
    logs, results = [], []
    for reps in (1, 4):
        with OpLog() as log:
            results.append(fitter.fit(uv.repeat(reps, 1, 1), K=K.repeat(reps, 1, 1)))
        logs.append(log)
    assert sum(logs[0].ops.values()) > 1000  # the log saw the fit
    assert logs[1].ops == logs[0].ops
    torch.testing.assert_close(results[1].cost, results[0].cost.repeat(4))
    torch.testing.assert_close(results[1].coeffs, results[0].coeffs.repeat(4, 1))
    # dtype follows the input: a float64 fit (float64 landmarks and K) makes float64 tensors;
    # the only others are Theseus' own (1, dof) float32 placeholders that th.Vector(tensor=...)
    # builds before taking our tensor
    assert logs[1].float_dtypes[torch.float64] > 1000
    n_var = {3, fitter.lmk.n_coeffs, fitter.lmk.n_pose}
    assert all(
        op == "aten.zeros.default" and shape[0] == 1 and shape[1] in n_var
        for op, _, shape in logs[1].other_dtype_ops
    ), logs[1].other_dtype_ops


@pytest.mark.parametrize("wrt", [ALL, ("rot", "transl")])
def test_normal_equations_dispatch_the_same_ops_for_4x_landmarks_and_faces(arrays, wrt):
    counts = []
    for B, step in ((2, 8), (8, 2)):  # 30 landmarks x 2 faces, 120 landmarks x 8 faces
        model = LandmarkLBS(
            arrays, LandmarkSelection(vertex_idx=np.arange(0, 240, step)), (1, 2), torch.float64
        )
        rot, transl, coeffs, pose = random_params(B, model.n_coeffs, model.n_pose, seed=B)
        L = model.n_landmarks
        target = torch.full((B, L, 2), 128.0, dtype=torch.float64)
        conf = torch.ones(B, L, dtype=torch.float64)
        with torch.no_grad(), OpLog() as log:
            reprojection_normal(model, rot, transl, coeffs, pose, default_K(B), target, conf, wrt)
            reprojection(model, rot, transl, coeffs, pose, default_K(B), target, conf)
        counts.append(log.ops)
    assert counts[0] == counts[1]


def _meta_objective(arrays, B=3):
    model = LandmarkLBS(
        arrays, LandmarkSelection(vertex_idx=np.arange(0, 240, 4)), (1, 2), torch.float32
    ).to("meta")
    rot, transl, coeffs, pose = (
        t.float().to("meta") for t in random_params(B, model.n_coeffs, model.n_pose, seed=0)
    )
    L = model.n_landmarks
    params = {
        n: th.Vector(tensor=t, name=n)
        for n, t in zip(PARAM_NAMES, (rot, transl, coeffs, pose), strict=True)
    }
    tgt = th.Variable(torch.empty(B, 2 * L, device="meta"), name="target")
    conf = th.Variable(torch.empty(B, L, device="meta"), name="conf")
    Kv = th.Variable(default_K(B).float().reshape(B, 9).to("meta"), name="K")
    obj = th.Objective(dtype=torch.float32)
    obj.add(ReprojectionCost(model, params, ALL, tgt, conf, Kv, name="r"))
    obj.add(L2PriorCost(params["coeffs"], torch.ones(model.n_coeffs, device="meta"), name="p"))
    obj.to("meta")  # what TheseusLayer(...).to(device) does in the fitter
    obj.update()
    return model, obj


def test_per_iteration_pieces_run_on_the_meta_device(arrays):
    """Meta tensors have no data: a CPU-made tensor meeting them fails the device check, and a
    host sync (``.item()``, ``bool(t)``, ``.cpu()``) raises. So this fails if any piece of the
    LM iteration ours makes creates a tensor off the input's device or waits for the device."""
    model, obj = _meta_objective(arrays)
    with torch.no_grad():
        lin = BlockDenseLinearization(obj)
        lin.linearize()
        n = 6 + model.n_coeffs + model.n_pose
        assert lin.AtA.device.type == "meta" and lin.AtA.shape == (3, n, n)
        err = obj.error_metric()
        assert err.device.type == "meta"
        solver = RobustCholeskyDenseSolver(obj)
        x = solver._robust_solve(lin.Atb, lin.AtA)
        assert x.device.type == "meta" and x.shape == (3, n)
        opt = LevenbergMarquardtStop(obj, linear_solver_cls=RobustCholeskyDenseSolver)
        opt.reset(damping=1e-3, adaptive_damping=True, backward_mode=th.BackwardMode.UNROLL)
        opt._last_reject = torch.zeros(3, dtype=torch.bool, device="meta")
        opt._pred = torch.ones(3, device="meta")
        assert opt._check_convergence(err, err).device.type == "meta"


class MatmulPrecision(TorchDispatchMode):
    """The float32 matmul precision in force at every matrix product."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.bmm, torch.ops.aten.mm, torch.ops.aten.baddbmm):
            self.seen.add(torch.get_float32_matmul_precision())
        return func(*args, **(kwargs or {}))


def test_fit_runs_its_products_at_full_float32_precision(arrays):
    """TF32 / bf16 matmuls (set globally by many training scripts) would perturb J^T e; the
    fitter switches to "highest" for the call and restores the caller's setting."""
    idx = np.arange(0, 240, 4)
    fitter = _fitter(arrays, idx, dtype="float32")
    uv, _, _ = project_ground_truth(arrays, idx, 2, seed=2)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        with MatmulPrecision() as log:
            fitter.fit(uv.float(), K=default_K(2).float())
        assert log.seen == {"highest"}
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(previous)
