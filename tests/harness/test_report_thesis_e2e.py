"""experiments.reports.thesis_e2e on fitted runs written in the real per_image.csv format: the Wilcoxon
pairing over images valid in both fits (exact p by hand), the verdict, the confidence-error correlation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from experiments import reproduce
from experiments.reports import thesis_e2e

COLUMNS = ["index", "valid", "mve_face_mm", "mve_head_mm", "mve_face_aligned_mm", "mve_head_aligned_mm",
           "mlme_px", "confidence_mean"]
RECIPE = {"title": "T", "metrics": {"test/mve_face_mm": "MVE face"}, "scales": {"quick": []},
          "runs": [{"name": "pretrain", "label": "two-stage", "overrides": []},
                   {"name": "finetune_2d", "label": "2D", "overrides": []},
                   {"name": "finetune_3d", "label": "3D", "overrides": []}],
          "fit": {"overrides": []}}


def write_fit(run: dict, rows: list[dict]) -> None:
    d = reproduce.fit_dir("t", "quick", run, {"name": "fit"})
    d.mkdir(parents=True)
    with open(d / "per_image.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    valid = [r for r in rows if r["valid"] == "true"]
    (d / "fit_metrics.json").write_text(json.dumps({"test/mve_face_mm": float(np.mean([r["mve_face_mm"] for r in valid]))}))


def rows(face: list[float], conf: list[float], invalid: tuple[int, ...] = ()) -> list[dict]:
    return [{"index": i, "valid": "false" if i in invalid else "true", "mve_face_mm": f, "mve_head_mm": 2 * f,
             "mve_face_aligned_mm": f / 2, "mve_head_aligned_mm": f, "mlme_px": 1.0, "confidence_mean": c}
            for i, (f, c) in enumerate(zip(face, conf, strict=True))]


@pytest.fixture
def fitted(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(reproduce, "DOCS", tmp_path / "docs")
    base = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0]
    runs = {r["name"]: r for r in RECIPE["runs"]}
    write_fit(runs["pretrain"], rows(base, [0.5] * 7))
    write_fit(runs["finetune_2d"], rows(base, [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]))
    # 3D: lower by 1..6 mm on images 0-5; image 6 is invalid (left out of every pair)
    write_fit(runs["finetune_3d"], rows([b - d for b, d in zip(base, [1, 2, 3, 4, 5, 6, 0], strict=True)],
                                        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], invalid=(6,)))
    return runs


def test_paired_test_uses_images_valid_in_both_and_the_exact_wilcoxon_p(fitted):
    a = thesis_e2e.per_image(reproduce.fit_dir("t", "quick", fitted["finetune_3d"], {"name": "fit"}))
    b = thesis_e2e.per_image(reproduce.fit_dir("t", "quick", fitted["finetune_2d"], {"name": "fit"}))
    ma, mb, med, p, n = thesis_e2e.paired_test(a, b, "mve_face_mm")
    assert n == 6
    assert ma == pytest.approx((210 - 21) / 6) and mb == pytest.approx(35.0) and med == pytest.approx(-3.5)
    # 6 differences, all negative, no ties: exact two-sided p = 2 / 2^6
    assert p == pytest.approx(2 / 64)
    assert thesis_e2e.verdict(ma, mb, p) == "lower"
    assert thesis_e2e.verdict(mb, ma, p) == "higher"
    assert thesis_e2e.verdict(ma, mb, 0.2) == "no significant difference"
    assert thesis_e2e.paired_test(a, a, "mve_face_mm")[3] == 1.0  # no difference at all: p = 1


def test_confidence_error_correlation_is_spearman_over_valid_images(fitted):
    d2 = thesis_e2e.per_image(reproduce.fit_dir("t", "quick", fitted["finetune_2d"], {"name": "fit"}))
    d3 = thesis_e2e.per_image(reproduce.fit_dir("t", "quick", fitted["finetune_3d"], {"name": "fit"}))
    assert thesis_e2e.confidence_error_corr(d2) == (pytest.approx(-1.0), 7)  # C falls as the error grows
    assert thesis_e2e.confidence_error_corr(d3) == (pytest.approx(1.0), 6)
    constant = thesis_e2e.per_image(reproduce.fit_dir("t", "quick", fitted["pretrain"], {"name": "fit"}))
    assert np.isnan(thesis_e2e.confidence_error_corr(constant)[0])


def test_the_report_states_the_answer(fitted):
    report = thesis_e2e.write("t", "quick", RECIPE, {}, "cmd").read_text()
    assert ("- MVE face: 3D 31.50 mm vs 2D 35.00 mm (median paired difference -3.50 mm, p = 0.0312, "
            "6 images): **lower**") in report
    assert "| 2D | -1.000 | -1.000 | 7 |" in report
    assert "| 3D vs 2D | MVE head | 63.000 | 70.000 | -7.000 | 0.0312 | 6 |" in report
