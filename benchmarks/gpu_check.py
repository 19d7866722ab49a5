"""The prepared device check (issue 19): every step of the CUDA path, time-boxed, in one command.

    python -m benchmarks.gpu_check --out DIR            # the full check on a GPU (< 8 min, H200)
    python -m benchmarks.gpu_check --out DIR --smoke    # tiny sizes on the CPU (seconds per step)

Each step runs as its own subprocess under ``timeout`` (a step that fails or hangs never stops
the rest) and streams its stdout + stderr into ``DIR/steps/<step>.log``; ``DIR/steps/<step>.json``
holds the benchmark's last JSON line (or what the step measured). ``DIR/summary.json`` holds one
entry per step: ``{"status": "ok" | "failed" | "timeout" | "skipped: <why>", "seconds": s,
"command": ..., "figures": {...}}``; it is rewritten after every step and printed last. ``--budget``
seconds bound the whole check: a step's timeout is cut to what is left, and a step with under
15 s left is skipped ("skipped: out of time"), so the summary is complete inside the budget.
``--pack`` also writes ``DIR/steps.tar.gz`` and removes ``DIR/steps`` (the device tool brings back
at most 8 files).

Steps, in order: env (GPU, driver, torch, CUDA, package versions); data (in the background from
the start: ``experiments.data prepare`` writes the procedural DAD-3DHeads set on the CPU cores
while the GPU benchmarks run; loader, train_run and train_ddp wait for it); fitting
(benchmarks/bench_fitting.py); train / train_compile (bench_train.py); inference
(bench_inference.py); pytest_gpu (``pytest -m gpu``); loader (bench_loader.py); train_run
(``experiments.train`` for ``--train-minutes``); fit (the fit module on train_run's checkpoint);
train_ddp (the same training through configs/trainer/ddp.yaml with one device, for
``--ddp-minutes``); predict (bench_predict.py). In ``--smoke`` the steps that need CUDA are skipped ("skipped: no
CUDA"), data and loader too (they write the full procedural set, minutes), and the benchmarks run
at tiny sizes on the CPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

#: Python packages whose versions the env step reports (the suite's direct dependencies).
PACKAGES = (
    "torch", "torchvision", "timm", "lightning", "pytorch-lightning", "torchmetrics", "theseus-ai",
    "torchlie", "torchkin", "normflows", "smplx", "hydra-core", "omegaconf", "wandb", "numpy",
    "scipy", "scikit-learn", "scikit-sparse", "pillow", "opencv-python-headless", "triton",
)

#: The figures each step's JSON must give as positive finite numbers ("a.b": nested key).
REQUIRED = {
    "fitting": ("faces_per_s.*", "host_syncs_per_lm_iteration_by_owner.theseus"),
    "train": ("images_per_s.*.median",),
    "train_compile": ("images_per_s.*.median",),
    "inference": ("images_per_s.*.median",),
    "loader": ("samples_per_s",),
}


@dataclass
class Step:
    """One time-boxed step: ``command`` (argv) under ``timeout`` seconds; ``needs_cuda``: skipped
    without a GPU; ``figures``: keys of the last JSON line copied into the summary;
    ``background``: started and left running; ``after``: the background step to wait for."""

    name: str
    command: list[str]
    timeout: int
    needs_cuda: bool = False
    skip: str | None = None
    figures: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    background: bool = False  # started, then the next steps run while it does
    after: str | None = None  # a background step this one waits for first


def fit_module() -> str:
    """The fit entry point's module: $FIT_MODULE, else experiments.fit."""
    return os.environ.get("FIT_MODULE") or "experiments.fit"


def environment() -> dict:
    """GPU name, driver, torch, CUDA and the versions of :data:`PACKAGES` (None: not installed)."""
    import torch

    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cpu_count": os.cpu_count(),
        "packages": versions,
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                   multiprocessors=p.multi_processor_count, capability=f"{p.major}.{p.minor}")
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True)
        out["nvidia_smi"] = q.stdout.strip() or q.stderr.strip()
    for mod in ("theseus", "normflows", "smplx", "hydra", "wandb"):
        try:
            __import__(mod)
            out.setdefault("imports", {})[mod] = "ok"
        except Exception as e:  # noqa: BLE001 (any import failure is a finding to report)
            out.setdefault("imports", {})[mod] = f"{type(e).__name__}: {e}"[:200]
    return out


def steps(a: argparse.Namespace, work: Path, cuda: bool) -> list[Step]:
    """The steps of the check, full or ``--smoke``, in the order they run."""
    m = [PY, "-m"]
    smoke = a.smoke
    train_dir, ddp_dir, fit_dir = work / "train_run", work / "train_ddp", work / "fit"
    run_args = ["model=resll_convnext", "schedule=paper", "test=false", "logger=csv", "resume=false",
                f"data.num_workers={a.workers}"]
    ckpt = train_dir / "checkpoints" / "last.ckpt"
    if smoke:
        fitting = [*m, "benchmarks.bench_fitting", "--device", "cpu", "--batches", "1", "2",
                   "--scipy-n", "1", "--repeats", "1", "--threads", "1", "--profile-batch", "0",
                   "--sync-batch", "2"]
        train = [*m, "benchmarks.bench_train", "--device", "cpu", "--smoke", "--models", "tiny",
                 "--no-profile", "--threads", "1"]
        inference = [*m, "benchmarks.bench_inference", "--device", "cpu", "--smoke", "--batches", "2",
                     "--threads", "1"]
        loader = [*m, "benchmarks.bench_loader", "--workers", "0", "--batch-size", "2", "--batches", "1",
                  "--repeats", "1", "--profile-samples", "4"]
        predict = [*m, "benchmarks.bench_predict", "--device", "cpu", "--smoke", "--threads", "1"]
    else:
        fitting = [*m, "benchmarks.bench_fitting", "--device", "cuda", "--batches", "1", "64", "1024",
                   "4096", "--scipy-n", "4", "--cpu-ref-n", "16", "--repeats", "2", "--sync-batch", "64",
                   "--profile-batch", "1024"]
        train = [*m, "benchmarks.bench_train", "--device", "cuda", "--models", "resll_convnext",
                 "--image-size", "256", "--batch-size", str(a.train_batch), "--steps", "10"]
        inference = [*m, "benchmarks.bench_inference", "--device", "cuda", "--model", "resll_convnext",
                     "--image-size", "256", "--batches", "256", "--repeats", "10"]
        loader = [*m, "benchmarks.bench_loader", "--workers", str(a.workers), "--batch-size", "128",
                  "--batches", "10", "--repeats", "2", "--profile-samples", "64"]
        predict = [*m, "benchmarks.bench_predict", "--device", "cuda", "--photos", "32", "--repeats", "1"]
    t = (lambda full, tiny: tiny if smoke else full)  # noqa: E731
    fm = fit_module()
    out = [
        Step("env", [*m, "benchmarks.gpu_check", "--env-only"], 60),
        Step("data", [*m, "experiments.data", "prepare", "--dataset", "dad3dheads"], 300, background=True,
             skip="skipped: smoke (writes the procedural DAD-3DHeads data, minutes)" if smoke else None),
        Step("fitting", fitting, t(150, 90), needs_cuda=not smoke,
             figures=("device", "faces_per_s", "peak_memory_mib", "host_syncs_per_lm_iteration",
                      "host_syncs_per_lm_iteration_by_owner", "cost_ratio_vs_cpu", "cost_ratio_max",
                      "scipy_faces_per_s")),
        Step("train", train, t(90, 60), needs_cuda=not smoke, figures=("device", "images_per_s", "precision", "memory_format")),
        Step("inference", inference, 60, needs_cuda=not smoke, figures=("device", "images_per_s", "precision", "memory_format")),
        Step("train_compile", [*train, "--compile"], t(150, 60), needs_cuda=True,
             figures=("device", "images_per_s", "compiled")),
        Step("pytest_gpu", [*m, "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
             t(90, 30), needs_cuda=True),
        Step("loader", loader, t(120, 60), figures=("samples_per_s", "workers", "batch_device"), after="data",
             skip="skipped: smoke (writes the procedural DAD-3DHeads data, minutes)" if smoke else None),
        Step("train_run", [*m, "experiments.train", *run_args, f"trainer.max_time={max_time(a.train_minutes)}",
                           f"hydra.run.dir={train_dir}"],
             t(round(60 * a.train_minutes) + 90, 30), needs_cuda=True, after="data"),
        Step("fit", [*m, fm, f"ckpt_path={ckpt}", "limit_batches=4", "device=cuda",
                     f"hydra.run.dir={fit_dir}"], t(120, 30), needs_cuda=True),
        Step("train_ddp", [*m, "experiments.train", *run_args, f"trainer.max_time={max_time(a.ddp_minutes)}",
                           "trainer=ddp", "trainer.devices=1", f"hydra.run.dir={ddp_dir}"],
             t(round(60 * a.ddp_minutes) + 90, 30), needs_cuda=True, after="data"),
        Step("predict", predict, t(120, 90), needs_cuda=not smoke, figures=("device", "photos_per_s", "seconds_per_photo")),
    ]
    for st in out:
        if st.needs_cuda and not cuda and st.skip is None:
            st.skip = "skipped: no CUDA"
    return out


def max_time(minutes: float) -> str:
    """Lightning's ``max_time`` (DD:HH:MM:SS) for ``minutes``: 1.5 -> "00:00:01:30"."""
    secs = max(1, round(60 * minutes))
    return f"00:{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"


def _lookup(d, path: str) -> list:
    """Values at a dotted ``path`` of nested dicts; ``*`` matches every key of one level."""
    vals = [d]
    for part in path.split("."):
        nxt = []
        for v in vals:
            if not isinstance(v, dict):
                continue
            nxt += list(v.values()) if part == "*" else ([v[part]] if part in v else [])
        vals = nxt
    return vals


def check_figures(name: str, result: dict) -> list[str]:
    """The problems with a step's required figures (:data:`REQUIRED`): missing or not a positive
    finite number; [] when all are there."""
    bad = []
    for path in REQUIRED.get(name, ()):
        vals = _lookup(result, path)
        if not vals:
            bad.append(f"{path}: missing")
        for v in vals:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
                bad.append(f"{path}: {v!r} is not a positive finite number")
    return bad


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def start_step(st: Step, out: Path, timeout: int) -> subprocess.Popen:
    """Start one step under ``timeout`` seconds; its output streams into ``out/<name>.log``
    (timeout(1) kills the whole step, children included; -k: SIGKILL 10 s after SIGTERM)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **st.env)
    with open(out / f"{st.name}.log", "w") as log:
        log.write(f"$ {' '.join(st.command)}\n")
        log.flush()
        return subprocess.Popen(["timeout", "-k", "10", str(timeout), *st.command], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, text=True)


def finish_step(st: Step, proc: subprocess.Popen, t0: float, out: Path, timeout: int) -> dict:
    """Wait for a started step and return its summary entry (status, seconds, rc, figures);
    ``out/<name>.json`` gets its last JSON line (or the entry)."""
    rc = proc.wait()
    text = (out / f"{st.name}.log").read_text(errors="replace")
    entry: dict = {"command": " ".join(st.command), "timeout_s": timeout,
                   "seconds": round(time.perf_counter() - t0, 1), "rc": rc}
    result = _last_json(text) or {}
    if rc in (124, 137):
        entry["status"] = "timeout"
    elif rc != 0:
        entry["status"] = "failed"
        entry["tail"] = text[-1500:]
    else:
        problems = check_figures(st.name, result)
        entry["status"] = "ok" if not problems else "failed"
        if problems:
            entry["problems"] = problems
    figures = {k: result[k] for k in st.figures if k in result}
    if st.name == "env":
        figures = result
    if st.name == "pytest_gpu":
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-1:]
        figures = {"result": tail[0] if tail else ""}
    entry["figures"] = figures
    (out / f"{st.name}.json").write_text(json.dumps(result or entry) + "\n")
    return entry


def skipped(st: Step, out: Path, why: str) -> dict:
    """The summary entry of a step that did not run (and its ``out/<name>.json``)."""
    entry = {"command": " ".join(st.command), "timeout_s": st.timeout, "status": why, "seconds": 0.0,
             "figures": {}}
    (out / f"{st.name}.json").write_text(json.dumps(entry) + "\n")
    return entry


def run_steps(todo: list[Step], out: Path, budget: float, report, min_step: int = 15, margin: int = 5) -> None:
    """Run ``todo`` in order inside ``budget`` seconds; ``report(name, entry)`` after each step.
    A background step is started and collected when a later step names it in ``after`` (or at
    the end); each timeout is cut to the time left less ``margin`` s, and a step that would get
    under ``min_step`` s is skipped."""
    deadline = time.perf_counter() + budget
    running: dict[str, tuple[Step, subprocess.Popen, float, int]] = {}

    def collect(name: str) -> None:
        st, proc, t0, timeout = running.pop(name)
        report(name, finish_step(st, proc, t0, out, timeout))

    for st in todo:
        if st.after in running:
            collect(st.after)
        if st.skip:
            report(st.name, skipped(st, out, st.skip))
            continue
        timeout = int(min(st.timeout, deadline - time.perf_counter() - margin))
        if timeout < min_step:
            report(st.name, skipped(st, out, "skipped: out of time"))
            continue
        print(f"[gpu_check] {st.name} (<= {timeout} s{', background' if st.background else ''}): "
              f"{' '.join(st.command)}", flush=True)
        t0 = time.perf_counter()
        proc = start_step(st, out, timeout)
        if st.background:
            running[st.name] = (st, proc, t0, timeout)
        else:
            report(st.name, finish_step(st, proc, t0, out, timeout))
    for name in list(running):
        collect(name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="results folder (required unless --env-only)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--only", nargs="*", default=None, help="run only these steps")
    # sized from the 2026-12-04 H200 run (docs/gpu_check/): 540 s left train_ddp out of time
    ap.add_argument("--budget", type=float, default=570, help="seconds for the whole check")
    ap.add_argument("--train-minutes", type=float, default=1.5, help="train_run's max_time")
    ap.add_argument("--ddp-minutes", type=float, default=0.5, help="train_ddp's max_time")
    ap.add_argument("--train-batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=12, help="loader workers (train runs, loader bench)")
    ap.add_argument("--pack", action="store_true", help="tar the steps' files into steps.tar.gz")
    ap.add_argument("--env-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.env_only:
        print(json.dumps(environment()))
        return 0
    if not a.out:
        ap.error("--out DIR is required")
    import torch

    cuda = torch.cuda.is_available() and not a.smoke
    out = Path(a.out).resolve()
    step_dir = out / "steps"
    step_dir.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("GPU_CHECK_WORK", "/tmp/gpu_check_work")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {"check": "gpu", "smoke": a.smoke, "cuda": cuda, "steps": {}}
    t0 = time.perf_counter()

    def report(name: str, entry: dict) -> None:
        summary["steps"][name] = entry
        print(f"[gpu_check] {name}: {entry['status']} in {entry['seconds']} s", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    todo = [st for st in steps(a, work, cuda) if a.only is None or st.name in a.only]
    summary["steps"] = {st.name: {"status": "not run", "seconds": 0.0, "figures": {}} for st in todo}
    run_steps(todo, step_dir, a.budget, report)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if a.pack:
        with tarfile.open(out / "steps.tar.gz", "w:gz") as tar:
            tar.add(step_dir, arcname="steps")
        shutil.rmtree(step_dir)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
