"""The DAD-3DHeads benchmark as released: hand-computed cases of each metric (NME on the
annotation box, Z5 as released and as in the paper, Chamfer with reflections, pose error, the
every-image mean), the json formats, and numbers produced by the official code.

Official numbers: PinataFarms/DAD-3DHeads ``dad_3dheads_benchmark/benchmark.py`` and
``utils.py`` (commit 1771af33f720a2c1513ccabc17695513fb74a8fb, as the search tool's read_file
returned them), unchanged under $OFFICIAL_DIR (outside the repository), with kaolin's CUDA
``chamfer_distance`` replaced by a CPU one (mean over p1 of the squared nearest distance to p2) and
``Tensor.cuda`` a no-op; data/static and model_training/model/static filled from the procedural
FLAME folder (seed 0). Commands (scripts/official_check/README.md)::

    python scripts/official_check/make_case.py /tmp/case     # make_case(procedural seed 0, n=3, seed=0)
    python scripts/official_check/run_official.py <flame_dir> /tmp/case/gt.json /tmp/case/sub.json /tmp/case/official.json

The case is made on the procedural FLAME, so the numbers are re-made when its BUILD_VERSION changes.
(``run_official.py`` builds ``benchmark.DADEvaluator(gt, sub)`` and calls its ``nme``, ``zn``,
``chamfer_distance`` and ``pose_error`` per image.)
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch

from facemodels.flame_files import load_flame_arrays
from facemodels.world import procedural_flame_dir
from fitting.dad3dheads_benchmark import (
    dad_vertex_sets,
    gt_rotation,
    read_ground_truth,
    read_submission,
    resolve_static_dir,
    score_submission,
    write_ground_truth,
    write_submission,
)
from fitting.fit_loop import embed68
from fitting.mesh_metrics import chamfer_dad, nme_box, pose_error, summarize, z_n_accuracy
from tests.fitting.tiny_run import REPO_ROOT, write_untrained_tiny_run

from .dad_benchmark_case import make_case

#: the official benchmark's per-image numbers on make_case(procedural seed 0, n=3, seed=0)
OFFICIAL_CASE0 = {  # procedural world BUILD_VERSION 6 (scripts/official_check/README.md)
    "case0_000": {"nme": 1.1536944759297365, "z5": 0.9835221171379089, "chamfer": 2.2530434131622314,
                  "pose_error": 0.0674547729056675},
    "case0_001": {"nme": 1.2525682524801842, "z5": 0.9834332466125488, "chamfer": 1.9534169435501099,
                  "pose_error": 0.11753967638123357},
    "case0_002": {"nme": 1.1917262738207102, "z5": 0.9832556247711182, "chamfer": 1.9588078260421753,
                  "pose_error": 0.08353263763934793},
}


@pytest.fixture(scope="module")
def flame():
    fd = procedural_flame_dir(0)
    return fd, load_flame_arrays(fd)


def test_nme_normalises_by_the_annotation_box():
    gt = torch.zeros(1, 68, 2)
    pred = gt + torch.tensor([3.0, 4.0])  # 5 px each
    box = torch.tensor([[10.0, 20.0, 100.0, 25.0]])  # sqrt(100 * 25) = 50
    assert nme_box(pred, gt, box).item() == pytest.approx(10.0)


def test_z5_released_and_paper_rules_by_hand():
    # x gaps 1, 2, 4, 5 (distinct distances); GT depth increases with the index
    x = torch.tensor([0.0, 1.0, 3.0, 7.0, 12.0])
    gz = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    gt = torch.stack([x, torch.zeros(5), gz], -1)[None]
    pred = gt.clone()
    pred[0, :, 2] = torch.tensor([0.15, 0.1, 0.2, 0.45, 0.4])  # swaps the order of (0, 1) and (3, 4)
    # paper, k=2: neighbours 0:{1,2} 1:{0,2} 2:{1,0} 3:{2,4} 4:{3,2}; wrong: (0,1) (1,0) (3,4) (4,3)
    assert z_n_accuracy(pred, gt, k=2, rule="paper").item() == pytest.approx(6 / 10)
    # released, k=2: j(i, c) = argsort(d[:, c])[i], c = 1, 2: argsort(d[:,1]) = [1,0,2,3,4],
    # argsort(d[:,2]) = [2,1,0,3,4] -> pairs (0,1)(0,2) (1,0)(1,1) (2,2)(2,0) (3,3)(3,3) (4,4)(4,4)
    assert z_n_accuracy(pred, gt, k=2, rule="released").item() == pytest.approx(8 / 10)
    with pytest.raises(ValueError, match="rule"):
        z_n_accuracy(pred, gt, rule="other")


def test_chamfer_with_reflection_undoes_a_mirrored_prediction():
    g = torch.Generator().manual_seed(0)
    gt_v = torch.randn(1, 40, 3, generator=g, dtype=torch.float64)
    gt68 = torch.randn(1, 68, 3, generator=g, dtype=torch.float64)
    mirror = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    pred_v, pred68 = 1.3 * gt_v * mirror + 0.5, 1.3 * gt68 * mirror + 0.5
    face = list(range(0, 40, 2))
    assert chamfer_dad(pred_v, gt_v, pred68, gt68, face, reflection=True).item() == pytest.approx(0.0, abs=1e-12)
    assert chamfer_dad(pred_v, gt_v, pred68, gt68, face, reflection=False).item() > 1.0
    # the seven landmarks alone ((B, 7, 3)) give the same value as the 68 they come from
    seven = pred68[:, [36, 39, 42, 45, 33, 48, 54]]
    a = chamfer_dad(pred_v + 0.01, gt_v, seven, gt68, face, reflection=True)
    b = chamfer_dad(pred_v + 0.01, gt_v, pred68, gt68, face, reflection=True)
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_pose_error_and_the_benchmarks_gt_rotation():
    th = 0.3
    Rz = torch.tensor([[[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0], [0.0, 0.0, 1.0]]])
    # ||I - R||_F = 2 sqrt(1 - cos th) for a rotation by th
    assert pose_error(Rz, torch.eye(3)[None]).item() == pytest.approx(2 * math.sqrt(1 - math.cos(th)), rel=1e-6)
    mv = np.eye(4)
    mv[:3, :3] = np.diag([1.0, -1.0, -1.0]) @ Rz[0].numpy()  # GL model-view of the cv rotation Rz
    np.testing.assert_allclose(gt_rotation(mv), Rz[0].numpy(), atol=1e-7)


def test_summarize_counts_every_image_for_benchmark_columns():
    rows = {"nme": np.array([1.0, 2.0, 6.0]), "mve": np.array([1.0, 2.0, 6.0])}
    s = summarize(rows, valid=np.array([True, True, False]), every_image=("nme",))
    assert s["nme"] == pytest.approx(3.0) and s["mve"] == pytest.approx(1.5)
    assert s["n_images"] == 3 and s["n_valid"] == 2


def test_vertex_sets_from_a_static_folder_and_the_procedural_flame(tmp_path, flame):
    fd, _ = flame
    sets = dad_vertex_sets(fd)
    assert sets.head.size > sets.face.size > 1609 and np.all(np.diff(sets.face) > 0)
    static = tmp_path / "DAD-3DHeads" / "model_training" / "model" / "static"
    (static / "flame_indices").mkdir(parents=True)
    np.save(static / "head_indices.npy", np.arange(10))
    np.save(static / "flame_indices" / "face.npy", np.arange(3))
    assert resolve_static_dir(tmp_path / "DAD-3DHeads") == static
    got = dad_vertex_sets(tmp_path / "DAD-3DHeads")
    assert got.head.tolist() == list(range(10)) and got.face.tolist() == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="head_indices.npy"):
        dad_vertex_sets(tmp_path / "nowhere")


def test_json_formats_round_trip(tmp_path):
    ids = ["a", "b"]
    g = np.random.default_rng(0)
    lm, v, s7, R = g.normal(size=(2, 68, 2)), g.normal(size=(2, 20, 3)), g.normal(size=(2, 7, 3)), g.normal(size=(2, 3, 3))
    path = write_submission(tmp_path / "sub.json", ids, lm, v, s7, R)
    raw = json.loads(path.read_text())
    assert set(raw) == {"a", "b"} and set(raw["a"]) == {"68_landmarks_2d", "N_landmarks_3d", "7_landmarks_3d",
                                                        "rotation_matrix"}
    sub = read_submission(path)
    np.testing.assert_array_equal(sub["b"]["N_landmarks_3d"], v[1])
    np.testing.assert_array_equal(sub["a"]["68_landmarks_2d"], lm[0])
    gt = [{"id": "a", "bbox": [1, 2, 30, 40], "vertices": v[0], "model_view_matrix": np.eye(4),
           "projection_matrix": np.eye(4), "image_height": 320}]
    back = read_ground_truth(write_ground_truth(tmp_path / "gt.json", gt))
    assert back[0]["id"] == "a" and back[0]["image_height"] == 320 and back[0]["bbox"].tolist() == [1, 2, 30, 40]
    np.testing.assert_array_equal(back[0]["vertices"], v[0])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"rotation_matrix": [[1, 0], [0, 1]]}}))
    with pytest.raises(ValueError, match="rotation_matrix"):
        read_submission(bad)


def test_scorer_equals_the_official_benchmark_on_the_same_submission(tmp_path, flame):
    """Every per-image value within 1e-4 relative of the official code's (measured: NME 7e-7,
    Z5 4e-8, Chamfer 7e-6 (kaolin-free float32 vs float64), pose 1e-7)."""
    fd, fl = flame
    gt, sub = make_case(fd, n=3, seed=0)
    write_ground_truth(tmp_path / "gt.json", gt)
    (tmp_path / "sub.json").write_text(json.dumps(sub))
    cols, summary = score_submission(
        read_ground_truth(tmp_path / "gt.json"), read_submission(tmp_path / "sub.json"),
        functools.partial(embed68, flame=fl, folder=fd), dad_vertex_sets(fd),
    )
    assert cols["id"].tolist() == list(OFFICIAL_CASE0)
    for i, item in enumerate(cols["id"]):
        for k, want in OFFICIAL_CASE0[item].items():
            assert cols[k][i] == pytest.approx(want, rel=1e-4), (item, k)
    # the paper's Z5 is a different number on the same meshes; the mirrored last prediction
    # scores like the others only because the Procrustes may reflect
    assert summary["z5_paper"] < summary["z5"] - 0.1
    assert summary["n_images"] == 3 and summary["n_missing"] == 0
    # an image without a submission is skipped, as the benchmark skips it
    del sub["case0_001"]
    (tmp_path / "sub2.json").write_text(json.dumps(sub))
    cols2, s2 = score_submission(read_ground_truth(tmp_path / "gt.json"), read_submission(tmp_path / "sub2.json"),
                                 functools.partial(embed68, flame=fl, folder=fd), dad_vertex_sets(fd))
    assert cols2["id"].tolist() == ["case0_000", "case0_002"] and s2["n_missing"] == 1


def test_fit_loop_writes_a_submission_the_scorer_reads_and_agrees_with(tmp_path, flame):
    """fit_batches on procedural DAD-3DHeads val images writes dad_submission.json; scored
    against ground_truth_from_root (= generate_gt.py's json: compared equal on an 8-image
    procedural set, /tmp/official/fit_case.py) it gives the loop's per-image benchmark columns.
    The official benchmark.py scored that 8-image fit's json unchanged (Z5 5.6e-6, NME 2e-6,
    Chamfer 1e-5, pose 4e-9 relative to the loop's means)."""
    import csv

    from torch.utils.data import DataLoader

    from datamodules.dad3dheads import Dad3DHeadsDataset
    from datamodules.writers.dad3dheads import write_dad3dheads
    from facemodels.flame_files import face_region_indices, head_without_neck_indices
    from fitting.builder import build_flame_fitter
    from fitting.dad3dheads_benchmark import ground_truth_from_root
    from fitting.fit_loop import SUBMISSION_FILE, fit_batches
    from fitting.flame_fit import FitterConfig

    fd, fl = flame
    root = tmp_path / "DAD-3DHeadsDataset"
    write_dad3dheads(root, n_train=0, n_val=4, n_test=0, image_size=256, seed=3, flame_dir=str(fd), n_jobs=1)
    ds = Dad3DHeadsDataset(root, "val", landmark_set="face1609", image_size=192, flame_dir=str(fd),
                           cache_root=tmp_path / "cache")
    fitter = build_flame_fitter(fd, "face1609", FitterConfig(image_size=(192, 192)))
    g = torch.Generator().manual_seed(0)
    sets = dad_vertex_sets(fd)
    fit_batches(fitter, DataLoader(ds, batch_size=2),
                lambda b: {"landmarks_px": b["landmarks_px"] + torch.randn(b["landmarks_px"].shape, generator=g)},
                fl, fd, face_region_indices(fd), head_without_neck_indices(fd), tmp_path / "fit", write_meshes=0,
                dad_sets=sets)
    sub = read_submission(tmp_path / "fit" / SUBMISSION_FILE)
    entries = json.loads((root / "val" / "val.json").read_text())
    assert list(sub) == [e["item_id"] for e in entries]
    assert sub[entries[0]["item_id"]]["N_landmarks_3d"].shape == (5023, 3)
    cols, _ = score_submission(ground_truth_from_root(root, "val"), sub,
                               functools.partial(embed68, flame=fl, folder=fd), sets)
    with (tmp_path / "fit" / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        for k in ("nme", "z5", "z5_paper", "chamfer", "pose_error"):
            assert float(r[k]) == pytest.approx(cols[k][i], rel=2e-4, abs=1e-6), (i, k)


@pytest.mark.slow
def test_make_fit_on_dad3dheads_writes_the_benchmark_submission(tmp_path, flame):
    """`python -m experiments.fit ... data=dad3dheads` (= make fit) writes dad_submission.json beside
    per_image.csv. The official benchmark.py (+ generate_gt.py) scored such a json unchanged
    (/tmp/official/cli_case.py: 2 images, Z5 within 5e-5, NME 1e-7, Chamfer 5e-6, pose 2e-8
    relative of the CSV's values)."""
    import csv
    import subprocess
    import sys

    from datamodules.writers.dad3dheads import write_dad3dheads
    from fitting.dad3dheads_benchmark import ground_truth_from_root

    fd, fl = flame
    run = tmp_path / "run"
    ckpt = write_untrained_tiny_run(run)
    out = tmp_path / "out"
    data = tmp_path / "dad"
    write_dad3dheads(data, n_train=2, n_val=4, n_test=1, image_size=160, seed=0, flame_dir=str(fd), n_jobs=1)
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.fit", f"ckpt_path={ckpt}",
         "data=dad3dheads", "data.n_train=2", "data.n_val=4", "data.n_test=1", "data.frame_size=160",
         f"data.data_dir={data}", "data.num_workers=0", "data.persistent_workers=false", "limit_batches=1",
         "write_meshes=0", f"hydra.run.dir={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    sub = read_submission(out / "dad_submission.json")
    gt = ground_truth_from_root(data, "val")
    assert list(sub) == [g["id"] for g in gt[:2]]  # the val half the fit ran on
    cols, _ = score_submission(gt, sub, functools.partial(embed68, flame=fl, folder=fd), dad_vertex_sets(fd))
    with (out / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    for i, r in enumerate(rows):
        for k in ("nme", "chamfer", "pose_error"):
            assert float(r[k]) == pytest.approx(cols[k][i], rel=2e-4, abs=1e-6), (i, k)
        # the in-loop GT is R v + t of the crop camera, the benchmark's MV v: the released Z5's
        # near-ties move by up to a few 1e-4 on an untrained fit's poor meshes
        assert float(r["z5"]) == pytest.approx(cols["z5"][i], rel=1e-3), i
