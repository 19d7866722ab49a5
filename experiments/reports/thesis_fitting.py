"""Report of the thesis fitting recipes (Tables 4.4 and 4.6): the generic table
(experiments.reproduce.write_report) plus what the table alone does not say:

- the confidences each network gave (the fitting weights C = 1 - sigma): the test MLME beside the mean
  predicted sigma and their correlation over landmarks (``test/sigma_px``, ``test/sigma_error_corr``
  from the training run's CSV log) and the mean C over the fitted images;
- per fit variant paired on the same test images (``per_image.csv``): MVE face / head with the
  confidences vs with unit weights (variants named ``<x>`` and ``<x>_noconf``), and the ranking of the
  variants by MVE face.

Recipes use it with ``report: experiments.reports.thesis_fitting:write``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from experiments import reproduce


def per_image(fit_dir: Path) -> dict[int, dict[str, float]] | None:
    """index -> the numeric columns of a valid image in ``<fit_dir>/per_image.csv``; None without a fit."""
    f = fit_dir / "per_image.csv"
    if not f.is_file():
        return None
    out: dict[int, dict[str, float]] = {}
    with f.open() as fh:
        for row in csv.DictReader(fh):
            if row.get("valid") != "true":
                continue
            vals = {}
            for k, v in row.items():
                try:
                    vals[k] = float(v)
                except (TypeError, ValueError):
                    pass
            out[int(row["index"])] = vals
    return out


def paired_difference(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], key: str
                      ) -> tuple[float, float, int]:
    """(mean of a, mean of b, n) of ``key`` over the images valid in both fits (nan, nan, 0 if none)."""
    common = sorted(set(a) & set(b))
    if not common:
        return float("nan"), float("nan"), 0
    x = np.array([a[i][key] for i in common])
    y = np.array([b[i][key] for i in common])
    return float(x.mean()), float(y.mean()), len(common)


def confidence_lines(name: str, scale: str, recipe: dict) -> list[str]:
    """Markdown table: per run, MLME vs mean predicted sigma (px), their correlation, mean C fitted."""
    lines = ["## The confidences used as fitting weights", "",
             "C = 1 - sigma (sigma in crop units, clipped to [0, 1]); an informative sigma is near the error",
             "and correlates with it. Landmarks with C <= 1e-6 are dropped by the fitter; an image with fewer",
             "than 6 usable landmarks is not fitted (counted as invalid).", "",
             "| run | test MLME (px) | mean sigma (px) | corr(sigma, error) | mean C (fitted images) |",
             "| --- | --- | --- | --- | --- |"]
    variants = reproduce.fit_variants(recipe)
    for run in reproduce.runs_at(recipe, scale):
        got = reproduce.last_metrics(reproduce.run_dir(name, scale, run))
        conf = [reproduce.fit_metrics(reproduce.fit_dir(name, scale, run, v)).get("test/confidence_mean")
                for v in variants if not v["name"].endswith("_noconf")]
        conf = [c for c in conf if c is not None]

        def fmt(x: float | None) -> str:
            return "-" if x is None else f"{x:.3g}"

        lines.append(f"| {run.get('label', run['name'])} | {fmt(got.get('test/mlme'))} | "
                     f"{fmt(got.get('test/sigma_px'))} | {fmt(got.get('test/sigma_error_corr'))} | "
                     f"{fmt(float(np.mean(conf)) if conf else None)} |")
    return lines + [""]


def paired_lines(name: str, scale: str, recipe: dict) -> list[str]:
    """Markdown: with vs without confidences, paired per image, for every ``<x>`` / ``<x>_noconf`` pair."""
    variants = {v["name"]: v for v in reproduce.fit_variants(recipe)}
    pairs = [(n, f"{n}_noconf") for n in variants if f"{n}_noconf" in variants]
    if not pairs:
        return []
    lines = ["## Confidences vs unit weights (paired on the same test images)", "",
             "| run | landmarks | MVE face, C (mm) | MVE face, C = 1 (mm) | MVE head, C (mm) | "
             "MVE head, C = 1 (mm) | images |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in reproduce.runs_at(recipe, scale):
        for with_c, without in pairs:
            a = per_image(reproduce.fit_dir(name, scale, run, variants[with_c]))
            b = per_image(reproduce.fit_dir(name, scale, run, variants[without]))
            if a is None or b is None:
                continue
            fa, fb, n = paired_difference(a, b, "mve_face_mm")
            ha, hb, _ = paired_difference(a, b, "mve_head_mm")
            lines.append(f"| {run.get('label', run['name'])} | {variants[with_c].get('label', with_c)} | "
                         f"{fa:.2f} | {fb:.2f} | {ha:.2f} | {hb:.2f} | {n} |")
    return lines + [""]


def ranking_line(name: str, scale: str, recipe: dict, key: str = "test/mve_face_mm") -> list[str]:
    """The rows ranked by ``key`` (lower is better)."""
    ranked = sorted((got[key], row["label"]) for row, got in reproduce.report_rows(name, scale, recipe)
                    if got.get(key) is not None and np.isfinite(got[key]))  # nan: no valid fit
    if not ranked:
        return []
    return [f"Ranking by {recipe['metrics'].get(key, key)} (lower is better): "
            + ", ".join(f"{label} ({v:.2f})" for v, label in ranked) + ".", ""]


def write(name: str, scale: str, recipe: dict, timings: dict[str, float], command: str) -> Path:
    """Generic table + confidences + paired comparisons (write_report's signature)."""
    report = reproduce.write_report(name, scale, recipe, timings, command)
    lines = ["", *ranking_line(name, scale, recipe), *confidence_lines(name, scale, recipe),
             *paired_lines(name, scale, recipe)]
    report.write_text(report.read_text() + "\n".join(lines))
    return report
