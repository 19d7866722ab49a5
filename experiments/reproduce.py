"""Reproduce a paper's table: run its recipe, then write the report beside the paper's numbers.

    make reproduce TABLE=thesis_t41 SCALE=quick     # == python -m experiments.reproduce thesis_t41 --scale quick
    python -m experiments.reproduce --list
    python -m experiments.reproduce thesis_t41 --report-only   # re-write the report from finished runs

A recipe (experiments/recipes/<name>.yaml) lists the runs (Hydra overrides), the metrics to report with
their column names, the paper's numbers, and the overrides of each scale (`quick`: a 2-core CPU in tens
of minutes; `full`: the paper's schedule). Runs go to logs/reproduce/<name>/<scale>/<run>/ and resume
when the command is repeated; the report goes to docs/reproduce/<name>_<scale>.md with a bar chart.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import yaml

from experiments.harness.resolvers import REPO_ROOT

RECIPES = Path(__file__).resolve().parent / "recipes"


def load_recipe(name: str) -> dict:
    path = RECIPES / f"{name}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no recipe {path}; available: {available()}")
    recipe = yaml.safe_load(path.read_text())
    for key in ("title", "runs", "metrics", "scales"):
        if key not in recipe:
            raise ValueError(f"{path}: missing key '{key}'")
    return recipe


def available() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.yaml"))


def run_dir(name: str, scale: str, run: dict) -> Path:
    return REPO_ROOT / "logs" / "reproduce" / name / scale / run["name"]


def train_command(name: str, scale: str, recipe: dict, run: dict) -> list[str]:
    overrides = [*run["overrides"], *recipe["scales"][scale], f"task_name=reproduce_{name}",
                 f"hydra.run.dir={run_dir(name, scale, run)}"]
    if not any(o.startswith("schedule=") for o in overrides):
        overrides.append("schedule=paper" if scale == "full" else "schedule=cpu")
    return [sys.executable, "-m", recipe.get("entry_point", "experiments.train"), *overrides]


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

    out_dir = REPO_ROOT / "docs" / "reproduce"
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, str] = recipe["metrics"]
    rows = []
    for run in recipe["runs"]:
        got = last_metrics(run_dir(name, scale, run))
        rows.append((run, {label: got.get(key) for key, label in metrics.items()}))

    lines = [f"# {recipe['title']} ({scale} scale)", ""]
    lines += [recipe.get("description", "").strip(), ""] if recipe.get("description") else []
    lines += [f"- command: `{command}`", f"- date: {dt.date.today().isoformat()}",
              f"- scale `{scale}` overrides: `{' '.join(recipe['scales'][scale]) or '(none)'}`", ""]
    if scale != "full":
        lines += ["Quick scale: small data, few epochs, small images on a CPU. Compare the ranking and the",
                  "trends with the paper, not the absolute numbers (the paper trains for the full schedule on",
                  "the real dataset).", ""]
    header = ["run", *[f"{label} (ours)" for label in metrics.values()],
              *[f"{label} (paper)" for label in metrics.values()], "minutes"]
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for run, ours in rows:
        paper = run.get("paper", {}) or {}
        cells = [run.get("label", run["name"])]
        cells += ["-" if ours[lbl] is None else f"{ours[lbl]:.4g}" for lbl in metrics.values()]
        cells += [str(paper.get(lbl, "-")) for lbl in metrics.values()]
        cells.append(f"{timings.get(run['name'], float('nan')) / 60:.1f}" if run["name"] in timings else "-")
        lines.append("| " + " | ".join(cells) + " |")

    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, label in zip(axes[0], metrics.values(), strict=True):
        names = [r.get("label", r["name"]) for r, _ in rows]
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
    lines += ["", f"![{recipe['title']}]({png.name})", ""]
    report = out_dir / f"{name}_{scale}.md"
    report.write_text("\n".join(lines))
    return report


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
        print(f"{recipe['title']}: quick scale, {len(recipe['runs'])} runs; expect "
              f"{recipe.get('quick_minutes', 'tens of')} minutes on a 2-core CPU.", flush=True)
    timings: dict[str, float] = {}
    if not args.report_only:
        for run in recipe["runs"]:
            cmd = train_command(args.table, args.scale, recipe, run)
            print("$", " ".join(cmd), flush=True)
            start = time.time()
            code = subprocess.call(cmd, cwd=REPO_ROOT)
            timings[run["name"]] = time.time() - start
            if code != 0:
                print(f"run {run['name']} failed (exit {code}); rerun the same command to resume", file=sys.stderr)
                return code
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
