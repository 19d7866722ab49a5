"""Reproduce a paper's table: run its recipe, then write the report beside the paper's numbers.

    make reproduce TABLE=thesis_t41 SCALE=quick     # == python -m experiments.reproduce thesis_t41 --scale quick
    python -m experiments.reproduce --list
    python -m experiments.reproduce thesis_t41 --report-only   # re-write the report from finished runs

A recipe (experiments/recipes/<name>.yaml) lists the runs (Hydra overrides), the metrics to report with
their column names, the paper's numbers, and the overrides of each scale (`quick`: a 2-core CPU in tens
of minutes; `full`: the paper's schedule). Runs go to logs/reproduce/<name>/<scale>/<run>/ and resume
when the command is repeated; the report goes to docs/reproduce/<name>_<scale>.md with a bar chart.

A recipe may add a fitting stage (thesis Tables 4.4 / 4.6): after a run trained, `python -m experiments.fit`
fits FLAME to the landmarks its best checkpoint predicts on the test split of the run's own data::

    fit:
      overrides: [split=test, write_meshes=4]        # every fit (experiments.fit / configs/fit.yaml keys)
      scales: {quick: [fitting.config.nonrigid_iterations=20], full: []}
      variants:                                      # optional; default: one fit named "fit"
        - {name: face805, label: "805", overrides: [fitting.landmark_set=face805], paper: {MVE face (mm): 7.5}}

Each fit writes <run_dir>/fit/<variant>/ (meshes, per_image.csv, summary.json, fit_metrics.json); a fit
whose fit_metrics.json is newer than the checkpoint is skipped on a rerun. The report merges a run's
CSV metrics with its fit's metrics (`test/mve_face_mm`, `test/mve_head_mm`, `test/mrle_px`,
`test/time_fit_s_per_image`, ...); with several variants each (run, variant) is one row.
`reference_rows: [{label: DECA, paper: {...}}]` adds rows of published numbers without runs.
A run's `scale_overrides: {quick: [...], full: [...]}` come after its `overrides` at that scale (a
fine-tuning run's own schedule).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from experiments import experiment_files
from experiments.checkpoints import read_checkpoint
from experiments.harness.resolvers import REPO_ROOT

RECIPES = experiment_files.folder("recipe")
LOGS = REPO_ROOT / "logs" / "reproduce"  # <LOGS>/<name>/<scale>/<run>/
DOCS = REPO_ROOT / "docs" / "reproduce"  # <DOCS>/<name>_<scale>.md|png


def load_recipe(name: str) -> dict:
    """experiments/recipes/<name>.yaml, validated (experiments/experiment_files.py)."""
    return experiment_files.load("recipe", name)


def available() -> list[str]:
    return experiment_files.names("recipe")


def run_dir(name: str, scale: str, run: dict) -> Path:
    return LOGS / name / scale / run["name"]


def train_command(name: str, scale: str, recipe: dict, run: dict) -> list[str]:
    # the scale's overrides first, then the run's: the more specific setting wins (e.g. one run's lr)
    overrides = [*recipe["scales"][scale], *run["overrides"], *(run.get("scale_overrides") or {}).get(scale, []),
                 f"task_name=reproduce_{name}",
                 f"hydra.run.dir={run_dir(name, scale, run)}"]
    if not any(o.startswith("schedule=") for o in overrides):
        overrides.append("schedule=paper" if scale == "full" else "schedule=cpu")
    return [sys.executable, "-m", recipe.get("entry_point", "experiments.train"), *overrides]


def runs_at(recipe: dict, scale: str) -> list[dict]:
    """The runs made at ``scale``: a run with ``scales: [full]`` is left out at the quick scale (its row
    still shows the paper's numbers)."""
    return [r for r in recipe["runs"] if scale in r.get("scales", (scale,))]


def fit_variants(recipe: dict) -> list[dict]:
    """The fits every run gets: ``recipe['fit']['variants']``, default one named 'fit'; [] without ``fit``."""
    fit = recipe.get("fit")
    if not fit:
        return []
    variants = fit.get("variants") or [{"name": "fit"}]
    for v in variants:
        if "name" not in v:
            raise ValueError(f"recipe '{recipe.get('title')}': a fit variant has no 'name': {v}")
    return variants


def fit_dir(name: str, scale: str, run: dict, variant: dict) -> Path:
    return run_dir(name, scale, run) / "fit" / variant["name"]


def best_checkpoint(directory: Path) -> Path | None:
    """The run's best checkpoint (newest ``checkpoints/best-*.ckpt``), else ``last.ckpt``, else None."""
    ckpts = directory / "checkpoints"
    best = sorted(ckpts.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = ckpts / "last.ckpt"
    return last if last.is_file() else None


def fit_command(name: str, scale: str, recipe: dict, run: dict, variant: dict, ckpt: Path | str) -> list[str]:
    """``python -m experiments.fit`` on the test split of the run's own data with the given checkpoint."""
    fit = recipe.get("fit") or {}
    overrides = [f"ckpt_path={ckpt}", "data_from_run=true", "split=test", *fit.get("overrides", []),
                 *(fit.get("scales") or {}).get(scale, []), *run.get("fit_overrides", []),
                 *variant.get("overrides", []), f"task_name=reproduce_{name}_fit",
                 f"hydra.run.dir={fit_dir(name, scale, run, variant)}"]
    return [sys.executable, "-m", "experiments.fit", *overrides]


def fit_metrics(directory: Path) -> dict[str, float]:
    """A finished fit's ``fit_metrics.json`` ({} when the fit has not run)."""
    f = directory / "fit_metrics.json"
    return {k: float(v) for k, v in json.loads(f.read_text()).items()} if f.is_file() else {}


def fit_is_done(directory: Path, ckpt: Path) -> bool:
    """True when ``directory`` holds a finished fit made from ``ckpt`` as it is now (not an older one)."""
    f = directory / "fit_metrics.json"
    return f.is_file() and f.stat().st_mtime >= ckpt.stat().st_mtime


def report_rows(name: str, scale: str, recipe: dict) -> list[tuple[dict, dict[str, float]]]:
    """(row, metrics) per table row: a run (its CSV metrics + its fit's), or one per (run, fit variant)
    when the recipe has several variants, then the recipe's ``reference_rows`` (no metrics).

    A row dict has ``name`` (the run's, for timings), ``label`` and ``paper``.
    """
    variants = fit_variants(recipe)
    rows: list[tuple[dict, dict[str, float]]] = []
    made = [r["name"] for r in runs_at(recipe, scale)]
    for run in recipe["runs"]:
        if run["name"] not in made:
            rows.append(({"name": run["name"], "label": f"{run.get('label', run['name'])} (not run at {scale} scale)",
                          "paper": run.get("paper") or {}}, {}))
            continue
        trained = last_metrics(run_dir(name, scale, run))
        if len(variants) <= 1:
            got = {**trained, **(fit_metrics(fit_dir(name, scale, run, variants[0])) if variants else {})}
            rows.append(({"name": run["name"], "label": run.get("label", run["name"]),
                          "paper": run.get("paper") or {}}, got))
            continue
        for v in variants:
            label = v.get("label", v["name"])
            if len(recipe["runs"]) > 1:
                label = f"{run.get('label', run['name'])}, {label}"
            paper = {**(run.get("paper") or {}), **(v.get("paper") or {})}
            rows.append(({"name": run["name"], "label": label, "paper": paper},
                         {**trained, **fit_metrics(fit_dir(name, scale, run, v))}))
    for ref in recipe.get("reference_rows") or []:
        rows.append(({"name": None, "label": ref["label"], "paper": ref.get("paper") or {}}, {}))
    return rows


def last_metrics(directory: Path) -> dict[str, float]:
    """Last logged value of every metric in the run's CSV log(s)."""
    import csv

    out: dict[str, float] = {}
    for f in sorted(directory.rglob("metrics.csv")):
        with open(f) as fh:
            for row in csv.DictReader(fh):
                for k, v in row.items():
                    if v not in ("", None):
                        try:
                            out[k] = float(v)
                        except ValueError:
                            pass
    return out


def write_report(name: str, scale: str, recipe: dict, timings: dict[str, float], command: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = DOCS
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, str] = recipe["metrics"]
    rows = [(row, {label: got.get(key) for key, label in metrics.items()})
            for row, got in report_rows(name, scale, recipe)]

    lines = [f"# {recipe['title']} ({scale} scale)", ""]
    lines += [recipe.get("description", "").strip(), ""] if recipe.get("description") else []
    lines += [f"- command: `{command}`", f"- date: {dt.date.today().isoformat()}",
              f"- scale `{scale}` overrides: `{' '.join(recipe['scales'][scale]) or '(none)'}`"]
    if recipe.get("fit"):
        fit = recipe["fit"]
        fit_args = [*fit.get("overrides", []), *(fit.get("scales") or {}).get(scale, [])]
        lines += [f"- fitting (`python -m experiments.fit` with each run's best checkpoint, test split): "
                  f"`{' '.join(fit_args) or '(defaults)'}`"]
    lines += [""]
    if scale != "full":
        lines += ["Quick scale: small data, few epochs, small images on a CPU. Compare the ranking and the",
                  "trends with the paper, not the absolute numbers (the paper trains for the full schedule on",
                  "the real dataset).", ""]
    with_paper = [lbl for lbl in metrics.values() if any(lbl in (r.get("paper") or {}) for r, _ in rows)]
    header = ["run", *[f"{label} (ours)" for label in metrics.values()],
              *[f"{label} (paper)" for label in with_paper], "minutes"]  # paper columns: those it reports
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run, ours in rows:
        paper = run.get("paper", {}) or {}
        cells = [run.get("label", run["name"])]
        cells += ["-" if ours[lbl] is None else f"{ours[lbl]:.4g}" for lbl in metrics.values()]
        cells += [str(paper.get(lbl, "-")) for lbl in with_paper]
        cells.append(f"{timings[run['name']] / 60:.1f}" if run["name"] in timings else "-")
        lines.append("| " + " | ".join(cells) + " |")

    plotted = [metrics[k] for k in recipe.get("plot_metrics") or metrics]  # the chart's panels (metric keys)
    fig, axes = plt.subplots(1, len(plotted), figsize=(5 * len(plotted), 3.5), squeeze=False)
    for ax, label in zip(axes[0], plotted, strict=True):
        names = [r["label"] for r, _ in rows]
        ours = [o[label] if o[label] is not None else 0.0 for _, o in rows]
        paper = [(r.get("paper") or {}).get(label) for r, _ in rows]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], ours, width=0.4, label="ours")
        if any(p is not None for p in paper):
            ax.bar([i + 0.2 for i in x], [p or 0.0 for p in paper], width=0.4, label="paper")
        ax.set_xticks(list(x))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(label)
        ax.legend()
    fig.tight_layout()
    png = out_dir / f"{name}_{scale}.png"
    fig.savefig(png, dpi=90)
    plt.close(fig)
    if recipe.get("notes"):
        lines += ["", str(recipe["notes"]).strip()]
    lines += ["", f"![{recipe['title']}]({png.name})", ""]
    report = out_dir / f"{name}_{scale}.md"
    report.write_text("\n".join(lines))
    return report


def trained_steps(ckpt: Path) -> int | None:
    """``global_step`` stored in a Lightning checkpoint; None when the file is missing or has none."""
    if not ckpt.is_file():
        return None
    step = read_checkpoint(ckpt, mmap=True).get("global_step")
    return None if step is None else int(step)


def run_fits(name: str, scale: str, recipe: dict, run: dict, timings: dict[str, float]) -> int:
    """Fit every variant of ``recipe['fit']`` with the run's best checkpoint; skips finished fits."""
    variants = fit_variants(recipe)
    if not variants:
        return 0
    ckpt = best_checkpoint(run_dir(name, scale, run))
    if ckpt is None:
        print(f"run {run['name']}: no checkpoint under {run_dir(name, scale, run) / 'checkpoints'}; "
              "cannot fit", file=sys.stderr)
        return 1
    for variant in variants:
        out = fit_dir(name, scale, run, variant)
        if fit_is_done(out, ckpt):
            print(f"fit {run['name']}/{variant['name']}: done ({out / 'fit_metrics.json'}), skipped", flush=True)
            continue
        cmd = fit_command(name, scale, recipe, run, variant, ckpt)
        print("$", " ".join(cmd), flush=True)
        start = time.time()
        code = subprocess.call(cmd, cwd=REPO_ROOT)
        timings[f"{run['name']}/fit/{variant['name']}"] = time.time() - start
        if code != 0:
            print(f"fit {run['name']}/{variant['name']} failed (exit {code}); rerun the same command",
                  file=sys.stderr)
            return code
    return 0


def run_recipe(name: str, scale: str, recipe: dict, timings: dict[str, float]) -> int:
    """Train every run (resuming / skipping finished ones), then its fits; fills ``timings`` (seconds).

    A run whose last checkpoint holds the same number of optimizer steps before and after (it had
    finished before) keeps no new timing, so the saved one (timings.json) stays. Returns the first non-zero exit code, else 0.
    """
    for run in runs_at(recipe, scale):
        cmd = train_command(name, scale, recipe, run)
        last = run_dir(name, scale, run) / "checkpoints" / "last.ckpt"
        before = trained_steps(last)
        print("$", " ".join(cmd), flush=True)
        start = time.time()
        code = subprocess.call(cmd, cwd=REPO_ROOT)
        if before is None or trained_steps(last) != before:
            timings[run["name"]] = time.time() - start
        if code != 0:
            print(f"run {run['name']} failed (exit {code}); rerun the same command to resume", file=sys.stderr)
            return code
        code = run_fits(name, scale, recipe, run, timings)
        if code != 0:
            return code
    return 0


def saved_timings(name: str, scale: str, recipe: dict, timings: dict[str, float]) -> dict[str, float]:
    """``timings`` merged over <logs>/<name>/<scale>/timings.json (written back), so that a rerun or
    ``--report-only`` keeps the minutes of runs that were not redone."""
    tfile = run_dir(name, scale, recipe["runs"][0]).parent / "timings.json"
    saved = json.loads(tfile.read_text()) if tfile.is_file() else {}
    merged = {**saved, **timings}
    if merged:
        tfile.parent.mkdir(parents=True, exist_ok=True)
        tfile.write_text(json.dumps(merged, indent=1))
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", nargs="?")
    parser.add_argument("--scale", default="quick", choices=["quick", "full"])
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if args.list or not args.table:
        for n in available():
            print(f"  {n:<20} {load_recipe(n)['title']}")
        return 0
    recipe = load_recipe(args.table)
    command = f"make reproduce TABLE={args.table} SCALE={args.scale}"
    if args.scale == "quick":
        print(f"{recipe['title']}: quick scale, {len(runs_at(recipe, 'quick'))} runs; expect "
              f"{recipe.get('quick_minutes', 'tens of')} minutes on a 2-core CPU.", flush=True)
    timings: dict[str, float] = {}
    if not args.report_only:
        code = run_recipe(args.table, args.scale, recipe, timings)
        if code != 0:
            return code
    timings = saved_timings(args.table, args.scale, recipe, timings)
    if recipe.get("report"):  # a custom writer "package.module:function" with write_report's signature
        import importlib

        module, _, func = str(recipe["report"]).partition(":")
        report = getattr(importlib.import_module(module), func)(args.table, args.scale, recipe, timings, command)
    else:
        report = write_report(args.table, args.scale, recipe, timings, command)
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
