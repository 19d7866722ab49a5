"""300W-LP / AFLW2000-3D / BFM-synthetic loaders on files written in the real formats.

A tiny BFM folder in the 3DDFA layout (100 vertices, 90 trimmed, 68 keypoints) is written
here as test data; the 300W-LP .mat files carry pt2d = the 3DDFA projection of that model,
so the loader's reconstruction must land on pt2d exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

from datamodules.aflw2000 import Aflw2000DataModule
from datamodules.bfm_synthetic import BfmSyntheticDataModule, load_keypoint_basis
from datamodules.formats.matfiles import AFLW2000_SPEC, W300LP_SPEC, write_mat
from datamodules.w300lp import W300LPDataModule, source_id


@pytest.fixture(scope="module")
def bfm_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bfm")
    rng = np.random.default_rng(0)
    n_full, trim = 100, np.arange(1, 91)
    ang = np.linspace(-1.2, 1.2, n_full)
    mu = np.stack([70000 * np.sin(ang), 60000 * np.linspace(-1, 1, n_full), 50000 * np.cos(ang)], 1)
    sio.savemat(str(d / "01_MorphableModel.mat"), {
        "shapeMU": mu.reshape(-1, 1), "shapePC": rng.normal(0, 1, (3 * n_full, 199)),
        "shapeEV": np.linspace(3000, 10, 199)[:, None], "tl": np.array([[1, 2, 3]])})
    sio.savemat(str(d / "Model_Expression.mat"), {
        "mu_exp": rng.normal(0, 100, (3 * 90, 1)), "w_exp": rng.normal(0, 1000, (3 * 90, 29)),
        "sigma_exp": np.ones((29, 1))})
    sio.savemat(str(d / "model_info.mat"), {"trimIndex": trim[:, None], "tri": np.array([[1], [2], [3]]),
                                            "keypoints": rng.choice(np.arange(1, 91), 68, replace=False)[None]})
    return d


def _fields(basis, rng, H, aflw=False):
    shape, exp = rng.normal(0, 1e3, 199), rng.normal(0, 0.1, 29)
    pose = np.array([0.05, rng.uniform(-1.0, 1.0), -0.03, 225.0, 225.0, 0.0, 1.2e-3])
    p = basis.project_3ddfa(shape, exp, pose.astype(np.float32).astype(np.float64), H)
    f = {"pt2d": p[:, :2].T, "roi": np.array([[50, 50, 400, 400]]), "Pose_Para": pose[None],
         "Shape_Para": shape[:, None], "Exp_Para": exp[:, None], "Illum_Para": np.zeros((1, 10)),
         "Color_Para": np.ones((1, 7)), "Tex_Para": np.zeros((199, 1))}
    if aflw:
        f["pt3d_68"] = p.T
        f["pt2d"] = np.full((2, 21), -1.0)
    return f, p


def _image(path, H):
    img = np.random.default_rng(1).integers(0, 255, (H, H, 3), dtype=np.uint8)
    Image.fromarray(img).save(path, quality=90)


def test_keypoint_basis_reads_3ddfa_rows(bfm_dir):
    b = load_keypoint_basis(bfm_dir)
    info = sio.loadmat(str(bfm_dir / "model_info.mat"))
    m = sio.loadmat(str(bfm_dir / "01_MorphableModel.mat"))
    k0 = int(info["keypoints"][0, 0]) - 1
    full0 = int(info["trimIndex"][k0, 0]) - 1
    np.testing.assert_allclose(b.mu[:3], m["shapeMU"][3 * full0 : 3 * full0 + 3, 0])
    np.testing.assert_allclose(b.neutral(np.zeros(10))[0], m["shapeMU"][3 * full0 : 3 * full0 + 3, 0])


def test_w300lp_datamodule_batch(tmp_path, bfm_dir):
    basis = load_keypoint_basis(bfm_dir)
    rng = np.random.default_rng(2)
    H = 450
    for folder in ("AFW", "AFW_Flip", "HELEN"):
        (tmp_path / folder).mkdir()
        for k in range(3):
            name = f"{folder.split('_')[0]}_{100 + k}_1_{k % 2}"
            f, _ = _fields(basis, rng, H)
            write_mat(tmp_path / folder / f"{name}.mat", f, W300LP_SPEC)
            _image(tmp_path / folder / f"{name}.jpg", H)
    dm = W300LPDataModule(data_dir=str(tmp_path), bfm_dir=str(bfm_dir), image_size=64, batch_size=4,
                          num_workers=0, val_fraction=0.3, augment={"flip_prob": 0.5})
    dm.setup()
    assert len(dm.datasets["train"]) + len(dm.datasets["val"]) == 9
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (4, 3, 64, 64)
    assert b["landmarks"].shape == (4, 68, 2) and b["landmarks3d"].shape == (4, 68, 3)
    assert b["params"].shape == (4, 235) and b["yaw"].shape == (4,)
    # the 3DDFA reconstruction lands on pt2d (through the same crop, flip and permutation)
    torch.testing.assert_close(b["landmarks3d"][..., :2], b["landmarks_px"], atol=2e-3, rtol=0)
    torch.testing.assert_close(b["landmarks"], b["landmarks_px"] / 64 - 0.5)
    assert source_id(tmp_path / "AFW_Flip" / "AFW_100_1_0.mat") == "AFW_100_1"


def test_w300lp_corrupt_mat_named_and_skipped(tmp_path, bfm_dir):
    basis = load_keypoint_basis(bfm_dir)
    (tmp_path / "IBUG").mkdir()
    for k in range(2):
        f, _ = _fields(basis, np.random.default_rng(k), 200)
        write_mat(tmp_path / "IBUG" / f"IBUG_{k}_1_0.mat", f, W300LP_SPEC)
        _image(tmp_path / "IBUG" / f"IBUG_{k}_1_0.jpg", 200)
    (tmp_path / "IBUG" / "IBUG_0_1_0.mat").write_bytes(b"not a mat file at all")
    dm = W300LPDataModule(data_dir=str(tmp_path), bfm_dir=str(bfm_dir), image_size=32, batch_size=1,
                          num_workers=0, val_fraction=0.0)
    dm.setup()
    with pytest.raises(ValueError, match="IBUG_0_1_0.mat"):
        dm.datasets["train"][0]
    dm2 = W300LPDataModule(data_dir=str(tmp_path), bfm_dir=str(bfm_dir), image_size=32, batch_size=1,
                           num_workers=0, val_fraction=0.0, skip_corrupt=True)
    dm2.setup()
    s = dm2.datasets["train"][0]
    assert int(s["index"]) == 1 and dm2.datasets["train"].n_skipped == 1


def test_missing_dir_names_layout(tmp_path):
    dm = W300LPDataModule(data_dir=str(tmp_path / "nope"), num_workers=0)
    with pytest.raises(FileNotFoundError, match="AFW,HELEN,IBUG,LFPW"):
        dm.setup()


def test_aflw2000_datamodule(tmp_path, bfm_dir):
    basis = load_keypoint_basis(bfm_dir)
    rng = np.random.default_rng(4)
    for k in range(3):
        f, p = _fields(basis, rng, 450, aflw=True)
        write_mat(tmp_path / f"image{k:05d}.mat", f, AFLW2000_SPEC)
        _image(tmp_path / f"image{k:05d}.jpg", 450)
    dm = Aflw2000DataModule(data_dir=str(tmp_path), image_size=64, batch_size=3, num_workers=0)
    dm.setup()
    b = next(iter(dm.test_dataloader()))
    assert set(dm.datasets) == {"test", "val"}
    assert b["landmarks68_px"].shape == (3, 68, 2) and b["landmarks3d"].shape == (3, 68, 3)
    # protocol box = min/max of the 68 GT points; crop 1.2 x that box
    assert torch.allclose(b["landmarks3d"][..., :2], b["landmarks68_px"], atol=1e-4)
    assert float(b["landmarks68_px"].amin()) > 0 and float(b["landmarks68_px"].amax()) < 63
    torch.testing.assert_close(b["landmarks3d"][..., 2].mean(1), torch.zeros(3), atol=1e-4, rtol=0)


def test_bfm_synthetic_datamodule(bfm_dir):
    dm = BfmSyntheticDataModule(data_dir=str(bfm_dir), n_train=8, n_val=4, n_test=4, image_size=100,
                                batch_size=4, num_workers=0)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["landmarks"].shape == (4, 68, 2) and b["landmarks3d_model"].shape == (4, 68, 3)
    assert set(b["yaw"].tolist()) <= {-45.0, 0.0, 45.0}
    # deterministic per index
    a1, a2 = dm.datasets["test"][2], dm.datasets["test"][2]
    torch.testing.assert_close(a1["landmarks"], a2["landmarks"])
    # frontal orthographic view: px = c + s x, c - s y with s = 0.6 * 100 / 0.16
    s0 = next(s for s in (dm.datasets["train"][i] for i in range(8)) if float(s["yaw"]) == 0.0)
    P = s0["landmarks3d_model"].double()
    torch.testing.assert_close(s0["landmarks_px"].double()[:, 0], 49.5 + 375.0 * P[:, 0], rtol=0, atol=1e-3)
    torch.testing.assert_close(s0["landmarks_px"].double()[:, 1], 49.5 - 375.0 * P[:, 1], rtol=0, atol=1e-3)
