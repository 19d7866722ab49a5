"""3D shape metrics against hand-computed cases (and scipy / numpy where they define them)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import procrustes as scipy_procrustes

from facemodels.procrustes import similarity_align
from facemodels.rotations import euler_to_matrix
from lightning_modules.metrics.shape3d import (
    APE,
    CEDAUC,
    CVGTCE,
    GTE,
    DepthCorr,
    ProcrustesMSE,
    ape,
    ced_auc,
    ced_curve,
    cvgtce,
    depth_corr,
    gte,
    icp_procrustes_distance,
    mse_procrustes,
    wilcoxon_over_subsets,
)


def _face(b: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 68, 3, generator=g, dtype=torch.float64)
    x[:, 36] = torch.tensor([-5.0, 0.0, 0.0], dtype=torch.float64)
    x[:, 45] = torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64)  # outer eye corners 10 apart
    return x


def test_ape_and_gte_hand_case() -> None:
    gt = _face()
    pred = gt + torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64)  # every point 5 off
    assert torch.allclose(ape(pred, gt), torch.full((2,), 5.0, dtype=torch.float64))
    assert torch.allclose(gte(pred, gt), torch.full((2,), 0.5, dtype=torch.float64))
    m = GTE()
    m(pred, gt)
    assert float(m.compute()) == pytest.approx(0.5)
    a = APE()
    a(pred, gt)
    assert float(a.compute()) == pytest.approx(5.0)


def test_cvgtce_removes_similarity_but_gte_does_not() -> None:
    gt = _face()
    rot = euler_to_matrix(torch.tensor([[30.0, -10.0, 5.0], [-70.0, 20.0, 0.0]], dtype=torch.float64))
    pred = 2.5 * gt @ rot.transpose(1, 2) + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    assert torch.all(cvgtce(pred, gt) < 1e-10)
    assert torch.all(gte(pred, gt) > 0.3)
    m = CVGTCE()
    m(pred, gt)
    assert float(m.compute()) < 1e-6


def test_similarity_align_hand_case_and_no_reflection() -> None:
    src = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], dtype=torch.float64)
    dst = 3.0 * src[..., [1, 0, 2]] * torch.tensor([-1.0, 1, 1], dtype=torch.float64) + 2.0  # rotation 90 about z
    fit = similarity_align(src, dst)
    assert float(fit.scale) == pytest.approx(3.0)
    assert torch.allclose(fit.aligned, dst, atol=1e-12)
    mirrored = src * torch.tensor([1.0, 1, -1], dtype=torch.float64)
    assert float(torch.linalg.det(similarity_align(src, mirrored).R[0])) == pytest.approx(1.0)


def test_mse_procrustes_is_scipy_disparity() -> None:
    gt = _face(3, seed=1)
    g = torch.Generator().manual_seed(5)
    pred = gt + 0.3 * torch.randn(gt.shape, generator=g, dtype=torch.float64)
    ours = mse_procrustes(pred, gt, standardize=True, allow_reflection=True)
    for b in range(3):
        _, _, disparity = scipy_procrustes(gt[b].numpy(), pred[b].numpy())
        assert float(ours[b]) == pytest.approx(disparity, rel=1e-9)
    # unstandardised: a pure similarity gives 0; a translated single point gives |d|^2 / L minus what alignment removes
    assert torch.all(mse_procrustes(3 * gt + 1, gt, standardize=False) < 1e-20)
    m = ProcrustesMSE()
    m(pred, gt)
    assert float(m.compute()) == pytest.approx(float(ours.mean()), rel=1e-6)


def test_depth_corr_hand_cases_and_depthnets_definition() -> None:
    """DepthCorr (Moniz et al. 2018, cited by Deep-MDS): over a set of faces, |corr| across the faces
    of each landmark's predicted and GT depth, summed over landmarks; depths centred per face and
    divided by the GT outer-eye distance."""
    # hand case: 3 faces, 68 landmarks, outer-eye distance 2 for every face; every depth is 0
    # except landmark 0 (+a_n) and landmark 1 (-a_n), so the per-face mean depth is already 0.
    a_gt, a_pred = [1.0, 2.0, 3.0], [2.0, 1.0, 3.0]
    def faces(amps: list[float]) -> torch.Tensor:
        f = torch.zeros(3, 68, 3, dtype=torch.float64)
        f[:, 45, 0] = 2.0  # outer eye corners (36 at the origin): distance 2
        for n, amp in enumerate(amps):
            f[n, 0, 2], f[n, 1, 2] = amp, -amp
        return f
    gt, pred = faces(a_gt), faces(a_pred)
    # per landmark: corr((2,1,3), (1,2,3)) = 0.5 (deviations (0,-1,1) and (-1,0,1): 1 / (sqrt2 sqrt2));
    # landmark 1: corr of the negatives, also 0.5; the other 66 landmarks have zero variance -> 0
    assert float(depth_corr(pred, gt)) == pytest.approx(1.0)
    assert float(depth_corr(gt, gt)) == pytest.approx(2.0)
    assert float(depth_corr(-gt, gt)) == pytest.approx(2.0)  # absolute correlation (DepthNets' np.abs)
    # the definition in DepthNets' code: np.corrcoef(preds, actuals, rowvar=0), one row per face
    g = torch.Generator().manual_seed(6)
    gt = _face(40, seed=2)
    pred = gt + 0.01 * torch.randn(gt.shape, generator=g, dtype=torch.float64)
    zp = pred[..., 2] - pred[..., 2].mean(1, keepdim=True)
    zg = gt[..., 2] - gt[..., 2].mean(1, keepdim=True)
    size = (gt[:, 36] - gt[:, 45]).norm(dim=-1).view(-1, 1)
    ref = np.sum(np.diag(np.abs(np.corrcoef((zp / size).numpy(), (zg / size).numpy(), rowvar=False)[:68, 68:])))
    assert float(depth_corr(pred, gt)) == pytest.approx(ref, rel=1e-9)
    assert 0 < ref < 68
    # a per-face constant depth offset and a per-face scale of both shapes do not change it
    scale = torch.linspace(0.5, 2.0, 40, dtype=torch.float64).view(-1, 1, 1)
    assert float(depth_corr(pred * scale + torch.tensor([0.0, 0.0, 3.0], dtype=torch.float64), gt * scale)) == \
        pytest.approx(ref, rel=1e-9)
    # the streaming metric over two batches equals the set value
    m = DepthCorr()
    m(pred[:15], gt[:15])
    m(pred[15:], gt[15:])
    assert float(m.compute()) == pytest.approx(ref, rel=1e-5)


def test_wilcoxon_over_subsets_all_one_direction() -> None:
    rng = np.random.default_rng(0)
    err_b = rng.random(5000)
    err_a = err_b + 0.1
    res = wilcoxon_over_subsets(err_a, err_b, n_subsets=10, subset_size=500, seed=1)
    np.testing.assert_allclose(res["means_a"] - res["means_b"], 0.1)
    assert res["statistic"] == 0.0
    assert res["pvalue"] == pytest.approx(2.0 / 2**10)  # exact two-sided, n = 10
    with pytest.raises(ValueError, match="subset_size"):
        wilcoxon_over_subsets(err_a[:100], err_b[:100])


def test_ced_and_auc_hand_case() -> None:
    errs = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    assert float(ced_auc(errs, 1.0)) == pytest.approx(0.375)  # mean(1, .5, 0, 0)
    th = torch.linspace(0, 1, 100001, dtype=torch.float64)
    assert float(torch.trapezoid(ced_curve(errs, th), th)) == pytest.approx(0.375, abs=1e-4)
    assert torch.allclose(ced_curve(errs, torch.tensor([0.0, 0.5, 3.0], dtype=torch.float64)),
                          torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64))
    m = CEDAUC(max_error=1.0)
    m.update(errs[:2])
    m.update(errs[2:])
    assert float(m.compute()) == pytest.approx(0.375)


def test_icp_procrustes_distance_hand_cases() -> None:
    cube = torch.tensor([[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)], dtype=torch.float64)
    # with scale: a scaled, rotated, shifted copy aligns exactly
    rot = euler_to_matrix(torch.tensor([10.0, 5.0, -8.0], dtype=torch.float64))
    assert float(icp_procrustes_distance(1.1 * cube @ rot.T + 0.2, cube, init_correspondence=torch.arange(8))) < 1e-12
    # without scale: 1.1 x cube stays 0.1 * (1,1,1) off each corner -> 100 * 8 * 0.03 / (8 * 3) = 1.0
    d = icp_procrustes_distance(1.1 * cube, cube, with_scale=False)
    assert float(d) == pytest.approx(1.0)
