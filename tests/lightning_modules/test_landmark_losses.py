"""Hand-computed checks of NGLL, ResLL (+Exp), Vertex-Edge, Wing(+MSE) and Zhao's pair loss."""

import math

import pytest
import torch

from lightning_modules.components.flows import RealNVPFlow
from lightning_modules.losses.nll import NGLLLoss
from lightning_modules.losses.resll import ResLLExpLoss, ResLLLoss
from lightning_modules.losses.vertex_edge import VertexEdgeLoss, edges_from_faces
from lightning_modules.losses.wing import WingLoss, WingMSELoss, wing
from lightning_modules.losses.zhao_pairs import ZhaoPairsLoss, local_loss, pairs_loss


def test_ngll_closed_form():
    mu = torch.tensor([[[0.0, 1.0]]])
    target = torch.tensor([[[0.5, 0.0]]])
    sigma = torch.tensor([[[0.5, 2.0]]])
    # x: log 0.5 + 0.25 / (2 * 0.25) = log 0.5 + 0.5 ; y: log 2 + 1 / 8
    expected = math.log(0.5) + 0.5 + math.log(2.0) + 1.0 / 8.0
    got = NGLLLoss()(mu, sigma, target)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_ngll_weighted_mean_ignores_zero_weight():
    mu = torch.zeros(1, 2, 2)
    target = torch.tensor([[[1.0, 0.0], [100.0, 0.0]]])
    sigma = torch.ones(1, 2, 2)
    got = NGLLLoss()(mu, sigma, target, weight=torch.tensor([[1.0, 0.0]]))
    assert got.item() == pytest.approx(0.5, abs=1e-6)


def test_ngll_minimised_at_sigma_equal_abs_residual():
    mu = torch.zeros(1, 1, 2)
    target = torch.tensor([[[0.3, -0.3]]])
    loss = NGLLLoss()
    values = [loss(mu, torch.full((1, 1, 2), s), target).item() for s in (0.2, 0.3, 0.4)]
    assert values[1] < values[0] and values[1] < values[2]


def test_resll_without_flow_equals_q_term_laplace_by_hand():
    mu = torch.tensor([[[0.1, -0.2]]])
    target = torch.tensor([[[0.3, -0.2]]])
    sigma = torch.tensor([[[0.5, 0.25]]])
    loss = ResLLLoss(flow=None, q_distribution="laplace")
    # x: log(2 * 0.5) + 0.2 / 0.5 = 0.4 ; y: log(2 * 0.25) + 0 = log 0.5
    expected = 0.4 + math.log(0.5)
    assert loss(mu, sigma, target).item() == pytest.approx(expected, abs=1e-6)
    assert loss(mu, sigma, target).item() == pytest.approx(loss.q_term(mu, sigma, target).item(), abs=1e-7)


def test_resll_gaussian_q_equals_ngll_plus_constant():
    g = torch.Generator().manual_seed(0)
    mu, target = torch.randn(2, 5, 2, generator=g), torch.randn(2, 5, 2, generator=g)
    sigma = torch.rand(2, 5, 2, generator=g) + 0.1
    resll = ResLLLoss(flow=None, q_distribution="gaussian")(mu, sigma, target)
    ngll = NGLLLoss()(mu, sigma, target)
    assert resll.item() == pytest.approx(ngll.item() + math.log(2 * math.pi), abs=1e-5)


def test_resll_identity_flow_adds_standard_normal_nll():
    """A flow with no coupling layers is the prior N(0, I2): -log G = log(2 pi) + |x_bar|^2 / 2."""
    mu = torch.tensor([[[0.0, 0.0]]])
    target = torch.tensor([[[0.2, -0.1]]])
    sigma = torch.tensor([[[0.1, 0.1]]])
    loss = ResLLLoss(flow=RealNVPFlow(num_pairs=0))
    x_bar = torch.tensor([2.0, -1.0])
    q = (math.log(2.0 * 0.1) + 2.0) + (math.log(2.0 * 0.1) + 1.0)
    expected = q + math.log(2 * math.pi) + 0.5 * float((x_bar**2).sum())
    assert loss(mu, sigma, target).item() == pytest.approx(expected, abs=1e-5)


def test_resll_rle_flow_is_a_density_and_differentiable():
    torch.manual_seed(0)
    flow = RealNVPFlow(num_pairs=3)
    assert len(flow.flow.flows) == 6
    # G_phi integrates to 1 over the plane (Riemann sum on a fine grid)
    t = torch.arange(-10.0, 10.0, 0.05)
    grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        mass = flow.log_prob(grid).exp().sum() * 0.05**2
    assert mass.item() == pytest.approx(1.0, abs=0.01)
    mu = torch.zeros(2, 3, 2, requires_grad=True)
    raw = torch.zeros(2, 3, 2, requires_grad=True)
    loss_fn = ResLLLoss(flow=flow)
    loss = loss_fn(mu, loss_fn.activate_sigma(raw), torch.randn(2, 3, 2) * 0.1)
    loss.backward()
    assert mu.grad.abs().sum() > 0 and raw.grad.abs().sum() > 0
    assert all(p.grad is not None for p in flow.parameters())


def test_resll_double_log_sigma_matches_rle_code_form():
    mu, target = torch.zeros(1, 1, 2), torch.tensor([[[0.1, 0.2]]])
    sigma = torch.tensor([[[0.3, 0.4]]])
    single = ResLLLoss(flow=None)(mu, sigma, target)
    double = ResLLLoss(flow=None, double_log_sigma=True)(mu, sigma, target)
    assert (double - single).item() == pytest.approx(math.log(0.3) + math.log(0.4), abs=1e-6)


def test_resll_sigma_activations():
    raw = torch.tensor([0.0, 2.0])
    assert torch.allclose(ResLLLoss().activate_sigma(raw), torch.sigmoid(raw))
    assert torch.allclose(ResLLExpLoss().activate_sigma(raw), torch.exp(raw))
    with pytest.raises(ValueError, match="q_distribution"):
        ResLLLoss(q_distribution="cauchy")


def test_vertex_edge_by_hand():
    pred = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]])
    target = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [0.0, 2.0]]])
    edges = edges_from_faces(torch.tensor([[0, 1, 2]]))
    assert edges.tolist() == [[0, 1], [0, 2], [1, 2]]
    # edge (0,1): pred (-1,0) gt (-1,-1) -> 1 ; (0,2): 0 ; (1,2): pred (1,-2) gt (1,-1) -> 1
    assert VertexEdgeLoss(edges)(pred, target).item() == pytest.approx(2.0)
    assert VertexEdgeLoss(edges, reduction="mean")(pred, target).item() == pytest.approx(2.0 / 3.0)
    # a pure translation of all landmarks costs nothing
    assert VertexEdgeLoss(edges)(target + 3.0, target).item() == pytest.approx(0.0)


def test_wing_hand_values_and_continuity():
    w, eps = 15.0, 3.0
    c = w - w * math.log(1 + w / eps)
    x = torch.tensor([0.0, 3.0, -6.0, 20.0])
    expected = [0.0, 15 * math.log(2.0), 15 * math.log(3.0), 20.0 - c]
    assert torch.allclose(wing(x, w, eps), torch.tensor(expected), atol=1e-5)
    below, above = wing(torch.tensor([w - 1e-4, w + 1e-4]), w, eps)
    assert above.item() == pytest.approx(below.item(), abs=1e-3)
    assert WingLoss(10.0, 2.0)(torch.tensor([[[1.0]]]), torch.zeros(1, 1, 1)).item() == pytest.approx(
        10 * math.log(1.5), abs=1e-6
    )


def test_wing_mse_hybrid_by_hand():
    preds = {"dense": torch.tensor([[[3.0, 0.0, 0.0]]]), "sparse68": torch.tensor([[[2.0, 0.0]]])}
    targets = {"dense": torch.zeros(1, 1, 3), "sparse68": torch.zeros(1, 1, 2)}
    # Wing mean over 3 elements: 15 ln 2 / 3 ; MSE mean over 2 elements: 4 / 2
    expected = 1.5 * (15 * math.log(2.0) / 3) + 0.5 * 2.0
    assert WingMSELoss()(preds, targets).item() == pytest.approx(expected, abs=1e-5)
    swapped = WingMSELoss(wing_on="sparse68", mse_on="dense")(preds, targets)
    assert swapped.item() == pytest.approx(1.5 * (15 * math.log(1 + 2 / 3) / 2) + 0.5 * 3.0, abs=1e-5)
    with pytest.raises(ValueError, match="wing_on"):
        WingMSELoss(wing_on="kp")


def test_zhao_pair_loss_on_a_toy():
    target = torch.tensor([[[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]])
    pred = torch.tensor([[[0.0, 0.0], [6.0, 0.0], [0.0, 4.0]]])
    # pair distances gt: 3, 4, 5 ; pred: 6, 4, sqrt(52)
    sq = (6 - 3) ** 2 + 0 + (math.sqrt(52) - 5) ** 2
    assert pairs_loss(pred, target).item() == pytest.approx(2 / (3 * 4) * sq, abs=1e-5)
    assert local_loss(pred, target).item() == pytest.approx(9 / 3, abs=1e-6)
    total = ZhaoPairsLoss(lambda_pairs=2.0)(pred, target)
    assert total.item() == pytest.approx(3.0 + 2 * (2 / 12) * sq, abs=1e-5)
    # rigid translation: no pair error
    assert pairs_loss(target + 5.0, target).item() == pytest.approx(0.0, abs=1e-5)


def test_wing_sample_sum_is_the_papers_per_sample_sum():
    # one sample, two coordinates: wing(3) = 15 ln 2, wing(20) = 20 - (15 - 15 ln 6)
    pred = torch.tensor([[[3.0, 20.0]]])
    target = torch.zeros_like(pred)
    per = [15 * math.log(2.0), 20 - (15 - 15 * math.log(6.0))]
    assert WingLoss(reduction="sample_sum")(pred, target).item() == pytest.approx(sum(per), rel=1e-6)
    assert WingLoss()(pred, target).item() == pytest.approx(sum(per) / 2, rel=1e-6)
    x = torch.randn(4, 10, 3) * 10
    assert WingLoss(reduction="sample_sum")(x, 0 * x).item() == pytest.approx(30 * WingLoss()(x, 0 * x).item(), rel=1e-5)
    with pytest.raises(ValueError, match="reduction"):
        WingLoss(reduction="sum")
