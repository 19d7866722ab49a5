"""Run the benchmarks and write BENCHMARKS.md.

    python -m benchmarks.run              # every benchmarks/bench_*.py, then BENCHMARKS.md
    python -m benchmarks.run --only render  # one benchmark; its JSON line is printed last

Each benchmark module prints its figures as one JSON line last (medians with spread). This runner
records the date, the machine and the exact command beside the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

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


def run_one(name: str) -> dict:
    cmd = [sys.executable, "-m", f"benchmarks.bench_{name}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-2000:])
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"bench": name, "error": f"exit {proc.returncode}", "tail": proc.stdout[-500:] + proc.stderr[-500:]}
    result = json.loads(lines[-1])
    result["command"] = f"python -m benchmarks.bench_{name}"
    return result


def write_markdown(results: list[dict], path: Path) -> None:
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
    ]
    for r in results:
        out.append(f"## {r.get('bench')}")
        out.append("")
        out.append(f"`{r.get('command', '')}`")
        out.append("")
        out.append("| figure | value |")
        out.append("| --- | --- |")
        for k, v in r.items():
            if k in ("bench", "command"):
                continue
            out.append(f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |")
        out.append("")
    path.write_text("\n".join(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help=f"one of {available()}")
    parser.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    names = available()
    if args.only:
        if args.only not in names:
            print(f"unknown benchmark '{args.only}'; available: {names}", file=sys.stderr)
            return 2
        result = run_one(args.only)
        print(json.dumps(result))
        return 0 if "error" not in result else 1
    results = [run_one(n) for n in names]
    write_markdown(results, Path(args.out))
    for r in results:
        print(json.dumps(r))
    print(f"wrote {args.out}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
