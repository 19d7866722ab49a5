"""Run a writer's work in fresh worker interpreters.

Fresh interpreters instead of ``multiprocessing``: no fork of a process whose torch /
OpenMP thread pools are already running, and no re-import of the caller's ``__main__``
(Hydra apps, ``python -c``, notebooks). Each worker gets a json job file naming a
module-level function and its job dict, runs single-threaded (OMP / MKL / torch: 1 thread)
and writes the function's json result next to it. The worker is :func:`job_main`, started as
``python -c <_BOOT> --job FILE``, so no library module needs a ``__main__`` block.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import reduce
from pathlib import Path

import torch

from facemodels.world import REPO_ROOT

__all__ = ["run_workers", "job_main"]

_BOOT = "from datamodules.writers.parallel import job_main; job_main()"


def _qualified_name(fn: Callable) -> str:
    """``module:qualname`` of a module-level function (what a worker can import)."""
    name = f"{fn.__module__}:{fn.__qualname__}"
    if "<locals>" in fn.__qualname__ or fn.__module__ == "__main__":
        raise ValueError(f"run_workers: {name} is not importable by a worker (define it at module level)")
    return name


def _resolve(name: str) -> Callable:
    module, qualname = name.split(":")
    return reduce(getattr, qualname.split("."), importlib.import_module(module))


def run_workers(fn: Callable[[dict], object], jobs: list[dict], work_dir: str | Path) -> list:
    """Run ``fn(job)`` for every job dict, each in its own worker interpreter, in parallel;
    ``fn`` must be a module-level function and its result json-able. Returns the results in
    job order. Raises RuntimeError naming the failed job files."""
    name = _qualified_name(fn)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    procs = []
    for w, job in enumerate(jobs):
        f = work / f"job{w}.json"
        f.write_text(json.dumps({"fn": name, "job": job}))
        procs.append((f, subprocess.Popen([sys.executable, "-c", _BOOT, "--job", str(f)], env=env,
                                          cwd=str(REPO_ROOT))))
    failed = [str(f) for f, p in procs if p.wait() != 0]
    if failed:
        raise RuntimeError(f"{name}: worker(s) failed for {failed} (their stderr is above)")
    results = [json.loads(f.with_suffix(".out.json").read_text()) for f, _ in procs]
    shutil.rmtree(work)
    return results


def job_main(argv: list[str] | None = None) -> None:
    """Worker entry point: reads ``--job FILE`` = {"fn": "module:qualname", "job": dict}, writes
    ``fn(job)`` (json-able) to ``<FILE stem>.out.json``."""
    ap = argparse.ArgumentParser(description="writer worker (internal)")
    ap.add_argument("--job", required=True)
    path = Path(ap.parse_args(argv).job)
    spec = json.loads(path.read_text())
    torch.set_num_threads(1)
    path.with_suffix(".out.json").write_text(json.dumps(_resolve(spec["fn"])(spec["job"])))
