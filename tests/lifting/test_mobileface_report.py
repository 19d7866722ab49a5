"""The MobileFace Fig. 4a report: AUCs from the runs' per-face distances (hand-computed), CED plot written."""

from __future__ import annotations

import numpy as np

from experiments import reproduce
from experiments.reports import mobileface_f4a


def test_report_aucs_and_verdicts(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(reproduce, "DOCS", tmp_path / "docs")
    recipe = reproduce.load_recipe("mobileface_f4a")
    # per-face distances: AUC on [0, 1] = mean(1 - d) for d <= 1
    dists = {"mse": [0.2, 0.4], "mse_uniform": [0.3, 0.5], "l2_2d3d": [0.1, 0.1], "l1_2d3d": [0.1, 0.3]}
    for run in recipe["runs"]:
        d = reproduce.run_dir("mobileface_f4a", "quick", run)
        d.mkdir(parents=True)
        np.savez(d / "test_errors.npz", index=np.array([1, 0]), dist=np.array(dists[run["name"]]),
                 dist_meanshape=np.array([0.3, 0.3]), dist_upper=np.array([0.0, 0.02]))
    report = mobileface_f4a.write("mobileface_f4a", "quick", recipe, {"mse": 60.0}, "make reproduce")
    text = report.read_text()
    assert "| Loss MSE | 0.700 | 0.829 | 0.3000 |" in text
    assert "| Loss 2d+3d, l2 | 0.900 | 0.854 | 0.1000 |" in text
    assert "| Loss 2d+3d, l1 | 0.800 | - | 0.2000 |" in text
    assert "| mean shape | 0.700 | 0.819 |" in text and "| registered model (upper bound) | 0.990 | 0.974 |" in text
    assert "Beat the mean shape (AUC 0.700): Loss 2d+3d, l2, Loss 2d+3d, l1;" in text
    assert "best 2d+3d AUC 0.900 (Loss 2d+3d, l2) vs MSE 0.700 (as in the paper, where the 2d+3d loss beat" in text
    assert "not significant here (paired Wilcoxon p = 0.5)" in text  # two faces: the smallest exact p is 0.5
    # paired tests against the mean shape (0.3, 0.3) and the first MSE run (0.2, 0.4)
    assert "- Loss 2d+3d, l2 vs the mean shape: mean d -0.2000, lower on 100% of faces, p = 0.5; vs Loss MSE: mean d -0.2000, lower on 100% of faces" in text
    assert "- Loss MSE vs the mean shape: mean d +0.0000, lower on 50% of faces" in text
    assert "- Loss MSE (uniform weights) vs the mean shape: mean d +0.1000, lower on 0% of faces" in text
    assert (tmp_path / "docs" / "mobileface_f4a_quick.png").stat().st_size > 1000
