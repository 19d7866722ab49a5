"""300W-LP / AFLW2000-3D writers: write the procedural BFM world, read it back with the loaders.

The BFM folder is the mirror-closed fixture of conftest.py (315 vertices), images are small
(96-128 px) to keep the tests fast; the writers' real defaults are 450 px.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

from datamodules.aflw2000 import Aflw2000DataModule
from datamodules.bfm_synthetic import load_keypoint_basis
from datamodules.formats.matfiles import AFLW2000_SPEC, PTS_SPEC, W300LP_SPEC, read_mat
from datamodules.formats.roi import roi_box_from_landmarks
from datamodules.w300lp import W300LP_FOLDERS, W300LPDataModule
from datamodules.writers.aflw2000 import write_aflw2000
from datamodules.writers.threeddfa import (
    EXP_INTENSITY_MAX,
    MirrorFitter,
    camera_normals,
    load_bfm,
    project_3ddfa,
    sample_expression,
)
from datamodules.writers.w300lp import render_face, write_300wlp
from experiments.data import main as data_main
from facemodels.ibug68 import IBUG68_FLIP
from facemodels.procedural.builder import MOUTH_OPEN_MODE


@pytest.fixture(scope="module")
def w300lp_dir(tmp_path_factory, mirror_bfm_dir):
    out = tmp_path_factory.mktemp("w300lp")
    write_300wlp(out, n_per_folder=1, n_profiles=2, seed=3, bfm_dir=str(mirror_bfm_dir), image_size=128)
    return out


def test_300wlp_layout_keys_shapes_dtypes(w300lp_dir):
    for folder in W300LP_FOLDERS:
        names = sorted(p.stem for p in (w300lp_dir / folder).glob("*.mat"))
        assert names == [f"{folder.split('_')[0]}_1000_1_0", f"{folder.split('_')[0]}_1000_1_1"]
        for n in names:
            m = read_mat(w300lp_dir / folder / f"{n}.mat", W300LP_SPEC, check_dtype=True)
            assert set(m) == set(W300LP_SPEC)
            with Image.open(w300lp_dir / folder / f"{n}.jpg") as im:
                assert im.format == "JPEG" and im.size == (128, 128) and im.mode == "RGB"
            if not folder.endswith("_Flip"):
                pts = read_mat(w300lp_dir / "landmarks" / folder / f"{n}_pts.mat", PTS_SPEC, check_dtype=True)
                np.testing.assert_allclose(pts["pts_2d"], m["pt2d"].T)
    assert not (w300lp_dir / "landmarks" / "AFW_Flip").exists()
    # raw keys exactly as the real file (no extras apart from the .mat header entries)
    raw = sio.loadmat(str(w300lp_dir / "AFW" / "AFW_1000_1_0.mat"))
    assert {k for k in raw if not k.startswith("__")} == set(W300LP_SPEC)


def test_300wlp_pt2d_is_the_3ddfa_reconstruction(w300lp_dir, mirror_bfm_dir):
    """The loader's 3DDFA reconstruction of the stored parameters lands on pt2d, for the
    source views and (through the mirror fit) for the _Flip copies."""
    basis = load_keypoint_basis(mirror_bfm_dir)
    for folder, tol in (("HELEN", 1e-3), ("HELEN_Flip", 1e-2)):
        for k in range(2):
            m = read_mat(w300lp_dir / folder / f"HELEN_1000_1_{k}.mat", W300LP_SPEC)
            p = basis.project_3ddfa(m["Shape_Para"][:, 0], m["Exp_Para"][:, 0],
                                    m["Pose_Para"][0].astype(np.float64), 128)
            np.testing.assert_allclose(p[:, :2].T, m["pt2d"], atol=tol, rtol=0)
    a = read_mat(w300lp_dir / "HELEN" / "HELEN_1000_1_1.mat", W300LP_SPEC)
    b = read_mat(w300lp_dir / "HELEN_Flip" / "HELEN_1000_1_1.mat", W300LP_SPEC)
    # mirrored landmarks: x -> W - 1 - x, re-ordered with the iBUG-68 flip
    np.testing.assert_allclose(b["pt2d"][0], (127 - a["pt2d"][0])[IBUG68_FLIP], atol=1e-9)
    np.testing.assert_allclose(b["pt2d"][1], a["pt2d"][1][IBUG68_FLIP], atol=1e-9)
    pa, pb = a["Pose_Para"][0], b["Pose_Para"][0]
    np.testing.assert_allclose(pb[[0, 4, 5, 6]], pa[[0, 4, 5, 6]], rtol=1e-6)
    np.testing.assert_allclose(pb[[1, 2]], -pa[[1, 2]], rtol=1e-6)
    np.testing.assert_allclose(pb[3], 127 - pa[3], rtol=1e-6)


def test_300wlp_flip_image_is_mirrored_and_views_turn_away(w300lp_dir):
    with Image.open(w300lp_dir / "LFPW" / "LFPW_1000_1_0.jpg") as im:
        a = np.asarray(im, np.float32)
    with Image.open(w300lp_dir / "LFPW_Flip" / "LFPW_1000_1_0.jpg") as im:
        b = np.asarray(im, np.float32)
    assert np.abs(a[:, ::-1] - b).mean() < 3.0  # JPEG noise only
    assert np.abs(a - b).mean() > 3 * np.abs(a[:, ::-1] - b).mean()
    yaws = [abs(float(read_mat(w300lp_dir / "LFPW" / f"LFPW_1000_1_{k}.mat", W300LP_SPEC)["Pose_Para"][0, 1]))
            for k in range(2)]
    assert yaws[1] > yaws[0] + math.radians(11)


def test_render_face_covers_visible_keypoints(mirror_bfm_dir):
    """Rendered pixels and projected keypoints agree: on a black background every
    z-test-visible keypoint pixel is painted, the image corners are not."""
    bfm = load_bfm(mirror_bfm_dir)
    pose = np.array([0.1, 0.5, -0.05, 0.0, 0.0, 0.0, 1.0])
    v = bfm.vertices(np.zeros(199), np.zeros(29))
    s = 60.0 / np.ptp(v[:, 0])
    pose[6] = s
    c = project_3ddfa(v, pose, 100)[:, :2].mean(0)
    pose[3], pose[4] = 50 - c[0], c[1] - 50  # centre the face (y flipped)
    img, kp, vis = render_face(bfm, np.zeros(199), np.zeros(29), pose, np.zeros(199),
                               np.array([0.6, 0.6, 0.6, 0.4, 0.4, 0.4, 0.0, 0.0, 0.0, 20.0]),
                               np.array([1, 1, 1, 0, 0, 0, 1.0]), np.zeros((100, 100, 3), np.uint8))
    assert vis.sum() > 40 and (~vis).sum() > 0  # yawed: some keypoints hidden
    # keypoints clearly facing the camera (not grazing the silhouette) are painted
    p = project_3ddfa(v, pose, 100)
    facing = camera_normals(p, bfm.tri)[bfm.keypoints, 2] > 0.3
    assert facing.sum() > 30
    ij = np.rint(kp[vis & facing, :2]).astype(int)
    assert (img[ij[:, 1], ij[:, 0]].sum(1) > 0).all()
    # on this open cap the hidden keypoints are the ones turned away from the camera
    assert (camera_normals(p, bfm.tri)[bfm.keypoints[~vis], 2] <= 0.05).all()
    assert img[0, 0].sum() == 0 and img[-1, -1].sum() == 0


def test_mirror_fit_exact_on_a_mirror_closed_basis(mirror_bfm_dir):
    bfm = load_bfm(mirror_bfm_dir)
    rng = np.random.default_rng(0)
    shape, exp = rng.normal(0, 1, 199) * bfm.shape_ev, rng.normal(0, 1, 29) * bfm.exp_ev
    s2, e2, _, res = MirrorFitter(bfm).mirror(shape, exp, np.array([0, 0, 0, 10, 0, 0, 1.0]), 100)
    assert res < 1.0  # micrometres RMS, on faces ~1e5 um wide
    v, v2 = bfm.vertices(shape, exp), bfm.vertices(s2, e2)
    np.testing.assert_allclose(v2[:, 0].sum(), -v[:, 0].sum(), atol=1.0 * len(v))


def test_300wlp_datamodule_reads_written_data(w300lp_dir, mirror_bfm_dir):
    dm = W300LPDataModule(data_dir=str(w300lp_dir), bfm_dir=str(mirror_bfm_dir), image_size=64,
                          batch_size=4, num_workers=0, val_fraction=0.0)
    dm.setup()
    assert len(dm.datasets["train"]) == 16
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (4, 3, 64, 64) and b["params"].shape == (4, 235)
    # params reconstruct the landmarks through crop / flip augmentation (flip fit: 1e-2 px)
    torch.testing.assert_close(b["landmarks3d"][..., :2], b["landmarks_px"], atol=5e-3, rtol=0)


def test_300wlp_default_data_written_once(tmp_path, mirror_bfm_dir):
    kw = dict(bfm_dir=str(mirror_bfm_dir), n_per_folder=1, n_profiles=1, image_size=32, batch_size=2,
              num_workers=0, cache_root=str(tmp_path), val_fraction=0.0)
    dm = W300LPDataModule(**kw)
    dm.prepare_data()
    dm.setup()
    assert len(dm.datasets["train"]) == 8 and dm.root.parent == tmp_path
    mtime = (dm.root / "AFW" / "AFW_1000_1_0.mat").stat().st_mtime_ns
    dm2 = W300LPDataModule(**kw)
    dm2.prepare_data()
    assert dm2.root == dm.root and (dm.root / "AFW" / "AFW_1000_1_0.mat").stat().st_mtime_ns == mtime


def test_aflw2000_writer_round_trip(tmp_path, mirror_bfm_dir):
    write_aflw2000(tmp_path, n=4, seed=1, bfm_dir=str(mirror_bfm_dir), image_size=96)
    names = (tmp_path / "AFLW2000-3D_crop.list").read_text().split()
    assert names == ["image00002.jpg", "image00004.jpg", "image00006.jpg", "image00008.jpg"]
    pts68 = np.load(tmp_path / "AFLW2000-3D.pts68.npy")
    yaw = np.load(tmp_path / "AFLW2000-3D.pose.npy")
    roi = np.load(tmp_path / "AFLW2000-3D_crop.roi_box.npy")
    assert pts68.shape == (4, 3, 68) and pts68.dtype == np.float32
    assert yaw.shape == (4,) and roi.shape == (4, 4)
    basis = load_keypoint_basis(mirror_bfm_dir)
    for k, n in enumerate(names):
        m = read_mat(tmp_path / n.replace(".jpg", ".mat"), AFLW2000_SPEC, check_dtype=True)
        np.testing.assert_array_equal(m["pt3d_68"], pts68[k])
        assert yaw[k] == pytest.approx(math.degrees(float(m["Pose_Para"][0, 1])), abs=1e-4)
        np.testing.assert_allclose(roi[k], roi_box_from_landmarks(pts68[k]), rtol=1e-5)
        p = basis.project_3ddfa(m["Shape_Para"][:, 0], m["Exp_Para"][:, 0],
                                m["Pose_Para"][0].astype(np.float64), 96)
        np.testing.assert_allclose(p.T, m["pt3d_68"], atol=2e-3, rtol=0)
        assert (m["pt2d"][:, [12, 16]] == -1).all()  # ears missing
        if m["pt2d"][0, 20] >= 0:  # chin = iBUG 8, left mouth corner = iBUG 48
            np.testing.assert_allclose(m["pt2d"][:, 20], m["pt3d_68"][:2, 8], atol=1e-4)
        if m["pt2d"][0, 17] >= 0:
            np.testing.assert_allclose(m["pt2d"][:, 17], m["pt3d_68"][:2, 48], atol=1e-4)
        assert (m["pt2d"] >= 0).all(0).sum() >= 8
    dm = Aflw2000DataModule(data_dir=str(tmp_path), image_size=48, batch_size=4, num_workers=0)
    dm.setup()
    b = next(iter(dm.test_dataloader()))
    assert b["landmarks68_px"].shape == (4, 68, 2) and b["params"].shape == (4, 235)
    torch.testing.assert_close(b["yaw"], torch.from_numpy(yaw), atol=1e-3, rtol=0)


def test_aflw2000_writer_opens_mouths_on_the_procedural_bfm(tmp_path):
    """The AFLW2000-3D-format sample on the procedural BFM world has open mouths: the inner-lip
    gap (iBUG 62-66, model space, from the written Shape_Para / Exp_Para) is over 5 mm on a good
    share of the faces, closed (< 5 mm) on others, and never over 45 mm (adults' maximal
    opening is ~40-50 mm)."""
    from facemodels.world import default_bfm_dir

    bfm_dir = default_bfm_dir()
    write_aflw2000(tmp_path, n=40, seed=0, bfm_dir=str(bfm_dir), image_size=48, reannotated=False)
    bfm = load_bfm(bfm_dir)
    gaps = []
    for n in (tmp_path / "AFLW2000-3D_crop.list").read_text().split():
        m = read_mat(tmp_path / n.replace(".jpg", ".mat"), AFLW2000_SPEC)
        lm = bfm.vertices(m["Shape_Para"][:, 0].astype(np.float64),
                          m["Exp_Para"][:, 0].astype(np.float64))[bfm.keypoints]
        gaps.append(np.linalg.norm(lm[66] - lm[62]) * 1e-3)  # um -> mm
    gaps = np.array(gaps)
    assert 0.3 < (gaps > 5.0).mean() < 0.95 and gaps.max() > 12.0 and gaps.max() < 45.0, gaps.round(1)


def test_kp520_from_parameters_on_the_procedural_bfm(tmp_path):
    """kp520 on the procedural BFM world: the 520 points are reconstructed from the stored
    parameters; its first 28 points are the iBUG-68 keypoints 0-16, 30, 17-26 (the
    selection's seeds), so they land on pt2d through the crop (exactly for the source
    folders and an augmentation flip; within the mirror-fit error for the _Flip folders,
    whose parameters are a least-squares fit: ~1 px at 450 px on the procedural BFM)."""
    from datamodules.transforms import AugmentConfig
    from datamodules.w300lp import W300LPDataset
    from facemodels.keypoints520 import DEFAULT_SEED_LANDMARKS
    from facemodels.world import default_bfm_dir

    bfm = str(default_bfm_dir())
    write_300wlp(tmp_path, n_per_folder=1, n_profiles=1, seed=0, bfm_dir=bfm, image_size=96)
    dm = W300LPDataModule(data_dir=str(tmp_path), bfm_dir=bfm, landmark_set="kp520", image_size=64,
                          batch_size=8, num_workers=0, val_fraction=0.0)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["landmarks"].shape == (8, 520, 2) and b["landmarks3d"].shape == (8, 520, 3)
    assert b["landmarks68_px"].shape == (8, 68, 2) and b["visibility"].shape == (8, 520)
    torch.testing.assert_close(b["landmarks3d"][..., 2].mean(1), torch.zeros(8), atol=1e-3, rtol=0)
    seeds = list(DEFAULT_SEED_LANDMARKS)
    ds = dm.datasets["train"]
    flip_ds = W300LPDataset(ds.mats, image_size=64, landmark_set="kp520", train=True, bfm_dir=bfm,
                            augment=AugmentConfig(flip_prob=1.0))
    for i, mat in enumerate(ds.mats):
        s = ds[i]
        err = (s["landmarks_px"][: len(seeds)] - s["landmarks68_px"][seeds]).abs().max()
        assert err < (0.6 if mat.parent.name.endswith("_Flip") else 2e-3), (mat, err)  # 0.6 px ~ 1 % of the crop
        if not mat.parent.name.endswith("_Flip"):
            f = flip_ds[i]
            torch.testing.assert_close(f["landmarks_px"][: len(seeds)], f["landmarks68_px"][seeds],
                                       atol=2e-3, rtol=0)


def test_check_passes_on_written_300wlp(w300lp_dir, capsys):
    assert data_main(["check", "--dataset", "w300lp", "--dir", str(w300lp_dir)]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_write_cli_aflw2000_then_check(tmp_path, capsys):
    """``python -m experiments.data write`` on the procedural BFM world, then the checker."""
    assert data_main(["write", "--dataset", "aflw2000", "--out", str(tmp_path), "--n", "2", "--seed", "4"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.mat")) == ["image00002.mat", "image00004.mat"]
    with Image.open(tmp_path / "image00002.jpg") as im:
        assert im.size == (450, 450)
    assert data_main(["check", "--dataset", "aflw2000", "--dir", str(tmp_path)]) == 0
    assert "0 problem(s)" in capsys.readouterr().out.splitlines()[-1]


def test_300wlp_parallel_writer_same_files(w300lp_dir, mirror_bfm_dir, tmp_path):
    """2 worker processes write the same files as the serial module fixture: images byte for
    byte, source .mat values to float64 rounding; the _Flip fits to 1e-5 relative (the
    normal equations amplify BLAS roundings, which depend on its thread count)."""
    write_300wlp(tmp_path, n_per_folder=1, n_profiles=2, seed=3, bfm_dir=str(mirror_bfm_dir), image_size=128,
                 n_jobs=2)
    files = sorted(p.relative_to(w300lp_dir) for p in w300lp_dir.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == files
    for f in files:
        if f.suffix == ".jpg":
            assert (tmp_path / f).read_bytes() == (w300lp_dir / f).read_bytes(), f
        else:
            a, b = sio.loadmat(str(tmp_path / f)), sio.loadmat(str(w300lp_dir / f))
            tol = 1e-5 if f.parts[0].endswith("_Flip") else 1e-9
            for k in (k for k in a if not k.startswith("__")):
                np.testing.assert_allclose(a[k], b[k], rtol=tol, atol=tol * np.abs(b[k]).max(), err_msg=str(f))


def test_aflw2000_reannotated_ground_truth_and_yaw_from_the_pose_list(tmp_path, mirror_bfm_dir):
    """gt=reannotated: landmarks68_px are 3DDFA's (N, 2, 68) re-annotated points through the same
    crop as pt3d_68; yaw: the pose list the benchmark reads, whose |yaw| bins equal Pose_Para's."""
    from datamodules.aflw2000 import read_protocol_arrays
    from lightning_modules.metrics.nme import yaw_bin

    write_aflw2000(tmp_path, n=4, seed=1, bfm_dir=str(mirror_bfm_dir), image_size=96)
    re = np.load(tmp_path / "AFLW2000-3D-Reannotated.pts68.npy")
    pts68 = np.load(tmp_path / "AFLW2000-3D.pts68.npy")
    assert re.shape == (4, 2, 68) and re.dtype == np.float32
    d = np.linalg.norm(re - pts68[:, :2], axis=1)
    assert 0.5 < d.mean() < 2.0  # the 1 px stand-in annotator noise
    names = (tmp_path / "AFLW2000-3D_crop.list").read_text().split()
    pose_para = [math.degrees(float(read_mat(tmp_path / n.replace(".jpg", ".mat"), AFLW2000_SPEC)["Pose_Para"][0, 1]))
                 for n in names]
    _, _, yaw_list = read_protocol_arrays(tmp_path, "original")
    assert yaw_bin(torch.tensor(yaw_list)).tolist() == yaw_bin(torch.tensor(pose_para)).tolist()
    batches = {}
    for gt in ("original", "reannotated"):
        dm = Aflw2000DataModule(data_dir=str(tmp_path), image_size=48, batch_size=4, num_workers=0, gt=gt)
        dm.setup()
        batches[gt] = next(iter(dm.test_dataloader()))
    a, b = batches["original"], batches["reannotated"]
    torch.testing.assert_close(a["image"], b["image"])  # the same crop for both tables
    torch.testing.assert_close(a["yaw"], torch.tensor(yaw_list, dtype=torch.float32))
    M = a["crop_matrix"].double()
    for k in range(4):
        want = torch.from_numpy(re[k].T).double() @ M[k, :2, :2].T + M[k, :2, 2]
        torch.testing.assert_close(b["landmarks68_px"][k].double(), want, atol=1e-4, rtol=0)
        want_o = torch.from_numpy(pts68[k, :2].T).double() @ M[k, :2, :2].T + M[k, :2, 2]
        torch.testing.assert_close(a["landmarks68_px"][k].double(), want_o, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="gt must be"):
        read_protocol_arrays(tmp_path, "other")


def test_sample_expression_neutral_to_strong(mirror_bfm_dir):
    """Exp_Para = clip(N(0, 1) x U(0, intensity_max), +-clip) x sigma_exp: the same draws by hand, the
    clip, and a range from neutral to strong over many faces (the writers used N(0, 0.6^2) before)."""
    plain = load_bfm(mirror_bfm_dir)  # a real-like file: no mouth mode declared, every mode two-sided
    assert plain.mouth_open_mode is None
    raw = np.random.default_rng(3)
    z = raw.normal(0.0, 1.0, plain.exp_ev.size) * raw.uniform(0.0, EXP_INTENSITY_MAX)
    np.testing.assert_allclose(sample_expression(np.random.default_rng(3), plain), np.clip(z, -3.0, 3.0) * plain.exp_ev)
    bfm = dataclasses.replace(plain, mouth_open_mode=MOUTH_OPEN_MODE)  # as the procedural files declare it
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    z = ref.normal(0.0, 1.0, bfm.exp_ev.size) * ref.uniform(0.0, EXP_INTENSITY_MAX)
    z[MOUTH_OPEN_MODE] = abs(z[MOUTH_OPEN_MODE])  # the mouth opens, never closes through itself
    np.testing.assert_allclose(sample_expression(rng, bfm), np.clip(z, -3.0, 3.0) * bfm.exp_ev)
    units = np.stack([sample_expression(np.random.default_rng(i), bfm) / bfm.exp_ev for i in range(400)])
    assert np.abs(units).max() <= 3.0 + 1e-12
    assert units[:, MOUTH_OPEN_MODE].min() >= 0.0 and units[:, MOUTH_OPEN_MODE].max() > 2.0
    assert (units[:, MOUTH_OPEN_MODE + 1:] < 0).mean() > 0.4  # the other modes stay two-sided
    strength = np.sqrt((units ** 2).mean(1))  # per-face rms in sd units: ~U(0, 2)
    assert strength.min() < 0.15 and strength.max() > 1.7 and 0.9 < strength.mean() < 1.1
    assert not sample_expression(np.random.default_rng(0), bfm, intensity_max=0.0).any()


def test_bfm_arrays_trim_the_neck_and_rebuild_faces_by_hand(mirror_bfm_dir):
    """The one BFM reader on a real-layout folder whose model file has 10 neck vertices more than the
    expression basis: shape and texture rows are trimmed with trimIndex, and ``vertices`` / ``albedo``
    equal 3DDFA's formulas written out on the raw .mat arrays."""
    bfm = load_bfm(mirror_bfm_dir)
    m = sio.loadmat(str(mirror_bfm_dir / "01_MorphableModel.mat"))
    e = sio.loadmat(str(mirror_bfm_dir / "Model_Expression.mat"))
    n = e["mu_exp"].size // 3
    assert bfm.n_vertices == n and m["shapeMU"].size == 3 * (n + 10)
    assert bfm.tex_pc.shape == (3 * n, 199) and bfm.tex_ev.shape == (199,)
    rng = np.random.default_rng(5)
    s, x, t = rng.normal(0, 1e4, 199), rng.normal(0, 1e3, 29), rng.normal(0, 3, 199)
    f64 = np.float64
    v = (m["shapeMU"][: 3 * n, 0].astype(f64) + m["shapePC"][: 3 * n].astype(f64) @ s
         + e["mu_exp"][:, 0].astype(f64) + e["w_exp"].astype(f64) @ x)
    np.testing.assert_allclose(bfm.vertices(s, x), v.reshape(-1, 3), rtol=1e-12, atol=1e-6)
    tex = m["texMU"][: 3 * n, 0].astype(f64) + m["texPC"][: 3 * n].astype(f64) @ t
    np.testing.assert_allclose(bfm.albedo(t), np.clip(tex, 0, 255).reshape(-1, 3), atol=1e-9)
    kb = load_keypoint_basis(mirror_bfm_dir)  # the keypoint rows of the same reading
    np.testing.assert_allclose(kb.project_3ddfa(s, x, np.array([0, 0, 0, 0, 0, 0, 1.0]), 1)[:, 0],
                               bfm.vertices(s, x)[bfm.keypoints, 0], rtol=1e-12, atol=1e-6)


def test_bfm_check_names_the_file_and_key(mirror_bfm_dir, tmp_path, capsys):
    """`experiments.data check --dataset bfm` on a folder whose expression file lacks w_exp: one
    problem line naming Model_Expression.mat and 'w_exp', exit code 1."""
    for name in ("01_MorphableModel.mat", "model_info.mat"):
        (tmp_path / name).write_bytes((mirror_bfm_dir / name).read_bytes())
    e = sio.loadmat(str(mirror_bfm_dir / "Model_Expression.mat"))
    sio.savemat(str(tmp_path / "Model_Expression.mat"), {"mu_exp": e["mu_exp"], "sigma_exp": e["sigma_exp"]})
    assert data_main(["check", "--dataset", "bfm", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "Model_Expression.mat: missing key 'w_exp'" in out and "1 problem(s)" in out
