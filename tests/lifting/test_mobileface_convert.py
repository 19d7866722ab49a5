"""MobileFace's 118-parameter targets from 300W-LP-format data (BFM118.from_3ddfa) and the parameter
normalisation from the training split.

Data: a small 300W-LP folder written in the real format (datamodules/writers/w300lp.py) from the default
procedural BFM (8484 vertices, 199 orthonormal identity modes), read back by W300LPDataset at 96 px.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from datamodules.base import to_tensors
from datamodules.transforms import AugmentConfig
from datamodules.w300lp import W300LPDataset, list_300wlp
from datamodules.writers.w300lp import write_300wlp
from lightning_modules.components.bfm118 import BFM118, N_ID, SLICES, default_param_stats
from lightning_modules.components.mobilenet_v1 import MobileNetV1
from lightning_modules.mobileface import MobileFaceRegressor

# Stated tolerances (crop px, 96 px crops). CAMERA_TOL: the converted perspective camera against 3DDFA's
# weak-perspective projection of the same (full) face; measured max 0.3 px with f = 50 x the crop side.
# MODEL_TOL: the 118-parameter face (80 of 199 id modes) against the sample's pt2d landmarks; measured
# ~1.4 px (truncation ~1 px + pt2d's own offset from the 3DDFA reconstruction, up to 0.5 px).
CAMERA_TOL, MODEL_TOL = 0.5, 2.5


@pytest.fixture(scope="module")
def w300lp_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("w300lp_mobileface")
    write_300wlp(out, n_per_folder=1, n_profiles=2, seed=11, n_jobs=1)
    return out


@pytest.fixture(scope="module")
def face_model() -> BFM118:
    return BFM118.from_bfm(n_vertices=500)


def _samples(ds: W300LPDataset) -> list[dict[str, torch.Tensor]]:
    out = []
    for i in range(len(ds)):
        s = to_tensors(ds[i])
        out.append({k: torch.as_tensor(np.asarray(v)) for k, v in s.items()})
    return out


def _convert(fm: BFM118, s: dict[str, torch.Tensor]) -> torch.Tensor:
    return fm.from_3ddfa(s["params"][None].double(), s["crop_matrix"][None].double(), s["source_height"][None],
                         s["flipped"][None] > 0.5)


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_converted_parameters_project_onto_the_crop_landmarks(w300lp_dir, face_model, flip):
    """Augmented crops (scale, shift, +-25 deg in-plane rotation, flips): S(p) through p's camera lands on
    the crop's landmarks; the camera alone reproduces the 3DDFA projection of the full face."""
    aug = AugmentConfig(rotation_deg=25.0, flip_prob=flip)
    ds = W300LPDataset(list_300wlp(w300lp_dir), image_size=96, train=True, augment=aug)
    fm = face_model
    n_flipped = 0
    for s in _samples(ds):
        p = _convert(fm, s).double()
        n_flipped += int(s["flipped"] > 0.5)
        kp = fm.project(p)[0, :68]  # the 118-parameter face, iBUG-68 keypoints
        assert (kp - s["landmarks_px"].double()).norm(dim=-1).max() < MODEL_TOL
        if s["flipped"] < 0.5:  # the full 199-mode face through the converted camera
            full = fm.shape_3ddfa(s["params"][None].double().float()).double()
            cam = fm.project(p, full)[0, :68]
            assert (cam - s["landmarks3d"][:, :2].double()).norm(dim=-1).max() < CAMERA_TOL
        assert abs(float(p[0, SLICES["f"]]) - 50 * 96) < 1e-6
        assert torch.allclose(p[0, SLICES["pp"]], torch.tensor([47.5, 47.5], dtype=p.dtype))
    assert n_flipped == (len(ds) if flip else 0)


def test_conversion_is_vectorised_and_matches_per_sample(w300lp_dir, face_model):
    ds = W300LPDataset(list_300wlp(w300lp_dir)[:6], image_size=96, train=True, augment=AugmentConfig(flip_prob=0.5))
    samples = _samples(ds)
    batch = {k: torch.stack([s[k] for s in samples]) for k in ("params", "crop_matrix", "source_height", "flipped")}
    p = face_model.from_3ddfa(batch["params"].double(), batch["crop_matrix"].double(), batch["source_height"],
                              batch["flipped"] > 0.5)
    for i, s in enumerate(samples):
        torch.testing.assert_close(p[i], _convert(face_model, s)[0], rtol=1e-9, atol=1e-9)


def test_id_coefficients_are_the_least_squares_fit(face_model):
    """alpha_id = argmin ||A80 alpha - PC Shape_Para|| (over every model vertex): the truncation here."""
    from facemodels.bfm import LinearBFM

    bfm = LinearBFM(dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    shape_para = torch.randn(1, 199, generator=g, dtype=torch.float64) * bfm.shape_std
    target = (shape_para @ bfm.shape_pc.T).T  # (3N, 1) um
    a80 = bfm.shape_pc[:, :N_ID] * bfm.shape_std[:N_ID]
    lsq = torch.linalg.lstsq(a80, target).solution[:, 0]
    params = torch.cat([shape_para, torch.zeros(1, 36, dtype=torch.float64)], 1)
    torch.testing.assert_close(face_model.coefficients_from_3ddfa(params)[0, :N_ID].double(), lsq, rtol=1e-5, atol=1e-5)


def test_conversion_rejects_bad_input(face_model):
    params = torch.zeros(2, 235)
    with pytest.raises(ValueError, match="crop_matrix"):
        face_model.from_3ddfa(params, torch.eye(3).expand(3, 3, 3), torch.full((2,), 450.0))
    with pytest.raises(ValueError, match="det > 0"):
        flip = torch.tensor([[-1.0, 0.0, 95.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        face_model.from_3ddfa(params, flip.expand(2, 3, 3), torch.full((2,), 450.0))


def test_param_stats_come_from_the_training_split(w300lp_dir, face_model):
    """on_fit_start's statistics = mean / std of the converted, un-augmented training targets; the
    fixed f and principal point keep their default std."""
    mats = list_300wlp(w300lp_dir)
    train = W300LPDataset(mats[: len(mats) // 2], image_size=96, train=True)
    fm = BFM118.from_bfm(n_vertices=200)
    module = MobileFaceRegressor(MobileNetV1(), fm, functools.partial(torch.optim.Adam, lr=1e-3))
    module.set_param_stats_from(train)
    eval_ds = W300LPDataset(mats[: len(mats) // 2], image_size=96, train=False)
    p = torch.cat([_convert(fm, s) for s in _samples(eval_ds)]).double()
    torch.testing.assert_close(fm.param_mean.double(), p.mean(0).to(fm.param_mean).double(), rtol=1e-4, atol=1e-6)
    std = p.std(0)
    _, default_std = default_param_stats(96)
    varying = std > 1e-3
    torch.testing.assert_close(fm.param_std.double()[varying], std[varying].float().double(), rtol=1e-3, atol=1e-7)
    assert torch.equal(fm.param_std[SLICES["f"]], default_std[SLICES["f"]])
    # the id coefficients' mean is the mean of Shape_Para[:80] / shapeEV over the training files only
    id_mean = torch.stack([s["params"][:N_ID].double() / fm.id_ev.double() for s in _samples(eval_ds)]).mean(0)
    torch.testing.assert_close(fm.param_mean[:N_ID].double(), id_mean, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(("name", "loss"), [("mobileface", "mse"), ("mobileface_l2", "l2_2d3d"), ("mobileface_l1", "l1_2d3d")])
def test_every_mobileface_config_trains_and_tests(w300lp_dir, tmp_path, name, loss):
    """The real Hydra configs, end to end on 300W-LP-format files (fast_dev_run: one train, val and test
    batch): the normalisation comes from the training split, the test logs the distances and AUCs of
    the model, the mean shape and the registered model, and writes the per-face distances."""
    from experiments.train import train
    from tests.harness.compose import compose_config

    cfg = compose_config("train", [f"model={name}", "debug=fast_dev_run", f"data.data_dir={w300lp_dir}",
                                   "data.num_workers=0", "data.persistent_workers=false", "data.batch_size=4",
                                   "data.val_fraction=0.3", "model.face_model.n_vertices=100", "model.icp_iters=1"],
                         tmp_path)
    assert cfg.model.loss == loss
    out = train(cfg)
    m = out["metrics"]
    for key in ("test/auc", "test/auc_meanshape", "test/auc_upper"):
        assert 0.0 <= m[key] <= 1.0
    assert m["test/dist_upper"] < m["test/dist_meanshape"]  # the conversion error is far below the mean shape's
    errs = np.load(next(tmp_path.rglob("test_errors.npz")))
    assert set(errs.files) == {"index", "dist", "dist_meanshape", "dist_upper"} and errs["dist"].shape == errs["index"].shape
