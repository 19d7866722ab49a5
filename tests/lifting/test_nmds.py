"""Batched non-metric MDS against exact configurations, scipy's PAV and sklearn's MDS."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import isotonic_regression as scipy_isotonic

from fitting.nmds import (
    classical_mds,
    isotonic_regression,
    isotonic_regression_torch,
    kruskal_stress1,
    pairwise_distances,
    smacof_nmds,
)
from lightning_modules.metrics.shape3d import mse_procrustes


def _faces(b: int, n: int = 30, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 1.3, 0.6], dtype=torch.float64)


def test_isotonic_hand_cases() -> None:
    y = torch.tensor([[3.0, 1.0, 2.0, 5.0], [1.0, 3.0, 2.0, 4.0]], dtype=torch.float64)
    out = isotonic_regression(y)
    assert torch.allclose(out[0], torch.tensor([2.0, 2.0, 2.0, 5.0], dtype=torch.float64))
    assert torch.allclose(out[1], torch.tensor([1.0, 2.5, 2.5, 4.0], dtype=torch.float64))


@pytest.mark.parametrize("fn", [isotonic_regression, isotonic_regression_torch])
def test_isotonic_matches_scipy_per_row(fn) -> None:
    g = torch.Generator().manual_seed(1)
    y = torch.randn(6, 400, generator=g, dtype=torch.float64) + torch.linspace(0, 3, 400, dtype=torch.float64)
    y[0] = torch.linspace(5, 0, 400, dtype=torch.float64)  # all violators: one block
    out = fn(y)
    for b in range(6):
        np.testing.assert_allclose(out[b].numpy(), scipy_isotonic(y[b].numpy()).x, atol=1e-12)


def test_classical_mds_recovers_exact_configuration() -> None:
    x = _faces(4)
    rec = classical_mds(pairwise_distances(x), dim=3)
    assert torch.allclose(pairwise_distances(rec), pairwise_distances(x), atol=1e-8)


def test_nmds_recovers_from_exact_distances_up_to_similarity() -> None:
    x = _faces(3)
    res = smacof_nmds(pairwise_distances(x), n_iter=50)
    assert res.points.shape == x.shape
    assert torch.all(res.stress < 1e-4)
    assert torch.all(mse_procrustes(res.points, x, allow_reflection=True) < 1e-6)


def test_nmds_is_non_metric_recovers_through_monotone_distortion() -> None:
    x = _faces(3, seed=2)
    d = pairwise_distances(x)
    distorted = torch.exp(d) - 1.0  # same order, very different values
    start = classical_mds(distorted)
    res = smacof_nmds(distorted, n_iter=300)
    err_start = mse_procrustes(start, x, allow_reflection=True)
    err_final = mse_procrustes(res.points, x, allow_reflection=True)
    assert torch.all(err_final < 0.1 * err_start)
    assert torch.all(err_final < 5e-3)


def test_stress_within_one_percent_of_sklearn() -> None:
    sklearn_manifold = pytest.importorskip("sklearn.manifold")
    x = _faces(2, n=40, seed=3)
    g = torch.Generator().manual_seed(4)
    noisy = pairwise_distances(x) * torch.exp(0.15 * torch.randn(2, 40, 40, generator=g, dtype=torch.float64))
    noisy = 0.5 * (noisy + noisy.transpose(1, 2)) * (1 - torch.eye(40, dtype=torch.float64))
    ours = kruskal_stress1(smacof_nmds(noisy, n_iter=300).points, noisy)
    for b in range(2):
        mds = sklearn_manifold.MDS(
            n_components=3, metric_mds=False, metric="precomputed", init="classical_mds", n_init=1,
            max_iter=300, random_state=0,
        )
        emb = torch.from_numpy(mds.fit_transform(noisy[b].numpy()))
        theirs = kruskal_stress1(emb[None], noisy[b : b + 1])[0]
        assert ours[b] <= theirs * 1.01, (float(ours[b]), float(theirs))


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="dissimilarities"):
        smacof_nmds(torch.zeros(4, 4))


def test_disparities_pool_ties_and_skip_zeros_by_hand() -> None:
    from fitting.nmds import _disparities, _rank_structure

    d = torch.tensor([[1.0, 1.0, 2.0, 0.0]], dtype=torch.float64)
    dist = torch.tensor([[1.0, 3.0, 5.0, 9.0]], dtype=torch.float64)
    # ties (1, 1) share the mean 2 of their distances; the zero is missing -> disparity 0
    out = _disparities(dist, _rank_structure(d))
    assert out.tolist() == [[2.0, 2.0, 5.0, 0.0]]
    # tied pair whose mean violates the order of the next value: pooled with it, 3 values of 3
    out = _disparities(torch.tensor([[5.0, 3.0, 1.0]], dtype=torch.float64),
                       _rank_structure(torch.tensor([[1.0, 1.0, 2.0]], dtype=torch.float64)))
    assert out.tolist() == [[3.0, 3.0, 3.0]]


def test_disparities_equal_sklearns_isotonic_step_with_ties_and_zeros() -> None:
    """sklearn.manifold._mds._smacof_single's non-metric step: IsotonicRegression().fit_transform
    on the non-zero dissimilarities, disparity 0 for the zero ones."""
    from sklearn.isotonic import IsotonicRegression

    from fitting.nmds import _disparities, _rank_structure

    g = np.random.default_rng(0)
    d = g.integers(0, 6, (3, 40)).astype(np.float64)  # many ties and some zeros
    dist = g.uniform(0, 5, (3, 40))
    ours = _disparities(torch.from_numpy(dist), _rank_structure(torch.from_numpy(d))).numpy()
    for b in range(3):
        nz = d[b] != 0
        want = np.zeros(40)
        want[nz] = IsotonicRegression().fit_transform(d[b, nz], dist[b, nz])
        np.testing.assert_allclose(ours[b], want, atol=1e-12)
