"""Report of the thesis_e2e recipe (issue 17): the generic table (experiments.reproduce.write_report), the
confidences of each run (experiments.reports.thesis_fitting), and the paired comparison over the test faces
that the table cannot give: per-image MVE (face / head, aligned and not) of the 3D fine-tune against the
2D fine-tune (equal extra steps) and against the two-stage model, with the Wilcoxon signed-rank test
(scipy.stats.wilcoxon) over the images fitted validly by both (``per_image.csv`` of each run's fit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

from experiments import reproduce
from experiments.reports.thesis_fitting import confidence_lines, per_image

KEYS = (("mve_face_mm", "MVE face"), ("mve_head_mm", "MVE head"), ("mve_face_aligned_mm", "MVE face aligned"),
        ("mve_head_aligned_mm", "MVE head aligned"), ("mlme_px", "MLME"))
#: (treatment, baseline) run names compared per image
PAIRS = (("finetune_3d", "finetune_2d"), ("finetune_3d", "pretrain"), ("finetune_2d", "pretrain"))


def paired_test(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], key: str
                ) -> tuple[float, float, float, float, int]:
    """(mean a, mean b, median of a - b, two-sided Wilcoxon p, n) over the images valid in both."""
    common = sorted(i for i in set(a) & set(b) if key in a[i] and key in b[i])
    if len(common) < 2:
        return (float("nan"),) * 4 + (len(common),)
    x = np.array([a[i][key] for i in common])
    y = np.array([b[i][key] for i in common])
    d = x - y
    p = float(wilcoxon(x, y).pvalue) if np.any(d != 0) else 1.0
    return float(x.mean()), float(y.mean()), float(np.median(d)), p, len(common)


def paired_lines(name: str, scale: str, recipe: dict) -> list[str]:
    runs = {r["name"]: r for r in reproduce.runs_at(recipe, scale)}
    variant = reproduce.fit_variants(recipe)[0]
    fits = {n: per_image(reproduce.fit_dir(name, scale, r, variant)) for n, r in runs.items()}
    lines = ["## Paired over the test faces (Wilcoxon signed-rank, two-sided)", "",
             "| A vs B | metric | A mean | B mean | median(A - B) | p | images |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for a, b in PAIRS:
        if fits.get(a) is None or fits.get(b) is None:
            continue
        for key, label in KEYS:
            ma, mb, med, p, n = paired_test(fits[a], fits[b], key)
            lines.append(f"| {runs[a].get('label', a)} vs {runs[b].get('label', b)} | {label} | {ma:.3f} | "
                         f"{mb:.3f} | {med:+.3f} | {p:.3g} | {n} |")
    return lines + [""]


def write(name: str, scale: str, recipe: dict, timings: dict[str, float], command: str) -> Path:
    """Generic table + confidences + the paired tests (write_report's signature)."""
    report = reproduce.write_report(name, scale, recipe, timings, command)
    lines = ["", *confidence_lines(name, scale, recipe), *paired_lines(name, scale, recipe)]
    report.write_text(report.read_text() + "\n".join(lines))
    return report
