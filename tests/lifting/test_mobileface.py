"""MobileFace: network shape, decoder, losses and the mesh distance on random batches."""

from __future__ import annotations

import functools

import pytest
import torch

from lightning_modules.components.bfm118 import BFM118, N_PARAMS, SLICES
from lightning_modules.components.mobilenet_v1 import MobileNetV1
from lightning_modules.mobileface import MobileFaceRegressor


def _face_model(n: int = 200) -> BFM118:
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(n, 3, generator=g) * torch.tensor([0.07, 0.09, 0.05])
    return BFM118(mean, 0.003 * torch.randn(n, 3, 80, generator=g), 0.002 * torch.randn(n, 3, 29, generator=g))


def _batch(fm: BFM118, b: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    p = fm.denormalise(0.5 * torch.randn(b, N_PARAMS, generator=g))
    return {"image": torch.randn(b, 3, 96, 96, generator=g), "params": p}


def test_mobilenet_matches_paper_sizes() -> None:
    net = MobileNetV1()
    assert net.features[0][0].weight.shape == (10, 3, 3, 3)  # first conv 3x3x3x10
    assert net.fc.in_features == 320 and net.fc.out_features == 118  # FC 320 -> 118
    n = sum(p.numel() for p in net.parameters())
    assert 1.2e6 < 4 * n < 1.6e6  # ~1.5 MB in float32 as reported
    assert net(torch.randn(2, 3, 96, 96)).shape == (2, 118)


def test_projection_hand_case() -> None:
    fm = BFM118(torch.tensor([[0.1, 0.2, 0.0]]), torch.zeros(1, 3, 80), torch.zeros(1, 3, 29))
    p = torch.zeros(1, N_PARAMS)
    p[0, SLICES["t"]] = torch.tensor([0.0, 0.0, 2.0])
    p[0, SLICES["f"]] = 100.0
    p[0, SLICES["pp"]] = torch.tensor([48.0, 40.0])
    # zero angles: R_cv = diag(1, -1, -1): (0.1, 0.2, 0) -> (0.1, -0.2, 2) -> u = 100*0.05+48, v = -100*0.1+40
    assert torch.allclose(fm.project(p), torch.tensor([[[53.0, 30.0]]]))


@pytest.mark.parametrize("loss", ["mse", "l2_2d3d", "l1_2d3d"])
def test_every_loss_trains_a_step(loss: str) -> None:
    fm = _face_model()
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3), loss=loss)
    batch = _batch(fm)
    opt = module.configure_optimizers()["optimizer"]
    before = [p.detach().clone() for p in module.net.parameters()]
    loss_val, p, _ = module.model_step(batch)
    assert torch.isfinite(loss_val) and p.shape == (4, N_PARAMS)
    loss_val.backward()
    assert all(q.grad is not None for q in module.net.parameters())
    opt.step()
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, module.net.parameters(), strict=True))


def test_mesh_distance_zero_for_gt_and_meanshape_is_far() -> None:
    fm = _face_model()
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3))
    p_gt = _batch(fm)["params"]
    p_gt2, s_gt = module.targets({"params": p_gt})
    assert torch.equal(p_gt2, p_gt) and torch.equal(s_gt, fm.shape(p_gt))
    assert torch.all(module.mesh_distances(p_gt, s_gt) < 1e-9)
    d_mean = module.mesh_distances(fm.param_mean.expand_as(p_gt), s_gt)
    assert torch.all(d_mean > 0.1)


def test_bad_params_raise() -> None:
    fm = _face_model()
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3))
    with pytest.raises(ValueError, match="params"):
        module.model_step({"image": torch.zeros(1, 3, 96, 96), "params": torch.zeros(1, 62)})


def test_3ddfa_params_convert_on_the_procedural_bfm() -> None:
    """300W-LP's (B, 235) parameters -> BFM118 shape coefficients: the converted face equals the
    LinearBFM face of the same parameters (80 id modes used), keypoints are vertices 0..67."""
    from facemodels.bfm import LinearBFM

    bfm = LinearBFM()
    fm = BFM118.from_bfm(n_vertices=300)
    g = torch.Generator().manual_seed(3)
    shape_para = torch.zeros(2, 199)
    shape_para[:, :80] = torch.randn(2, 80, generator=g) * bfm.shape_std[:80]
    exp_para = torch.randn(2, 29, generator=g) * bfm.exp_std
    params = torch.cat([shape_para, exp_para, torch.zeros(2, 7)], 1)
    p118 = fm.param_mean.expand(2, -1).clone()
    p118[:, :109] = fm.coefficients_from_3ddfa(params)
    ref_kp = bfm.landmarks(shape_para, exp_para) * 1e-6  # (2, 68, 3) metres
    torch.testing.assert_close(fm.shape(p118)[:, :68], ref_kp, atol=1e-7, rtol=1e-5)
    with pytest.raises(ValueError, match="235"):
        fm.coefficients_from_3ddfa(torch.zeros(1, 62))


@pytest.mark.parametrize("loss", ["mse", "l2_2d3d", "l1_2d3d"])
def test_3ddfa_batch_trains_a_step(loss: str) -> None:
    fm = BFM118.from_bfm(n_vertices=200)
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3), loss=loss)
    g = torch.Generator().manual_seed(0)
    pose = torch.tensor([[0.1, 0.3, -0.05, 220.0, 230.0, 0.0, 1.3e-3]]).expand(2, -1)
    params = torch.cat([torch.randn(2, 228, generator=g) * torch.cat([fm.id_ev, torch.full((119,), 1e3), fm.exp_ev]),
                        pose], 1)
    crop = torch.tensor([[[0.5, 0.0, -60.0], [0.0, 0.5, -60.0], [0.0, 0.0, 1.0]]]).expand(2, -1, -1)
    batch = {"image": torch.randn(2, 3, 96, 96, generator=g), "params": params, "crop_matrix": crop,
             "source_height": torch.full((2,), 450.0), "flipped": torch.tensor([0.0, 1.0])}
    opt = module.configure_optimizers()["optimizer"]
    loss_v, p, p_gt = module.model_step(batch)
    assert torch.isfinite(loss_v) and p.shape == p_gt.shape == (2, 118)
    opt.zero_grad()
    loss_v.backward()
    assert all(torch.isfinite(q.grad).all() for q in module.net.parameters() if q.grad is not None)
    with pytest.raises(ValueError, match="crop_matrix"):
        module.model_step({"image": batch["image"], "params": batch["params"]})


@pytest.mark.parametrize(("name", "loss"), [("mobileface", "mse"), ("mobileface_l2", "l2_2d3d"), ("mobileface_l1", "l1_2d3d")])
def test_configs_select_w300lp_and_build(name: str, loss: str) -> None:
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from experiments.train import instantiate_model

    configs = Path(__file__).resolve().parents[2] / "configs"
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("train.yaml", overrides=[f"model={name}", "model.face_model.n_vertices=100"])
    assert cfg.data._target_.endswith("W300LPDataModule") and cfg.model.loss == loss
    module = instantiate_model(OmegaConf.create(OmegaConf.to_container(cfg.model, resolve=True)))
    assert module.face_model.n_keypoints == 68 and module.hparams.image_size == 96


class _Fixed(torch.nn.Module):
    """A 'network' that returns the given normalised parameters (for hand-computed loss values)."""

    def __init__(self, p_norm: torch.Tensor) -> None:
        super().__init__()
        self.p_norm = torch.nn.Parameter(p_norm.clone())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.p_norm.expand(image.shape[0], -1)


def _one_vertex_case() -> tuple[BFM118, torch.Tensor, torch.Tensor]:
    """One vertex at (0.1, 0.2, 0) m; alpha_id[0] moves it by (0.01, 0, 0) m per unit. Camera: zero
    angles, t = (0, 0, 2) m, f = 100 px, principal point (48, 40); the prediction differs from the
    target only in alpha_id[0] (1 vs 0) and Px (50 vs 48)."""
    id_basis = torch.zeros(1, 3, 80)
    id_basis[0, 0, 0] = 0.01
    fm = BFM118(torch.tensor([[0.1, 0.2, 0.0]]), id_basis, torch.zeros(1, 3, 29))
    gt = torch.zeros(1, N_PARAMS)
    gt[0, SLICES["t"]] = torch.tensor([0.0, 0.0, 2.0])
    gt[0, SLICES["f"]] = 100.0
    gt[0, SLICES["pp"]] = torch.tensor([48.0, 40.0])
    pred = gt.clone()
    pred[0, 0] = 1.0
    pred[0, SLICES["pp"].start] = 50.0
    return fm, pred, gt


@pytest.mark.parametrize(("loss", "expected"), [
    # S differs by (10 mm, 0, 0); u_pred = 100 * 0.11 / 2 + 50 = 55.5 vs u_gt = 100 * 0.1 / 2 + 48 = 53: 2.5 px
    ("l2_2d3d", 10.0**2 + 2.5**2),
    ("l1_2d3d", 10.0 + 2.5),
    # normalised with the default std: alpha_id[0] (std 1): 1; Px (std 96 / 16 = 6): (2 / 6)^2
    ("mse", 1.0 + (2.0 / 6.0) ** 2),
])
def test_losses_hand_computed(loss: str, expected: float) -> None:
    fm, pred, gt = _one_vertex_case()
    module = MobileFaceRegressor(_Fixed(fm.normalise(pred)), fm, functools.partial(torch.optim.Adam, lr=1e-3),
                                 loss=loss, param_stats="default")
    value, p, _ = module.model_step({"image": torch.zeros(1, 3, 96, 96), "params": gt})
    torch.testing.assert_close(p, pred)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_loss_weights_scale_the_two_terms() -> None:
    fm, pred, gt = _one_vertex_case()
    module = MobileFaceRegressor(_Fixed(fm.normalise(pred)), fm, functools.partial(torch.optim.Adam, lr=1e-3),
                                 loss="l2_2d3d", w3d=0.5, w2d=2.0)
    value, _, _ = module.model_step({"image": torch.zeros(2, 3, 96, 96), "params": gt.expand(2, -1)})
    assert value.item() == pytest.approx(0.5 * 100.0 + 2.0 * 6.25, rel=1e-5)


@pytest.mark.parametrize("id_std", [1.0, 2.0])
def test_geometric_mse_hand_computed(id_std: float) -> None:
    """mse_weights="geometric" (Eq. 2 with the shape coefficients in the model's units): alpha_id[0] off by
    one unit moves the one vertex by 10 mm, i.e. 100 mm^2 whatever the training std of alpha_id[0] (the
    normalised error 1 / std is weighted by std^2 * 100 mm^2); Px keeps its normalised (2 / 6)^2.
    The uniform weighting would give (1 / std)^2 + (2 / 6)^2 instead."""
    fm, pred, gt = _one_vertex_case()
    fm.param_std[0] = id_std
    module = MobileFaceRegressor(_Fixed(fm.normalise(pred)), fm, functools.partial(torch.optim.Adam, lr=1e-3),
                                 loss="mse", param_stats="default", mse_weights="geometric")
    torch.testing.assert_close(fm.mode_weights()[:2], torch.tensor([100.0, 0.0]))
    value, _, _ = module.model_step({"image": torch.zeros(1, 3, 96, 96), "params": gt})
    assert value.item() == pytest.approx(100.0 + (2.0 / 6.0) ** 2, rel=1e-5)
    uniform = MobileFaceRegressor(_Fixed(fm.normalise(pred)), fm, functools.partial(torch.optim.Adam, lr=1e-3),
                                  loss="mse", param_stats="default", mse_weights="uniform")
    value, _, _ = uniform.model_step({"image": torch.zeros(1, 3, 96, 96), "params": gt})
    assert value.item() == pytest.approx(1.0 / id_std**2 + (2.0 / 6.0) ** 2, rel=1e-5)


def test_geometric_mse_shape_part_is_the_mean_squared_vertex_error() -> None:
    """With the camera exact, the geometric mse equals the 3D term of the l2 loss (mean over vertices of
    ||dS||^2, mm^2) up to the cross terms of non-orthogonal modes: exact here for orthogonal modes."""
    n = 60
    q, _ = torch.linalg.qr(torch.randn(3 * n, 109, generator=torch.Generator().manual_seed(3), dtype=torch.float64))
    basis = (q * torch.linspace(0.02, 0.001, 109, dtype=torch.float64)).float().view(n, 3, 109)  # orthogonal modes
    fm = BFM118(torch.zeros(n, 3), basis[..., :80], basis[..., 80:])
    gt = fm.param_mean.clone().unsqueeze(0)
    pred = gt.clone()
    pred[0, :109] += torch.randn(109, generator=torch.Generator().manual_seed(4))
    module = MobileFaceRegressor(_Fixed(fm.normalise(pred)), fm, functools.partial(torch.optim.Adam, lr=1e-3),
                                 loss="mse", param_stats="default", mse_weights="geometric")
    value, _, _ = module.model_step({"image": torch.zeros(1, 3, 96, 96), "params": gt})
    l3 = (((fm.shape(pred) - fm.shape(gt)) * 1e3) ** 2).sum(-1).mean()
    assert value.item() == pytest.approx(l3.item(), rel=1e-4)


def test_bad_mse_weights_raise() -> None:
    with pytest.raises(ValueError, match="mse_weights"):
        MobileFaceRegressor(MobileNetV1(), _face_model(), functools.partial(torch.optim.Adam), mse_weights="nope")
