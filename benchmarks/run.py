"""Run the benchmarks and write BENCHMARKS.md.

    python -m benchmarks.run              # every benchmarks/bench_*.py, then BENCHMARKS.md
    python -m benchmarks.run --only render  # one benchmark; its JSON line is printed last
    python -m benchmarks.run --threads 1    # OMP/MKL threads of every benchmark process (shared machine)

Each benchmark module prints its figures as one JSON line last (medians with spread). This runner
records the date, the machine and the exact command beside the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from benchmarks.common import replace_section

ROOT = Path(__file__).resolve().parents[1]


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py"))


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, torch {torch.__version__}"


def run_one(name: str, threads: int = 0) -> dict:
    cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"]
    env = dict(os.environ)
    if threads > 0:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    sys.stderr.write(proc.stderr[-2000:])
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"bench": name, "error": f"exit {proc.returncode}", "tail": proc.stdout[-500:] + proc.stderr[-500:]}
    result = json.loads(lines[-1])
    result["command"] = (f"OMP_NUM_THREADS={threads} " if threads > 0 else "") + f"python -m benchmarks.bench_{name}"
    return result


# What each benchmark measures only on CUDA (named in BENCHMARKS.md when no GPU is present).
CUDA_ONLY = [
    "train: 256 px, batch 32, bf16 autocast + channels_last step rates (the CPU run uses 64 px, fp32)",
    "inference: bf16 + channels_last (+ torch.compile with --compile) and batch 256",
    "fitting: batch 1024 on the GPU",
]


def run_notes(threads: int) -> list[str]:
    """Header lines: thread setting, and which figures are unmeasured without a GPU."""
    import torch

    out = []
    if threads > 0:
        out.append(f"- threads: every benchmark ran with OMP_NUM_THREADS={threads} (`--threads {threads}`)")
    if not torch.cuda.is_available():
        out.append("- **No GPU was available for this run.** Unmeasured CUDA targets:")
        out += [f"  - {t}" for t in CUDA_ONLY]
    return out + ([""] if out else [])


def profile_lines(results: list[dict]) -> list[str]:
    """The train benchmark's torch.profiler top ops as a table (what bounds the step)."""
    train = next((r for r in results if r.get("bench") == "train" and r.get("profile_top_ops")), None)
    if train is None:
        return []
    out = [
        f"## What bounds the training step ({train.get('profile_model')}, {train.get('device')}, "
        f"{train.get('image_size')} px, batch {train.get('batch_size')})",
        "",
        "torch.profiler, self time per step of the top ops:",
        "",
        "| op | self ms / step | share of all self time |",
        "| --- | --- | --- |",
    ]
    out += [f"| `{o['op']}` | {o['self_ms_per_step']} | {o['share_pct']} % |" for o in train["profile_top_ops"]]
    phases = train.get("profile_phase_pct")
    if phases:
        out += ["", "Share of the step by phase: " + ", ".join(f"{k} {v} %" for k, v in phases.items()) + "."]
    return out + [""]


def loader_vs_step(results: list[dict]) -> list[str]:
    """Markdown lines comparing the data loader's rate (bench loader, figure `samples_per_s`) with
    the training-step rate of each model (bench train, `images_per_s` medians); [] if either is missing."""
    by = {r.get("bench"): r for r in results if "error" not in r}
    loader, train = by.get("loader"), by.get("train")
    if not loader or not train or "samples_per_s" not in loader or not train.get("images_per_s"):
        return []
    rate = float(loader["samples_per_s"])
    out = [
        "## Data loader vs training step",
        "",
        f"Loader figure: `loader.samples_per_s` = {rate} samples/s ({loader.get('workers')} workers, "
        f"{loader.get('image_size')} px); step figures: `train.images_per_s` (medians, "
        f"{train.get('image_size')} px, batch {train.get('batch_size')}, {train.get('device')}). "
        "A ratio >= 1 means the loader keeps up with the step.",
        "",
        "| model | step images/s | loader / step | loader keeps up |",
        "| --- | --- | --- | --- |",
    ]
    for model, fig in train["images_per_s"].items():
        step = float(fig["median"] if isinstance(fig, dict) else fig)
        ratio = rate / step if step > 0 else float("inf")
        out.append(f"| {model} | {step} | {ratio:.2f} | {'yes' if ratio >= 1 else 'no'} |")
    if loader.get("image_size") != train.get("image_size"):
        out.append("")
        out.append(f"Note: the loader runs at {loader.get('image_size')} px and the step at "
                   f"{train.get('image_size')} px here, so the ratio is only indicative.")
    out.append("")
    return out


def section(r: dict) -> list[str]:
    """One benchmark's BENCHMARKS.md section: its own `markdown_section(result, command)` when the
    module has one (profile tables, verdict), else the figure table."""
    name, command = r.get("bench"), r.get("command", "")
    if "error" not in r:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        if hasattr(module, "markdown_section"):
            figures = {k: v for k, v in r.items() if k != "command"}
            try:
                return [*module.markdown_section(figures, command), ""]
            except KeyError:  # a partial result (e.g. a smoke run) lacks the profile: plain table
                pass
    out = [f"## {name}", "", f"`{command}`", "", "| figure | value |", "| --- | --- |"]
    out += [f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |" for k, v in r.items()
            if k not in ("bench", "command")]
    return out + [""]


def write_markdown(results: list[dict], path: Path, notes: list[str] | None = None) -> None:
    out = [
        "# Benchmarks",
        "",
        f"- date: {dt.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine()}",
        "- command: `make bench` (one: `make bench BENCH=<name>`)",
        "",
        "Figures are medians over repeats with [p10, p90] spread. Ratios are measured side by side in the same",
        "run; absolute times are only meaningful on the machine named above.",
        "",
        *(notes or []),
    ]
    for r in results:
        out += section(r)
    out += loader_vs_step(results)
    out += profile_lines(results)
    path.write_text("\n".join(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"one of {available()}")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of each benchmark (0: unset)")
    args = parser.parse_args()
    names = available()
    if args.only:
        if args.only not in names:
            print(f"unknown benchmark '{args.only}'; available: {names}", file=sys.stderr)
            return 2
        result = run_one(args.only, args.threads)
        lines = section(result)
        lines[1:1] = ["", f"Measured {dt.datetime.now().isoformat(timespec='seconds')} on {machine()} "
                      f"(`make bench BENCH={args.only}`; the header's date is the last full run)."]
        replace_section(args.out, result.get("bench", args.only), lines)
        print(json.dumps(result))
        print(f"wrote the {args.only} section of {args.out}")
        return 0 if "error" not in result else 1
    results = [run_one(n, args.threads) for n in names]
    write_markdown(results, Path(args.out), run_notes(args.threads))
    for r in results:
        print(json.dumps(r))
    print(f"wrote {args.out}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
