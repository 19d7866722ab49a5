"""Run a writer's work in fresh worker interpreters (``python -m <module> --job FILE``).

Fresh interpreters instead of ``multiprocessing``: no fork of a process whose torch /
OpenMP thread pools are already running, and no re-import of the caller's ``__main__``
(Hydra apps, ``python -c``, notebooks). Each worker gets a json job file, runs single-threaded
(OMP / MKL / torch: 1 thread) and writes its json result next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["run_workers", "job_main"]


def run_workers(module: str, jobs: list[dict], work_dir: str | Path) -> list:
    """Run ``python -m module --job <file>`` once per job dict, in parallel; returns the
    workers' json results in job order. Raises RuntimeError naming the failed job files."""
    from datamodules.cache import REPO_ROOT

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    procs = []
    for w, job in enumerate(jobs):
        f = work / f"job{w}.json"
        f.write_text(json.dumps(job))
        procs.append((f, subprocess.Popen([sys.executable, "-m", module, "--job", str(f)], env=env,
                                          cwd=str(REPO_ROOT))))
    failed = [str(f) for f, p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError(f"{module}: worker(s) failed for {failed} (their stderr is above)")
    results = [json.loads(f.with_suffix(".out.json").read_text()) for f, _ in procs]
    shutil.rmtree(work)
    return results


def job_main(fn: Callable[[dict], object], argv: list[str] | None = None) -> None:
    """Worker entry point: ``fn(job dict)`` -> json-able result, written to ``<job>.out.json``."""
    import torch

    ap = argparse.ArgumentParser(description="writer worker (internal)")
    ap.add_argument("--job", required=True)
    job = Path(ap.parse_args(argv).job)
    torch.set_num_threads(1)
    job.with_suffix(".out.json").write_text(json.dumps(fn(json.loads(job.read_text()))))
