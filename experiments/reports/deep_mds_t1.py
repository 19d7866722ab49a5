"""Report of the Deep-MDS Table 1 recipe: the generic table (experiments.reproduce.write_report) plus
the paper's Wilcoxon signed-rank tests vs Deep-MDS over 10 random subsets of 500 test faces.

Per-face errors come from each run's `<run_dir>/test_errors.npz` (written by
lightning_modules.lifting_base.LiftingModule at the end of testing; `index` (N,) identifies the face,
so runs are paired on the same faces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.reproduce import run_dir, write_report
from lightning_modules.metrics.shape3d import depth_corr_from_depths, wilcoxon_over_subsets

N_SUBSETS, SUBSET_SIZE = 10, 500


def load_errors(run_dir: Path) -> dict[str, np.ndarray] | None:
    """{'index', 'mse_procrustes', 'gte', ...} -> (N,) and 'z_pred', 'z_gt' -> (N, 68), sorted by face
    index; 'depth' (N, 2, 68) stacks z_pred and z_gt (for DepthCorr of subsets). None without a file."""
    f = run_dir / "test_errors.npz"
    if not f.is_file():
        return None
    with np.load(f) as d:
        order = np.argsort(d["index"], kind="stable")
        out = {k: d[k][order] for k in d.files}
    if "z_pred" in out and "z_gt" in out:
        out["depth"] = np.stack([out["z_pred"], out["z_gt"]], 1)
    return out


def subset_depth_corr(depth: np.ndarray) -> float:
    """DepthCorr of a subset from its stacked (n, 2, 68) predicted / GT normalised depths."""
    return depth_corr_from_depths(depth[:, 0], depth[:, 1])


def wilcoxon_rows(runs: list[dict], dirs: dict[str, Path]) -> list[str]:
    """Markdown rows: each run vs the Deep-MDS run of the same projection (name suffix)."""
    lines = []
    for run in runs:
        if run["name"].startswith("deep_mds"):
            continue
        suffix = run["name"].rsplit("_", 1)[-1]
        ref = next((r for r in runs if r["name"] == f"deep_mds_{suffix}"), None)
        a = load_errors(dirs[run["name"]])
        b = load_errors(dirs[ref["name"]]) if ref else None
        if a is None or b is None or not np.array_equal(a["index"], b["index"]):
            lines.append(f"| {run.get('label', run['name'])} | - | - | - | - | (no paired test_errors.npz) |")
            continue
        n = a["index"].shape[0]
        size = min(SUBSET_SIZE, n)
        cells = [run.get("label", run["name"])]
        for key, stat in (("mse_procrustes", None), ("depth", subset_depth_corr)):
            if key not in a or key not in b:
                cells += ["-", "-"]
                continue
            res = wilcoxon_over_subsets(a[key], b[key], n_subsets=N_SUBSETS, subset_size=size, seed=0, stat=stat)
            cells += [f"{res['means_a'].mean():.4g} vs {res['means_b'].mean():.4g}", f"{res['pvalue']:.2g}"]
        cells.append(f"{N_SUBSETS} x {size} of {n} faces")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def ranking(runs: list[dict], dirs: dict[str, Path], key: str = "mse_procrustes") -> list[str]:
    """Run labels sorted by the mean per-face `key` (lower is better); runs without errors are left out."""
    means = []
    for run in runs:
        e = load_errors(dirs[run["name"]])
        if e is not None:
            means.append((float(e[key].mean()), run.get("label", run["name"])))
    return [f"{label} ({m:.3g})" for m, label in sorted(means)]


def per_yaw_rows(runs: list[dict], dirs: dict[str, Path]) -> tuple[list[float], list[str]]:
    """Markdown rows: each run's mean MSE after Procrustes per input yaw (test_errors.npz key `yaw`)."""
    errs = {r["name"]: load_errors(dirs[r["name"]]) for r in runs}
    yaws = sorted({float(y) for e in errs.values() if e is not None and "yaw" in e for y in np.unique(e["yaw"])})
    lines = []
    for run in runs:
        e = errs[run["name"]]
        if e is None or "yaw" not in e:
            continue
        cells = [f"{e['mse_procrustes'][e['yaw'] == y].mean():.3g}" if (e["yaw"] == y).any() else "-" for y in yaws]
        lines.append(f"| {run.get('label', run['name'])} | " + " | ".join(cells) + " |")
    return yaws, lines


def _per_yaw_section(runs: list[dict], dirs: dict[str, Path]) -> list[str]:
    yaws, rows = per_yaw_rows(runs, dirs)
    if not rows:
        return []
    return ["## MSE after Procrustes per input yaw", "",
            "| run | " + " | ".join(f"yaw {y:+.0f}" for y in yaws) + " |",
            "| --- | " + " | ".join("---" for _ in yaws) + " |", *rows, ""]


def write(name: str, scale: str, recipe: dict, timings: dict[str, float], command: str) -> Path:
    """Generic table + Wilcoxon tests. ``timings`` arrive merged with the saved ones
    (experiments.reproduce.saved_timings)."""

    dirs = {r["name"]: run_dir(name, scale, r) for r in recipe["runs"]}
    report = write_report(name, scale, recipe, timings, command)
    lines = ["## Wilcoxon signed-rank test vs Deep-MDS (same projection)", "",
             f"Means over {N_SUBSETS} random subsets of {SUBSET_SIZE} test faces (paired: the same faces for both",
             "methods), scipy.stats.wilcoxon on the 10 subset means. Paper: p = 8.8e-5 for every pair (the",
             "smallest p a two-sided exact test on 10 pairs can give is 2/1024 = 2.0e-3; the paper's value is",
             "the normal approximation).", "",
             "| method | MSE after Procrustes (method vs Deep-MDS) | p | DepthCorr (method vs Deep-MDS) | p | subsets |",
             "| --- | --- | --- | --- | --- | --- |", *wilcoxon_rows(recipe["runs"], dirs), "",
             *_per_yaw_section(recipe["runs"], dirs),
             "## Reading the table", "",
             "- Ranking by MSE after Procrustes (lower is better): " + ", ".join(ranking(recipe["runs"], dirs)) + ".",
             "- DepthCorr (Moniz et al. 2018, which Deep-MDS cites): over the test faces, the correlation across",
             "  faces of each landmark's predicted and GT depth (centred per face, / GT outer-eye distance),",
             "  absolute value, summed over the 68 landmarks: at most 68 (the paper's 72-landmark BFM set: 72).",
             f"- Total time: {sum(timings.values()) / 60:.1f} min for {len(timings)} runs." if timings else "", ""]
    report.write_text(report.read_text() + "\n" + "\n".join(lines))
    return report
