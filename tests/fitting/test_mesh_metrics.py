"""Every evaluation metric against a hand-computed case."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from facemodels.rotations import axis_angle_to_matrix
from fitting.mesh_metrics import (
    chamfer_dad,
    mrle,
    mve,
    nme_box,
    pose_error,
    summarize,
    write_per_image_csv,
    z_n_accuracy,
)


def test_mve_in_mm_with_subset_and_alignment():
    gt = torch.zeros(1, 4, 3, dtype=torch.float64)
    gt[0, :, 0] = torch.tensor([0.0, 1.0, 2.0, 3.0]) * 0.01
    pred = gt.clone()
    pred[0, 1, 1] = 0.003  # 3 mm off on vertex 1
    pred[0, 3, 2] = 0.004  # 4 mm off on vertex 3
    assert mve(pred, gt).item() == pytest.approx((3 + 4) / 4)
    assert mve(pred, gt, idx=[1, 3]).item() == pytest.approx(3.5)
    assert mve(pred, gt, idx=[0, 2]).item() == pytest.approx(0.0)
    # a scaled, rotated, shifted copy has zero error after similarity alignment only
    g = (
        torch.randn(2, 30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        * 0.05
    )
    R = axis_angle_to_matrix(
        torch.tensor([[0.1, 0.5, -0.2], [0.0, -0.3, 0.1]], dtype=torch.float64)
    )
    p = 1.3 * g @ R.transpose(1, 2) + torch.tensor([0.1, 0.0, 0.5], dtype=torch.float64)
    assert (mve(p, g) > 10).all()
    torch.testing.assert_close(
        mve(p, g, align=True), torch.zeros(2, dtype=torch.float64), atol=1e-9, rtol=0
    )


def test_mrle_mean_distance_and_mask():
    a = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]])
    b = torch.tensor([[[3.0, 4.0], [1.0, 1.0], [5.0, 7.0]]])
    assert mrle(a, b).item() == pytest.approx((5 + 0 + 2) / 3)
    assert mrle(a, b, torch.tensor([[1, 1, 0]])).item() == pytest.approx(2.5)


def test_nme_uses_the_square_root_of_the_box_area():
    gt = torch.zeros(1, 68, 2)
    pred = gt.clone()
    pred[0, :34, 0] = 3.0  # half the points 3 px off, the rest exact -> mean 1.5 px
    bbox = torch.tensor([[10.0, 20.0, 100.0, 25.0]])  # sqrt(100 * 25) = 50
    assert nme_box(pred, gt, bbox).item() == pytest.approx(1.5 / 50 * 100)


def test_z5_counts_depth_order_agreement_among_nearest_neighbours():
    # 6 points on a line along x; z increasing. k = 1 neighbours are unambiguous at the ends.
    x = torch.tensor([0.0, 1.0, 2.1, 3.3, 4.6, 6.0], dtype=torch.float64)
    gt = torch.stack([x, torch.zeros(6, dtype=torch.float64), x * 0.1], -1)[None]
    assert z_n_accuracy(gt.clone(), gt, k=2).item() == 1.0
    flipped = gt.clone()
    flipped[..., 2] = -flipped[..., 2]  # every strict order reversed
    assert z_n_accuracy(flipped, gt, k=2).item() == 0.0
    # change the depth of the last point only: its relations to its 2 neighbours (3, 4) break,
    # plus the relations of points 4 (neighbours 3, 5) -> hand count
    pert = gt.clone()
    pert[0, 5, 2] = -1.0
    # nearest-2 lists: 0:{1,2} 1:{0,2} 2:{1,3} 3:{2,4} 4:{3,5} 5:{4,3}
    # pairs involving 5: (4,5), (5,4), (5,3) -> 3 of 12 disagree
    assert z_n_accuracy(pert, gt, k=2).item() == pytest.approx(9 / 12)
    # batched == per item, and chunking does not change it
    both = torch.cat([gt, gt]), torch.cat([pert, flipped])
    torch.testing.assert_close(
        z_n_accuracy(both[1], both[0], k=2, max_chunk_bytes=1),
        torch.tensor([9 / 12, 0.0], dtype=torch.float64),
    )


def test_chamfer_normalises_by_inner_eye_distance_and_aligns_on_seven_landmarks():
    g = torch.Generator().manual_seed(0)
    gt_v = torch.randn(1, 50, 3, generator=g, dtype=torch.float64) * 0.05
    gt68 = torch.randn(1, 68, 3, generator=g, dtype=torch.float64) * 0.05
    gt68[0, 39] = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)
    gt68[0, 42] = torch.tensor([0.04, 0.0, 0.0], dtype=torch.float64)  # 4 cm -> scale 500
    # prediction = the GT under a similarity transform, one vertex moved by 1 mm
    R = axis_angle_to_matrix(torch.tensor([[0.2, -0.4, 0.1]], dtype=torch.float64))
    sim = lambda x: 2.0 * x @ R.transpose(1, 2) + 0.3  # noqa: E731
    pred_v = gt_v.clone()
    pred_v[0, 7, 0] += 0.001
    face_idx = np.arange(0, 50)
    val = chamfer_dad(sim(pred_v), gt_v, sim(gt68), gt68, face_idx)
    # GT vertex 7's nearest prediction is 1 mm * 500 = 0.5 units away (if nothing is closer)
    d_other = (torch.cdist(gt_v[0, 7:8], torch.cat([gt_v[0, :7], gt_v[0, 8:]])) * 500).min().item()
    want = min(0.5, d_other) ** 2 / 50
    assert val.item() == pytest.approx(want, rel=1e-6)
    # a subset of GT vertices: only those count
    assert chamfer_dad(sim(gt_v), gt_v, sim(gt68), gt68, [1, 2, 3]).item() == pytest.approx(
        0.0, abs=1e-12
    )


def test_pose_error_of_a_known_rotation():
    R_gt = axis_angle_to_matrix(torch.tensor([[0.3, 0.1, -0.2]], dtype=torch.float64))
    theta = 0.25
    R_pred = axis_angle_to_matrix(torch.tensor([[0.0, theta, 0.0]], dtype=torch.float64)) @ R_gt
    # ||I - R(theta)||_F = sqrt(2 * (3 - trace R)) = 2 sqrt(2) sin(theta / 2)
    assert pose_error(R_pred, R_gt).item() == pytest.approx(2 * math.sqrt(2) * math.sin(theta / 2))
    assert pose_error(R_gt, R_gt).item() == pytest.approx(0.0, abs=1e-12)


def test_csv_and_summary_json(tmp_path):
    rows = {
        "index": np.array([0, 1, 2]),
        "mve_face_mm": torch.tensor([1.0, 2.0, 30.0]),
        "valid": np.array([True, True, False]),
    }
    p = write_per_image_csv(tmp_path / "per_image.csv", rows)
    lines = p.read_text().splitlines()
    assert lines[0] == "index,mve_face_mm,valid" and lines[3] == "2,30,false"
    s = summarize(rows, valid=rows["valid"], path=tmp_path / "summary.json")
    assert s["mve_face_mm"] == pytest.approx(1.5) and s["n_valid"] == 2 and s["n_images"] == 3
    assert json.loads((tmp_path / "summary.json").read_text())["mve_face_mm"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="different lengths"):
        write_per_image_csv(tmp_path / "bad.csv", {"a": [1, 2], "b": [1]})
