"""BFM format of the procedural world: real-file layout, one world with FLAME, LinearBFM,
3DDFA projection convention (hand-computed) and loader validation (trimIndex, errors)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from facemodels.bfm import (
    MOUTH_KEY,
    BfmFormatError,
    LinearBFM,
    bfm_project_3ddfa,
    bfm_unproject_3ddfa,
    load_bfm_arrays,
    load_bfm_mean_and_keypoints,
)
from facemodels.flame import FlameModel
from facemodels.procedural.builder import (
    MOUTH_OPEN_DEG,
    MOUTH_OPEN_MODE,
    MOUTH_OPEN_SD,
    cached_world,
    write_bfm,
    write_flame,
)


@pytest.fixture(scope="module")
def world():
    return cached_world(0)


@pytest.fixture(scope="module")
def bfm_dir(world, tmp_path_factory) -> Path:
    return write_bfm(world, tmp_path_factory.mktemp("bfm"))


def test_real_file_layout(bfm_dir):
    m = scipy.io.loadmat(str(bfm_dir / "01_MorphableModel.mat"))
    n3 = m["shapeMU"].shape[0]
    assert n3 % 3 == 0 and 3000 < n3 // 3 < 12000
    assert (
        m["shapeMU"].shape == (n3, 1)
        and m["shapePC"].shape == (n3, 199)
        and m["shapeEV"].shape == (199, 1)
    )
    assert m["shapeMU"].dtype == np.float32 and m["shapePC"].dtype == np.float32
    assert (
        m["texMU"].shape == (n3, 1)
        and m["texPC"].shape == (n3, 199)
        and m["texEV"].shape == (199, 1)
    )
    assert m["tl"].shape[1] == 3 and m["tl"].min() == 1 and m["tl"].max() == n3 // 3
    assert m["segbin"].shape == (n3 // 3, 4)
    e = scipy.io.loadmat(str(bfm_dir / "Model_Expression.mat"))
    assert (
        e["mu_exp"].shape == (n3, 1)
        and e["w_exp"].shape == (n3, 29)
        and e["sigma_exp"].shape == (29, 1)
    )
    info = scipy.io.loadmat(str(bfm_dir / "model_info.mat"))
    assert info["keypoints"].shape == (1, 68) and info["keypoints"].min() >= 1
    # micrometres, x/y/z interleaved: head ~15-19 cm wide, nose tip in front (+z)
    mu = m["shapeMU"].reshape(-1, 3)
    assert 1.4e5 < np.ptp(mu[:, 0]) < 2.0e5
    kp = info["keypoints"].reshape(-1).astype(int) - 1
    assert mu[kp[30], 2] == mu[kp, 2].max()
    # 3DDFA scale: leading Shape_Para sds ~1e5, decreasing
    ev = m["shapeEV"].reshape(-1)
    assert 5e4 < ev[0] < 1e6 and np.all(np.diff(ev[:20]) < 0)


def test_bfm_bytes_are_deterministic(world, bfm_dir, tmp_path):
    again = write_bfm(world, tmp_path / "again")
    for f in ("01_MorphableModel.mat", "Model_Expression.mat", "model_info.mat"):
        assert (
            hashlib.sha256((again / f).read_bytes()).digest()
            == hashlib.sha256((bfm_dir / f).read_bytes()).digest()
        )


def test_keypoints_are_the_flame_landmarks(world, bfm_dir):
    """One world: the BFM keypoints sit where the FLAME-format iBUG-68 landmarks are."""
    bfm = LinearBFM(bfm_dir)
    lm = bfm.landmarks(torch.zeros(1, 199), torch.zeros(1, 29))[0].double().numpy() * 1e-6
    err = np.linalg.norm(lm - world.landmarks68, axis=1)
    eyes = np.arange(36, 48)  # the BFM mesh closes the eyes with the eyeballs: lids differ more
    assert (
        np.delete(err, eyes).max() < 1.5e-3 and err[eyes].max() < 3.5e-3 and np.median(err) < 1e-3
    )


def test_same_distribution_of_heads_as_flame(world, bfm_dir):
    """One world: per-landmark displacement sds (identity, 1 sd everywhere) agree between the
    BFM keypoints (199 modes, Shape_Para ~ N(0, shapeEV^2)) and FLAME landmarks (300 modes)."""
    bfm = LinearBFM(bfm_dir)
    pc = bfm.shape_pc.double().numpy().reshape(-1, 3, 199)[bfm.keypoints68.numpy()]  # (68, 3, 199)
    sd_bfm = np.sqrt(((pc * bfm.shape_std.double().numpy()) ** 2).sum(-1)) * 1e-6  # (68, 3) metres
    v, f = world.v_template, world.faces
    emb = np.concatenate([world.dynamic_faces[0], world.static_faces])
    bary = np.concatenate([world.dynamic_bary[0], world.static_bary])
    sdirs = world.shapedirs[:, :, :300]
    lm_dirs = (sdirs[f[emb]] * bary[:, :, None, None]).sum(1)  # (68, 3, 300)
    sd_flame = np.sqrt((lm_dirs**2).sum(-1))
    rel = np.abs(sd_bfm - sd_flame).sum() / sd_flame.sum()
    assert rel < 0.1, rel
    del v


def test_mouth_mode_opens_the_jaw(world, bfm_dir, tmp_path):
    """Expression mode MOUTH_OPEN_MODE of the written file opens the mouth: the inner-lip gap
    (iBUG 62-66) grows monotonically with the coefficient, to 20-35 mm at +3 sd (adults open
    40-50 mm at most, speech and expressions much less); brows, eyes and nose (17-47) stay put;
    lower lip and chin move as the FLAME-format head's do with its jaw joint opened by the same
    angle (one jaw); the mode is orthogonal to the others and the largest."""
    bfm = LinearBFM(bfm_dir)
    assert bfm.mouth_open_mode == MOUTH_OPEN_MODE  # the written file declares it (MOUTH_KEY)
    kp = bfm.keypoints68.numpy()
    pc = bfm.exp_pc.double().numpy().reshape(-1, 3, bfm.n_exp)[kp, :, MOUTH_OPEN_MODE] * 1e-6
    sd = float(bfm.exp_std[MOUTH_OPEN_MODE])
    mean = bfm.mean.double().numpy()[kp] * 1e-6  # (68, 3) metres
    z = np.linspace(0.0, 3.0, 13)
    lm = mean[None] + z[:, None, None] * sd * pc[None]
    gap = np.linalg.norm(lm[:, 66] - lm[:, 62], axis=-1) * 1e3  # mm
    assert np.all(np.diff(gap) > 0.5) and gap[0] < 4.0 and 20.0 < gap[-1] < 35.0, gap
    assert np.abs(lm[:, 17:48] - mean[17:48]).max() < 1e-5  # upper face: < 0.01 mm
    assert lm[-1, 8, 1] < mean[8, 1] - 0.01  # the chin goes down > 1 cm
    flame = FlameModel(write_flame(world, tmp_path / "flame"), n_shape=10, n_exp=10)
    jaw = torch.zeros(1, 3, dtype=torch.float32)
    jaw[0, 0] = math.radians(MOUTH_OPEN_DEG)
    with torch.no_grad():
        rest = flame(jaw_pose=torch.zeros(1, 3)).landmarks68[0].double().numpy()
        opened = flame(jaw_pose=jaw).landmarks68[0].double().numpy()
    for i in (8, 57):  # chin, lower lip (66 is embedded across the lip line on the FLAME mesh)
        np.testing.assert_allclose(MOUTH_OPEN_SD * sd * pc[i], opened[i] - rest[i], atol=2e-4)
    w = bfm.exp_pc.double()
    torch.testing.assert_close(w.T @ w, torch.eye(bfm.n_exp, dtype=torch.float64), atol=1e-5, rtol=0)
    assert int(bfm.exp_std.argmax()) == MOUTH_OPEN_MODE


def test_linear_bfm_forward(bfm_dir):
    bfm = LinearBFM(bfm_dir)
    a = load_bfm_arrays(bfm_dir)
    g = torch.Generator().manual_seed(0)
    sp = torch.randn(4, 199, generator=g, dtype=torch.float64) * torch.as_tensor(a.shape_ev)
    ep = torch.randn(4, 29, generator=g, dtype=torch.float64) * torch.as_tensor(a.exp_ev)
    v = bfm(sp.float(), ep.float()).double()
    ref = a.mean.reshape(1, -1) + sp.numpy() @ a.shape_pc.T + ep.numpy() @ a.exp_pc.T
    np.testing.assert_allclose(v.numpy().reshape(4, -1), ref, atol=2.0)  # um, float32 model
    assert v.shape == (4, bfm.n_vertices, 3)
    # fewer columns = leading modes only
    torch.testing.assert_close(
        bfm(sp[:, :40].float()),
        bfm(torch.cat([sp[:, :40], torch.zeros(4, 159, dtype=torch.float64)], 1).float()),
    )
    assert torch.equal(
        bfm.landmarks(sp.float(), ep.float()), bfm(sp.float(), ep.float())[:, bfm.keypoints68]
    )
    with pytest.raises(ValueError, match="200 columns"):
        bfm(torch.zeros(1, 200))


def test_project_3ddfa_hand_computed():
    v = torch.tensor([[[1.0, 2.0, 3.0], [10.0, 0.0, 0.0]]])
    # identity rotation: x' = s x + tx, y_img = h - (s y + ty) - 1
    pose = torch.tensor([[0.0, 0.0, 0.0, 5.0, 7.0, 1.0, 2.0]])
    p = bfm_project_3ddfa(v, pose, img_h=100)
    torch.testing.assert_close(p[0, 0], torch.tensor([7.0, 100 - 11.0 - 1, 7.0]))
    # yaw = 90 deg with 3DDFA's primed matrix Ry'(a) = [[c, 0, -s], [0, 1, 0], [s, 0, c]]:
    # (10, 0, 0) -> (0, 0, 10)
    pose = torch.tensor([[0.0, math.pi / 2, 0.0, 0.0, 0.0, 0.0, 1.0]])
    p = bfm_project_3ddfa(v, pose, img_h=100)
    torch.testing.assert_close(p[0, 1], torch.tensor([0.0, 99.0, 10.0]), atol=1e-5, rtol=0)
    # pitch = 90 deg, Rx'(a) = [[1, 0, 0], [0, c, s], [0, -s, c]]: (1, 2, 3) -> (1, 3, -2)
    pose = torch.tensor([[math.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    p = bfm_project_3ddfa(v, pose, img_h=50)
    torch.testing.assert_close(p[0, 0], torch.tensor([1.0, 50 - 3.0 - 1, -2.0]), atol=1e-5, rtol=0)


def test_reconstruction_round_trips(bfm_dir):
    """3DDFA-style fit: project a posed face, invert the pose, recover the model vertices."""
    bfm = LinearBFM(bfm_dir)
    g = torch.Generator().manual_seed(1)
    sp = torch.randn(3, 199, generator=g) * bfm.shape_std
    ep = torch.randn(3, 29, generator=g) * bfm.exp_std
    v = bfm(sp, ep).double()
    pose = torch.tensor(
        [
            [0.1, -0.5, 0.05, 60.0, 70.0, 0.0, 8e-4],
            [-0.2, 0.7, -0.1, 50.0, 40.0, 3.0, 1e-3],
            [0.0, 0.0, 0.3, 64.0, 64.0, 0.0, 5e-4],
        ],
        dtype=torch.float64,
    )
    img = bfm_project_3ddfa(v, pose, img_h=128)
    back = bfm_unproject_3ddfa(img, pose, img_h=128)
    torch.testing.assert_close(back, v, atol=1e-6, rtol=0)
    # the face lands in the image and yaw > 0 shows the subject's right cheek
    assert (img[..., 0].abs() < 300).all()
    # solving the linear model for the parameters from the unprojected vertices recovers them
    a = torch.cat([bfm.shape_pc, bfm.exp_pc], 1).double()  # (3N, 228), normal equations
    coef = torch.linalg.solve(a.T @ a, a.T @ (back - bfm.mean.double()).reshape(3, -1).T).T
    torch.testing.assert_close(coef[:, :199].float(), sp, rtol=1e-3, atol=50.0)


def test_trimmed_layout_like_3ddfa(bfm_dir, tmp_path):
    """Real layout: the expression basis on a trimmed subset; the loader trims shape arrays."""
    m = scipy.io.loadmat(str(bfm_dir / "01_MorphableModel.mat"))
    e = scipy.io.loadmat(str(bfm_dir / "Model_Expression.mat"))
    info = scipy.io.loadmat(str(bfm_dir / "model_info.mat"))
    n = m["shapeMU"].shape[0] // 3
    keep = np.arange(0, n, 2)  # keep every other vertex
    kp = info["keypoints"].reshape(-1).astype(int) - 1
    keep = np.union1d(keep, kp)
    rows = (3 * keep[:, None] + np.arange(3)).reshape(-1)
    out = tmp_path / "trim"
    out.mkdir()
    scipy.io.savemat(
        str(out / "01_MorphableModel.mat"),
        {k: m[k] for k in ("shapeMU", "shapePC", "shapeEV", "texMU", "tl")},
    )
    scipy.io.savemat(
        str(out / "Model_Expression.mat"),
        {"mu_exp": e["mu_exp"][rows], "w_exp": e["w_exp"][rows], "sigma_exp": e["sigma_exp"]},
    )
    remap = -np.ones(n, dtype=int)
    remap[keep] = np.arange(len(keep))
    tri = info["tri"].astype(int) - 1
    ok = (remap[tri] >= 0).all(0)
    scipy.io.savemat(
        str(out / "model_info.mat"),
        {
            "keypoints": (remap[kp] + 1).reshape(1, -1).astype(float),
            "trimIndex": (keep + 1).reshape(-1, 1).astype(float),
            "tri": (remap[tri[:, ok]] + 1).astype(float),
        },
    )
    a = load_bfm_arrays(out)
    full = load_bfm_arrays(bfm_dir)
    assert a.mean.shape == (len(keep), 3)
    np.testing.assert_allclose(a.mean, full.mean[keep])
    np.testing.assert_allclose(a.mean[a.keypoints], full.mean[full.keypoints])
    assert LinearBFM(out)(torch.zeros(1, 199)).shape == (1, len(keep), 3)


def test_loader_errors_name_file_and_key(bfm_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_bfm_arrays(tmp_path / "nope")
    out = tmp_path / "bad"
    out.mkdir()
    for f in ("01_MorphableModel.mat", "Model_Expression.mat", "model_info.mat"):
        (out / f).symlink_to(bfm_dir / f)
    (out / "model_info.mat").unlink()
    with pytest.raises(FileNotFoundError, match="model_info.mat"):
        load_bfm_arrays(out)
    scipy.io.savemat(
        str(out / "model_info.mat"), {"keypoints": np.arange(1, 11, dtype=float).reshape(1, -1)}
    )
    with pytest.raises(
        BfmFormatError, match=r"model_info.mat: key 'keypoints' has 10 entries, expected 68"
    ):
        load_bfm_arrays(out)
    (out / "model_info.mat").unlink()
    (out / "model_info.mat").symlink_to(bfm_dir / "model_info.mat")
    (out / "Model_Expression.mat").unlink()
    e = scipy.io.loadmat(str(bfm_dir / "Model_Expression.mat"))
    scipy.io.savemat(
        str(out / "Model_Expression.mat"), {"mu_exp": e["mu_exp"], "w_exp": e["w_exp"]}
    )
    with pytest.raises(
        BfmFormatError,
        match=r"Model_Expression.mat: missing key 'sigma_exp' \(expected shape \(29, 1\)\)",
    ):
        load_bfm_arrays(out)
    (out / "Model_Expression.mat").unlink()
    (out / "Model_Expression.mat").write_bytes(b"not a mat file")
    with pytest.raises(BfmFormatError, match="Model_Expression.mat"):
        load_bfm_arrays(out)


def test_light_reader_matches_full_reader_without_expression_file(bfm_dir, tmp_path):
    full = load_bfm_arrays(bfm_dir)
    e = scipy.io.loadmat(str(bfm_dir / "Model_Expression.mat"))
    mean, kp = load_bfm_mean_and_keypoints(bfm_dir)
    # the light read is shapeMU alone: the full reader's mean adds mu_exp
    mu_exp = np.asarray(e["mu_exp"], np.float64).reshape(-1, 3)
    np.testing.assert_allclose(mean + mu_exp, full.mean, atol=1e-9)
    np.testing.assert_array_equal(kp, full.keypoints)
    out = tmp_path / "light"
    out.mkdir()
    for f in ("01_MorphableModel.mat", "model_info.mat"):  # no Model_Expression.mat
        (out / f).symlink_to(bfm_dir / f)
    np.testing.assert_array_equal(load_bfm_mean_and_keypoints(out)[1], kp)
    (out / "model_info.mat").unlink()
    scipy.io.savemat(str(out / "model_info.mat"), {"keypoints": np.arange(1, 11, dtype=float).reshape(1, -1)})
    with pytest.raises(BfmFormatError, match=r"model_info.mat: key 'keypoints' must be 68 1-based"):
        load_bfm_mean_and_keypoints(out)
    (out / "model_info.mat").unlink()
    scipy.io.savemat(str(out / "model_info.mat"), {"tri": np.ones((3, 1))})
    with pytest.raises(BfmFormatError, match=r"model_info.mat: missing key 'keypoints'"):
        load_bfm_mean_and_keypoints(out)


def test_mouth_open_mode_key_is_optional_and_checked(bfm_dir, tmp_path):
    """Real 3DDFA files have no MOUTH_KEY: no mode is one-sided; a malformed key names file and key."""
    out = tmp_path / "real_like"
    out.mkdir()
    for f in ("01_MorphableModel.mat", "model_info.mat"):
        (out / f).symlink_to(bfm_dir / f)
    e = scipy.io.loadmat(str(bfm_dir / "Model_Expression.mat"))
    plain = {k: e[k] for k in ("mu_exp", "w_exp", "sigma_exp")}
    scipy.io.savemat(str(out / "Model_Expression.mat"), plain)
    assert load_bfm_arrays(out).mouth_open_mode is None
    scipy.io.savemat(str(out / "Model_Expression.mat"), {**plain, MOUTH_KEY: np.array([[99]])})
    with pytest.raises(BfmFormatError, match=rf"Model_Expression.mat: key '{MOUTH_KEY}' must be one 0-based mode"):
        load_bfm_arrays(out)
