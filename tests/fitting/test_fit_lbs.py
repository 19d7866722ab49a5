"""The batched LM fitter on a small generated LBS model: recovery, robustness,
per-item independence, differentiability, CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fitting.flame_fit import FitterConfig, LandmarkFitter
from fitting.landmark_model import LandmarkLBS, LandmarkSelection
from fitting.reprojection import reprojection
from tests.fitting.fit_synthetic import project_ground_truth, tiny_lbs

NV = 400


@pytest.fixture(scope="module")
def arrays():
    return tiny_lbs(n_vertices=NV, n_shape=12, n_expr=8, seed=0)


def _problem(arrays, B, seed, idx, dtype=torch.float64):
    """Ground-truth parameters, their projected landmarks (B, L, 2) px and full meshes."""
    uv, _, (rot, transl, coeffs, pose) = project_ground_truth(arrays, idx, B, seed)
    full = LandmarkLBS(arrays, LandmarkSelection(vertex_idx=np.arange(NV)), (1, 2), torch.float64)
    return uv.to(dtype), full(coeffs, pose), (rot, transl, coeffs, pose)


def _fitter(arrays, idx, **kw):
    cfg = FitterConfig(**{"w_shape": 1e-4, "w_expr": 1e-4, "w_pose": 1e-3, **kw})
    return LandmarkFitter(arrays, LandmarkSelection(vertex_idx=idx), cfg, free_joints=(1, 2))


def test_noise_free_landmarks_recover_the_mesh(arrays):
    idx = np.arange(0, NV, 2)
    uv, verts, (rot, transl, coeffs, pose) = _problem(
        arrays, 6, seed=1, idx=idx, dtype=torch.float32
    )
    res = _fitter(arrays, idx).fit(uv)
    assert res.valid.all()
    assert res.vertices.shape == (6, NV, 3) and res.landmarks2d.shape == (6, len(idx), 2)
    mve_mm = (res.vertices.double() - verts).norm(dim=-1).mean(-1) * 1000
    assert (mve_mm < 0.5).all(), mve_mm
    torch.testing.assert_close(res.rot.double(), rot, atol=1e-3, rtol=0)
    torch.testing.assert_close(res.transl.double(), transl, atol=1e-3, rtol=0)
    # re-projection error (MRLE) essentially zero
    assert (res.landmarks2d.double() - uv.double()).norm(dim=-1).mean() < 0.05
    assert torch.isfinite(res.cost).all() and (res.cost < 1.0).all()


def test_rigid_init_is_close_and_rigid_stage_reduces_cost(arrays):
    idx = np.arange(0, NV, 3)
    uv, _, (rot, transl, _, _) = _problem(arrays, 4, seed=2, idx=idx, dtype=torch.float32)
    fitter = _fitter(arrays, idx, nonrigid_iterations=0)
    res = fitter.fit(uv)
    # closed-form init: within ~15 degrees and 10 % of the depth
    ang = (res.init_rot.double() - rot).norm(dim=-1)
    assert (ang < 0.3).all(), ang
    assert ((res.init_transl[:, 2].double() - transl[:, 2]).abs() / transl[:, 2] < 0.15).all()
    # the rigid LM (nonrigid_iterations=0) lowers the cost of the closed-form init
    L = len(idx)
    zc = torch.zeros(4, fitter.lmk.n_coeffs)
    zp = torch.zeros(4, fitter.lmk.n_pose)
    init_err = reprojection(
        fitter.lmk,
        res.init_rot,
        res.init_transl,
        zc,
        zp,
        fitter.config.camera(4),
        uv,
        torch.ones(4, L),
    ).error
    init_cost = 0.5 * init_err.pow(2).sum(-1)
    assert (res.cost < 0.95 * init_cost).all(), (res.cost, init_cost)
    assert (res.shape == 0).all()  # no non-rigid stage ran


def test_bad_items_are_flagged_and_do_not_touch_the_others(arrays):
    idx = np.arange(0, NV, 4)
    uv, _, _ = _problem(arrays, 3, seed=3, idx=idx, dtype=torch.float32)
    L = len(idx)
    fitter = _fitter(arrays, idx)
    good = fitter.fit(uv, torch.ones(3, L))
    lm = uv.repeat(3, 1, 1)[:8].clone()  # items 0..2 good, then bad ones
    conf = torch.ones(8, L)
    conf[3] = 0.0  # zero confidences
    lm[4] = lm[4] * 1e4  # far outside the image
    t = torch.linspace(0, 1, L)
    lm[5] = torch.stack([20 + 200 * t, 30 + 100 * t], -1)  # collinear
    lm[6, 5, 0] = float("nan")  # NaN input
    conf[7, :] = float("inf")  # inf confidences
    lm = lm[[3, 0, 4, 1, 5, 2, 6, 7]]  # interleave good and bad
    conf = conf[[3, 0, 4, 1, 5, 2, 6, 7]]
    res = fitter.fit(lm, conf)
    assert res.valid.tolist() == [False, True, False, True, False, True, False, False]
    for name in (
        "rot",
        "transl",
        "shape",
        "expr",
        "pose",
        "vertices",
        "landmarks2d",
        "cost",
        "vertices_camera",
    ):
        assert not torch.isnan(getattr(res, name)).any(), name
    assert torch.isinf(res.cost[~res.valid]).all()
    # invalid items hold the mean face
    assert (res.shape[~res.valid] == 0).all() and (res.expr[~res.valid] == 0).all()
    for j, i in enumerate([1, 3, 5]):
        torch.testing.assert_close(res.vertices[i], good.vertices[j], atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(res.cost[i], good.cost[j], atol=1e-4, rtol=1e-3)


def test_confidence_weights_downweight_outliers(arrays):
    idx = np.arange(0, NV, 2)
    uv, verts, _ = _problem(arrays, 2, seed=4, idx=idx, dtype=torch.float32)
    L = len(idx)
    g = torch.Generator().manual_seed(0)
    bad = torch.rand(2, L, generator=g) < 0.15
    corrupted = uv + bad[..., None] * 30 * torch.randn(2, L, 2, generator=g)
    fitter = _fitter(arrays, idx)
    plain = fitter.fit(corrupted)
    weighted = fitter.fit(corrupted, (~bad).float())
    err = lambda r: (r.vertices.double() - verts).norm(dim=-1).mean() * 1000  # noqa: E731
    assert err(weighted) < 0.5 < err(plain)


@pytest.mark.parametrize("mode,tol_lm,tol_conf", [("implicit", 0.1, 0.35), ("unroll", 0.05, 0.05)])
def test_gradients_flow_to_landmarks_and_confidences(arrays, mode, tol_lm, tol_conf):
    """Implicit differentiation through the non-rigid LM vs finite differences of the whole fit.

    Theseus' implicit mode uses the Gauss-Newton Hessian, exact only at zero residual: with
    0.5 px landmark noise it is within a few percent for landmarks; the confidence gradient
    is itself proportional to the residual, so the GN error is of the same order there (sign
    and magnitude only). 'unroll' differentiates the iterations themselves: tight agreement."""
    idx = np.arange(0, NV, 8)
    uv, _, _ = _problem(arrays, 1, seed=5, idx=idx)
    L = len(idx)
    g = torch.Generator().manual_seed(1)
    uv = uv + 0.5 * torch.randn(uv.shape, generator=g, dtype=torch.float64)  # a non-zero residual
    conf0 = 0.5 + 0.5 * torch.rand(1, L, generator=g, dtype=torch.float64)
    fitter = _fitter(
        arrays,
        idx,
        dtype="float64",
        nonrigid_iterations=60,
        w_shape=1e-2,
        w_expr=1e-2,
        backward_mode=mode,
    )
    w = torch.randn(1, NV, 3, generator=g, dtype=torch.float64)

    def loss(lm, cf):
        return (fitter.fit(lm, cf).vertices * w).sum() * 1000

    lm = uv.clone().requires_grad_(True)
    cf = conf0.clone().requires_grad_(True)
    loss(lm, cf).backward()
    assert torch.isfinite(lm.grad).all() and torch.isfinite(cf.grad).all()
    assert lm.grad.abs().max() > 0 and cf.grad.abs().max() > 0
    eps = 1e-3
    with torch.no_grad():
        for l_idx, c in [(0, 0), (3, 1), (7, 0)]:
            d = torch.zeros_like(uv)
            d[0, l_idx, c] = eps
            fd = (loss(uv + d, conf0) - loss(uv - d, conf0)) / (2 * eps)
            an = lm.grad[0, l_idx, c]
            assert torch.sign(fd) == torch.sign(an) and abs(fd - an) < tol_lm * abs(fd) + 1e-6, (
                l_idx,
                c,
                fd,
                an,
            )
        for l_idx in (2, 9):
            d = torch.zeros_like(conf0)
            d[0, l_idx] = eps
            fd = (loss(uv, conf0 + d) - loss(uv, conf0 - d)) / (2 * eps)
            an = cf.grad[0, l_idx]
            assert torch.sign(fd) == torch.sign(an) and abs(fd - an) < tol_conf * abs(fd) + 1e-4, (
                l_idx,
                fd,
                an,
            )


def test_float64_and_float32_agree(arrays):
    idx = np.arange(0, NV, 4)
    uv, _, _ = _problem(arrays, 2, seed=6, idx=idx)
    r64 = _fitter(arrays, idx, dtype="float64").fit(uv)
    r32 = _fitter(arrays, idx, dtype="float32").fit(uv.float())
    torch.testing.assert_close(r32.vertices.double(), r64.vertices, atol=1e-4, rtol=0)


def test_wrong_landmark_count_raises_with_the_expected_shape(arrays):
    fitter = _fitter(arrays, np.arange(10))
    with pytest.raises(ValueError, match=r"\(B, 10, 2\)"):
        fitter.fit(torch.zeros(2, 11, 2))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(arrays):
    idx = np.arange(0, NV, 2)
    uv, verts, _ = _problem(arrays, 4, seed=7, idx=idx, dtype=torch.float32)
    fitter = _fitter(arrays, idx)
    cpu = fitter.fit(uv)
    gpu = fitter.to("cuda").fit(uv.cuda())
    assert gpu.vertices.is_cuda and gpu.valid.all()
    torch.testing.assert_close(gpu.vertices.cpu(), cpu.vertices, atol=1e-4, rtol=0)
