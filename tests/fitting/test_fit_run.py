"""experiments.fit's fit-evaluate-write loop on batches in the batch contract, with the exact
projected landmarks (+ noise) standing in for a network's predictions."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from facemodels.flame_files import face_region_indices, head_without_neck_indices, load_flame_arrays
from facemodels.world import default_flame_dir
from fitting.builder import build_flame_fitter
from fitting.fit_loop import embed68, fit_batches
from fitting.fit_problems import make_problems
from fitting.flame_fit import FitterConfig
from fitting.reprojection import camera_rotation, project
from tests.fitting.tiny_run import REPO_ROOT, write_untrained_tiny_run


def _batches(fitter, flame, flame_dir, n_batches=2, B=3):
    for k in range(n_batches):
        p = make_problems(fitter, B, seed=10 + k, noise_px=0.5)
        R = camera_rotation(p.rot)
        cam_v = p.vertices @ R.transpose(1, 2) + p.transl[:, None]
        yield {
            "index": torch.arange(B) + k * B,
            "landmarks_px": p.clean.float(),
            "noisy": p.landmarks.float(),
            "vertices": p.vertices.float(),
            "landmarks68_px": project(embed68(cam_v, flame, flame_dir), p.K).float(),
            "camera": {"K": p.K.float(), "R": R.float(), "t": p.transl.float()},
        }


@pytest.mark.slow
def test_fit_batches_writes_meshes_csv_and_summary(tmp_path):
    flame_dir = default_flame_dir()
    flame = load_flame_arrays(flame_dir)
    fitter = build_flame_fitter(
        flame_dir, "face1609", FitterConfig(w_shape=0.25, w_expr=0.25, w_pose=0.25)
    )
    summary = fit_batches(
        fitter,
        _batches(fitter, flame, flame_dir),
        lambda b: {"landmarks_px": b["noisy"]},
        flame,
        flame_dir,
        face_region_indices(flame_dir),
        head_without_neck_indices(flame_dir),
        tmp_path,
        write_meshes=4,
    )
    assert len(list((tmp_path / "meshes").glob("*.obj"))) == 4
    with (tmp_path / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and [int(r["index"]) for r in rows] == list(range(6))
    assert json.loads((tmp_path / "summary.json").read_text())["n_valid"] == 6
    assert summary["mve_face_aligned_mm"] < 1.5
    assert 0.45 < summary["mrle_px"] < 0.8  # the fit follows the landmarks up to the 0.5 px noise
    assert summary["mlme_px"] > 0.5  # predicted (noisy) vs GT landmarks
    assert summary["z5"] > 0.9 and summary["pose_error"] < 0.05 and summary["nme"] < 1.0
    assert summary["chamfer"] < 1.0  # normalised units^2 (inner eye corners 20 apart): ~1 mm rms


@pytest.mark.slow
def test_fit_cli_on_an_untrained_tiny_checkpoint(tmp_path):
    """`python -m experiments.fit` end to end: checkpoint + training-run config -> meshes, CSV, JSON."""
    import subprocess
    import sys

    run = tmp_path / "run"
    ckpt = write_untrained_tiny_run(run)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.fit",
            f"ckpt_path={ckpt}",
            "data=synthetic",
            "limit_batches=1",
            "write_meshes=2",
            "mesh_format=ply",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((out / "meshes").glob("*.ply"))) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_images"] == 4 and np.isfinite(summary["mrle_px"])
    marker = json.loads((out / "fit_metrics.json").read_text())  # written last; keyed <split>/<metric>
    assert marker["val/mrle_px"] == summary["mrle_px"] and marker["val/n_images"] == 4


# ------------------------------------------------------------------ landmark subsets, confidences, metrics
def test_subset_columns_pick_the_subset_vertices_in_its_order():
    from facemodels.landmark_sets import landmark_vertex_indices
    from fitting.fit_loop import subset_columns

    flame_dir = default_flame_dir()
    full = landmark_vertex_indices("face1609", flame_dir)
    for name in ("face805", "face101"):
        cols = subset_columns("face1609", name, flame_dir)
        assert cols.dtype == np.int64 and len(set(cols.tolist())) == len(cols)
        np.testing.assert_array_equal(full[cols], landmark_vertex_indices(name, flame_dir))
    assert subset_columns("face1609", "face1609", flame_dir) is None
    with pytest.raises(ValueError, match="not in the network's landmark set 'face805'"):
        subset_columns("face805", "face1609", flame_dir)  # a superset is not a subset
    with pytest.raises(ValueError, match="ibug68"):
        subset_columns("face1609", "ibug68", flame_dir)


def test_report_metrics_and_atomic_fit_metrics_file(tmp_path):
    from fitting.fit_loop import report_metrics, write_fit_metrics

    m = report_metrics({"n_images": 3, "mve_face_mm": 7.5, "note": "x", "flag": True}, "test")
    assert m == {"test/n_images": 3.0, "test/mve_face_mm": 7.5}
    path = write_fit_metrics(tmp_path / "fit" / "fit_metrics.json", m)
    assert json.loads(path.read_text()) == m
    assert [p.name for p in path.parent.iterdir()] == ["fit_metrics.json"]  # no temp file left


def test_fit_batches_on_a_subset_with_and_without_confidences(tmp_path):
    """A network predicting 1609 landmarks, fitted on the 805 subset: the fitter sees the subset's
    columns; zero confidences make an image invalid only when the confidences are used."""
    from fitting.fit_loop import subset_columns

    flame_dir = default_flame_dir()
    flame = load_flame_arrays(flame_dir)
    cfg = FitterConfig(w_shape=0.25, w_expr=0.25, w_pose=0.25, rigid_iterations=5, nonrigid_iterations=5)
    full = build_flame_fitter(flame_dir, "face1609", cfg)
    sub = build_flame_fitter(flame_dir, "face805", cfg)
    cols = subset_columns("face1609", "face805", flame_dir)
    batch = next(_batches(full, flame, flame_dir, n_batches=1, B=2))
    conf = torch.ones(2, 1609)
    conf[1] = 0.0  # image 1: no landmark is usable when the confidences count
    conf[0, 0] = 0.5  # image 0: mean over the subset = 1 - 0.5 / 805 if column 0 is in it

    def predict(b):
        return {"landmarks_px": b["landmarks_px"], "confidences": conf}

    args = (flame, flame_dir, face_region_indices(flame_dir), head_without_neck_indices(flame_dir))
    with_conf = fit_batches(sub, [batch], predict, *args, tmp_path / "c", write_meshes=0, columns=cols)
    no_conf = fit_batches(sub, [batch], predict, *args, tmp_path / "n", write_meshes=0, columns=cols,
                          use_confidences=False)
    assert with_conf["n_valid"] == 1 and no_conf["n_valid"] == 2
    assert with_conf["mlme_px"] == 0.0  # the subset of the GT landmarks was compared, not all 1609
    assert no_conf["mrle_px"] < 0.05  # the subset of exact landmarks is fitted exactly
    expected = 1.0 - (0.5 / 805 if 0 in cols else 0.0)
    assert abs(with_conf["confidence_mean"] - expected) < 1e-6  # mean over valid images (image 0)
    for s in (with_conf, no_conf):
        assert s["time_fit_s_per_image"] > 0 and s["time_landmarks_ms_per_image"] >= 0
        assert json.loads((tmp_path / "c" / "summary.json").read_text())["n_valid"] == 1
    with (tmp_path / "n" / "per_image.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["valid"] for r in rows] == ["true", "true"] and float(rows[1]["confidence_mean"]) == 0.0
