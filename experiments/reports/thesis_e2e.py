"""Report of the thesis_e2e recipe (issue 17): the generic table (experiments.reproduce.write_report), the
confidences of each run (experiments.reports.thesis_fitting), and what the table cannot give:

- the answer: per image, MVE (face / head, aligned and not) of the 3D fine-tune against the 2D fine-tune
  (equal extra steps) and against the two-stage model, with the two-sided Wilcoxon signed-rank test
  (scipy.stats.wilcoxon) over the images fitted validly by both (``per_image.csv`` of each run's fit),
  and one sentence per comparison (lower / higher / no significant difference at ALPHA);
- the calibration of the confidences: beside the landmark-level numbers of thesis_fitting, the
  Spearman correlation over test images of the mean confidence C and the fitted mesh's MVE face (a
  confidence that knows the mesh error correlates negatively).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr, wilcoxon

from experiments import reproduce
from experiments.reports.thesis_fitting import confidence_lines, per_image

KEYS = (("mve_face_mm", "MVE face"), ("mve_head_mm", "MVE head"), ("mve_face_aligned_mm", "MVE face aligned"),
        ("mve_head_aligned_mm", "MVE head aligned"), ("mlme_px", "MLME"))
#: (treatment, baseline) run names compared per image
PAIRS = (("finetune_3d", "finetune_2d"), ("finetune_3d", "pretrain"), ("finetune_2d", "pretrain"))
#: the comparisons the answer states (the first is the issue's question: equal extra steps)
ANSWER_PAIRS = PAIRS[:2]
ANSWER_KEYS = KEYS[:4]
ALPHA = 0.05

Images = dict[int, dict[str, float]]


def paired_test(a: Images, b: Images, key: str) -> tuple[float, float, float, float, int]:
    """(mean a, mean b, median of a - b, two-sided Wilcoxon p, n) over the images valid in both."""
    common = sorted(i for i in set(a) & set(b) if key in a[i] and key in b[i])
    if len(common) < 2:
        return (float("nan"),) * 4 + (len(common),)
    x = np.array([a[i][key] for i in common])
    y = np.array([b[i][key] for i in common])
    d = x - y
    p = float(wilcoxon(x, y).pvalue) if np.any(d != 0) else 1.0
    return float(x.mean()), float(y.mean()), float(np.median(d)), p, len(common)


def verdict(mean_a: float, mean_b: float, p: float, alpha: float = ALPHA) -> str:
    """'lower' / 'higher' (A's mean against B's, significant at ``alpha``), else 'no significant difference'."""
    if not (np.isfinite(p) and p < alpha):
        return "no significant difference"
    return "lower" if mean_a < mean_b else "higher"


def confidence_error_corr(images: Images, key: str = "mve_face_mm") -> tuple[float, int]:
    """(Spearman rho of the per-image mean confidence and ``key``, n) over the valid images; nan when
    fewer than 3 images carry both or either is constant."""
    rows = [(v["confidence_mean"], v[key]) for v in images.values() if "confidence_mean" in v and key in v]
    if len(rows) < 3:
        return float("nan"), len(rows)
    c, e = np.array(rows).T
    if np.ptp(c) == 0 or np.ptp(e) == 0:
        return float("nan"), len(rows)
    return float(spearmanr(c, e).statistic), len(rows)


def _fits(name: str, scale: str, recipe: dict) -> tuple[dict[str, dict], dict[str, Images | None]]:
    runs = {r["name"]: r for r in reproduce.runs_at(recipe, scale)}
    variant = reproduce.fit_variants(recipe)[0]
    return runs, {n: per_image(reproduce.fit_dir(name, scale, r, variant)) for n, r in runs.items()}


def paired_lines(name: str, scale: str, recipe: dict) -> list[str]:
    runs, fits = _fits(name, scale, recipe)
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


def answer_lines(name: str, scale: str, recipe: dict) -> list[str]:
    """One sentence per (ANSWER_PAIRS x ANSWER_KEYS): A's mean vs B's, the median paired difference, p, n
    and the verdict at ALPHA."""
    runs, fits = _fits(name, scale, recipe)
    lines = [f"## Does training through the fit lower the mesh error? (Wilcoxon, alpha {ALPHA})", ""]
    for a, b in ANSWER_PAIRS:
        if fits.get(a) is None or fits.get(b) is None:
            lines.append(f"- {a} vs {b}: not fitted")
            continue
        for key, label in ANSWER_KEYS:
            ma, mb, med, p, n = paired_test(fits[a], fits[b], key)
            lines.append(f"- {label}: {runs[a].get('label', a)} {ma:.2f} mm vs {runs[b].get('label', b)} "
                         f"{mb:.2f} mm (median paired difference {med:+.2f} mm, p = {p:.3g}, {n} images): "
                         f"**{verdict(ma, mb, p)}**")
    return lines + [""]


def image_confidence_lines(name: str, scale: str, recipe: dict) -> list[str]:
    """Markdown: per run, Spearman rho of the per-image mean C and MVE face / head over the test images."""
    runs, fits = _fits(name, scale, recipe)
    lines = ["Do the confidences know the mesh error? Spearman rho over the test images of the image's mean",
             "confidence C and its fitted MVE (negative: more confident images have lower mesh error).", "",
             "| run | rho(C, MVE face) | rho(C, MVE head) | images |", "| --- | --- | --- | --- |"]
    for n, run in runs.items():
        if fits.get(n) is None:
            continue
        face, k = confidence_error_corr(fits[n], "mve_face_mm")
        head, _ = confidence_error_corr(fits[n], "mve_head_mm")
        lines.append(f"| {run.get('label', n)} | {face:.3f} | {head:.3f} | {k} |")
    return lines + [""]


def write(name: str, scale: str, recipe: dict, timings: dict[str, float], command: str) -> Path:
    """Generic table + the answer + confidences + the paired tests (write_report's signature)."""
    report = reproduce.write_report(name, scale, recipe, timings, command)
    lines = ["", *answer_lines(name, scale, recipe), *confidence_lines(name, scale, recipe),
             *image_confidence_lines(name, scale, recipe), *paired_lines(name, scale, recipe)]
    report.write_text(report.read_text() + "\n".join(lines))
    return report
