"""The prepared device check (issue 19): every step of the CUDA path, time-boxed, in one command.

    python -m benchmarks.gpu_check --out DIR            # the full check on a GPU (< 8 min, H200)
    python -m benchmarks.gpu_check --out DIR --smoke    # tiny sizes on the CPU (seconds per step)

Each step runs as its own subprocess under ``timeout`` (a step that fails or hangs never stops
the rest) and writes ``DIR/steps/<step>.log`` (stdout + stderr) and ``DIR/steps/<step>.json``
(the benchmark's last JSON line, or what the step measured). ``DIR/summary.json`` holds one
entry per step: ``{"status": "ok" | "failed" | "timeout" | "skipped: <why>", "seconds": s,
"command": ..., "figures": {...}}``; it is printed last. ``--pack`` also writes
``DIR/steps.tar.gz`` and removes ``DIR/steps`` (the device tool brings back at most 8 files).

Steps: env (GPU, driver, torch, CUDA, package versions), pytest_gpu (``pytest -m gpu``),
fitting (benchmarks/bench_fitting.py), train / train_compile (bench_train.py), loader
(bench_loader.py), inference (bench_inference.py), train_run / train_ddp (``experiments.train``
for ``--train-minutes``, plain and through configs/trainer/ddp.yaml with one device), fit (the
fit module on train_run's checkpoint). In ``--smoke`` the steps that need CUDA are skipped
("skipped: no CUDA") and the benchmarks run at tiny sizes on the CPU.
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
    without a GPU; ``figures``: keys of the last JSON line copied into the summary."""

    name: str
    command: list[str]
    timeout: int
    needs_cuda: bool = False
    skip: str | None = None
    figures: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


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
    max_time = f"00:00:{a.train_minutes:02d}:00"
    run_args = ["model=resll_convnext", "schedule=paper", f"trainer.max_time={max_time}", "test=false",
                "logger=csv", "resume=false", f"data.num_workers={a.workers}"]
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
        predict = [*m, "benchmarks.bench_predict", "--device", "cuda", "--photos", "64", "--repeats", "2"]
    t = (lambda full, tiny: tiny if smoke else full)  # noqa: E731
    fm = fit_module()
    out = [
        Step("env", [*m, "benchmarks.gpu_check", "--env-only"], 60),
        Step("pytest_gpu", [*m, "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
             t(90, 30), needs_cuda=True),
        Step("fitting", fitting, t(150, 90), needs_cuda=not smoke,
             figures=("device", "faces_per_s", "peak_memory_mib", "host_syncs_per_lm_iteration",
                      "host_syncs_per_lm_iteration_by_owner", "cost_ratio_vs_cpu", "cost_ratio_max",
                      "scipy_faces_per_s")),
        Step("train", train, t(90, 60), needs_cuda=not smoke, figures=("device", "images_per_s", "precision", "memory_format")),
        Step("train_compile", [*train, "--compile"], t(150, 60), needs_cuda=True,
             figures=("device", "images_per_s", "compiled")),
        Step("loader", loader, t(120, 60), figures=("samples_per_s", "workers", "batch_device"),
             skip="skipped: smoke (writes the procedural DAD-3DHeads data, minutes)" if smoke else None),
        Step("inference", inference, 60, needs_cuda=not smoke, figures=("device", "images_per_s", "precision", "memory_format")),
        Step("predict", predict, t(120, 90), needs_cuda=not smoke, figures=("device", "photos_per_s", "seconds_per_photo")),
        Step("train_run", [*m, "experiments.train", *run_args, f"hydra.run.dir={train_dir}"],
             t(60 * a.train_minutes + 90, 30), needs_cuda=True),
        Step("train_ddp", [*m, "experiments.train", *run_args, "trainer=ddp", "trainer.devices=1",
                           f"hydra.run.dir={ddp_dir}"], t(60 * a.train_minutes + 90, 30), needs_cuda=True),
        Step("fit", [*m, fm, f"ckpt_path={ckpt}", "limit_batches=4", "device=cuda",
                     f"hydra.run.dir={fit_dir}"], t(120, 30), needs_cuda=True),
    ]
    for st in out:
        if st.needs_cuda and not cuda and st.skip is None:
            st.skip = "skipped: no CUDA"
    return out


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


def run_step(st: Step, out: Path) -> dict:
    """Run one step under ``timeout``; its log and JSON go to ``out/<name>.log|json``."""
    entry: dict = {"command": " ".join(st.command), "timeout_s": st.timeout}
    if st.skip:
        entry.update(status=st.skip, seconds=0.0, figures={})
        (out / f"{st.name}.json").write_text(json.dumps(entry) + "\n")
        return entry
    env = dict(os.environ, PYTHONUNBUFFERED="1", **st.env)
    t0 = time.perf_counter()
    with open(out / f"{st.name}.log", "w") as log:
        log.write(f"$ {entry['command']}\n")
        log.flush()
        # timeout(1) kills the whole step, children included (-k: SIGKILL 10 s after SIGTERM)
        proc = subprocess.run(["timeout", "-k", "10", str(st.timeout), *st.command], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        log.write(proc.stdout)
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    entry["rc"] = proc.returncode
    result = _last_json(proc.stdout) or {}
    if proc.returncode in (124, 137):
        entry["status"] = "timeout"
    elif proc.returncode != 0:
        entry["status"] = "failed"
        entry["tail"] = proc.stdout[-1500:]
    else:
        problems = check_figures(st.name, result)
        entry["status"] = "ok" if not problems else "failed"
        if problems:
            entry["problems"] = problems
    figures = {k: result[k] for k in st.figures if k in result}
    if st.name == "env":
        figures = result
    if st.name == "pytest_gpu":
        tail = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()][-1:]
        figures = {"result": tail[0] if tail else ""}
    entry["figures"] = figures
    (out / f"{st.name}.json").write_text(json.dumps(result or entry) + "\n")
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="results folder (required unless --env-only)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    ap.add_argument("--only", nargs="*", default=None, help="run only these steps")
    ap.add_argument("--train-minutes", type=int, default=2)
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
    for st in steps(a, work, cuda):
        if a.only is not None and st.name not in a.only:
            continue
        print(f"[gpu_check] {st.name} (<= {st.timeout} s): {' '.join(st.command)}", flush=True)
        entry = run_step(st, step_dir)
        summary["steps"][st.name] = entry
        print(f"[gpu_check] {st.name}: {entry['status']} in {entry['seconds']} s", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
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
