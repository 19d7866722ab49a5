"""Batched Theseus LM FLAME fitting throughput vs scipy (MINPACK LM, one image at a time).

Problem: random procedural-FLAME faces projected onto the 1609 face landmarks + 1 px noise,
the default fit (20 + 20 LM iterations, 100 + 100 coefficients, rel. tolerance 1e-4).
Reports faces/s at each batch size (wall clock and per CPU-second of this process, fairer
on a shared machine), scipy's per-image throughput on the first ``--scipy-n`` images, and
the final-cost ratio ours / scipy on those images (<= 1.01 is the target).
Defaults: batches 1, 64, 1024 on CUDA; 1, 16, 64 on CPU (1024 is minutes on 2 cores; pass
--batches to change). The last printed line is JSON:
{"bench": "fitting", "device": ..., "faces_per_s": {batch: rate}, "scipy_faces_per_s": ...,
 "speedup_vs_scipy": best / scipy, "cost_ratio_max": ..., ...}

One fit at ``--profile-batch`` (64) is split into phases by CPU stopwatches around the
fitter's methods (normal equations, residual evaluations, linear solve, the rest of the
Theseus LM loop, init, finish), and a torch.profiler run of it lists the top ops: what bounds
it. (fitting/ also labels these phases with record_function for a profiler trace.)
``--write-md BENCHMARKS.md`` replaces the fitting section of that file with the figures, the
profile tables and the verdict.

Usage: python -m benchmarks.bench_fitting [--device cuda] [--batches 1 64 1024] [--scipy-n 8]
       [--threads 1] [--write-md BENCHMARKS.md]

On a CPU shared with other jobs, --threads 1 avoids OpenMP oversubscription (MINPACK is
single-threaded anyway); faces_per_cpu_s is the fairer figure there.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from benchmarks.common import load_avg, replace_section
from benchmarks.host_syncs import HostSyncCounter
from fitting.builder import build_flame_fitter
from fitting.costs import ReprojectionCost
from fitting.fit_problems import make_problems
from fitting.flame_fit import FitterConfig, LandmarkFitter
from fitting.scipy_reference import scipy_fit
from fitting.solver import BlockDenseLinearization, RobustCholeskyDenseSolver


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def _phase_times(fitter, lm, sync) -> tuple[dict[str, float], float]:
    """CPU seconds of one fit by phase, from process-time stopwatches wrapped around the
    fitter's methods for this one call (torch.profiler itself adds 40-100 % here)."""

    acc: dict[str, float] = {}
    wrapped = [
        (ReprojectionCost, "normal_equations", lambda a, k: "normal"),
        (ReprojectionCost, "error", lambda a, k: "error"),
        (RobustCholeskyDenseSolver, "_solve_sytem", lambda a, k: "solve"),
        (LandmarkFitter, "_finish", lambda a, k: "finish"),
        (LandmarkFitter, "_solve", lambda a, k: "rigid" if len(a[5]) == 2 else "nonrigid"),
    ]
    saved = []
    for cls, name, label in wrapped:
        orig = cls.__dict__[name]
        saved.append((cls, name, orig))

        def stopwatch(*a, _orig=orig, _label=label, **k):
            c0 = time.process_time()
            try:
                return _orig(*a, **k)
            finally:
                key = _label(a, k)
                acc[key] = acc.get(key, 0.0) + time.process_time() - c0

        setattr(cls, name, stopwatch)
    try:
        c0 = time.process_time()
        fitter.fit(lm)
        sync()
        total = time.process_time() - c0
    finally:
        for cls, name, orig in saved:
            setattr(cls, name, orig)
    return acc, total


def fit_host_syncs(fitter, lm, device_path: bool = False) -> dict:
    """Host synchronisations of one fit of ``lm`` (benchmarks.host_syncs), per LM iteration
    (one normal-equation assembly each) and by owner (suite / theseus) and site.

    On CUDA they are counted by ``torch.cuda.set_sync_debug_mode``; elsewhere by the
    operations that would wait on a GPU. ``device_path``: take the branches the fit takes on
    a GPU (the robust solve's retry without asking), so a CPU run counts the GPU path."""
    fitter.fit(lm)  # warm-up at this batch: first-call work is not per-iteration work
    saved = RobustCholeskyDenseSolver.ALWAYS_RETRY
    if device_path:
        RobustCholeskyDenseSolver.ALWAYS_RETRY = True
    try:
        hook = (BlockDenseLinearization, "_linearize_hessian_impl")
        with HostSyncCounter("auto", iteration_hook=hook) as counter:
            fitter.fit(lm)
    finally:
        RobustCholeskyDenseSolver.ALWAYS_RETRY = saved
    return counter.summary()


def profile_fit(fitter, lm, sync) -> dict:
    """One fit of ``lm``: CPU ms by phase (stopwatches, least of 2 runs) and the top ops by
    self time (torch.profiler, a third run)."""
    from torch.profiler import ProfilerActivity, profile

    fitter.fit(lm)  # warm-up at this batch (buffers)
    sync()
    acc, total = min((_phase_times(fitter, lm, sync) for _ in range(2)), key=lambda x: x[1])
    stages = acc.get("rigid", 0.0) + acc.get("nonrigid", 0.0)
    inner = acc.get("normal", 0.0) + acc.get("error", 0.0) + acc.get("solve", 0.0)
    phases = {
        "normal equations J^T J, -J^T e (Jacobian + products)": acc.get("normal", 0.0),
        "residual evaluations (accept / reject)": acc.get("error", 0.0),
        "damped Cholesky solve": acc.get("solve", 0.0),
        "rest of the Theseus LM loop (damping, retraction, convergence, Python)": max(
            stages - inner, 0.0
        ),
        "final mesh, validity flags": acc.get("finish", 0.0),
        "sanitize, closed-form rigid init, setup": max(total - stages - acc.get("finish", 0), 0),
    }
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fitter.fit(lm)
        sync()
    ops = sorted(
        (e for e in prof.key_averages(group_by_input_shape=True) if e.key.startswith("aten::")),
        key=lambda e: -e.self_cpu_time_total,
    )
    all_self = sum(e.self_cpu_time_total for e in ops) or 1.0
    return {
        "batch": int(lm.shape[0]),
        "fit_cpu_ms": round(1e3 * total, 1),
        "stage_ms": {
            "rigid": round(1e3 * acc.get("rigid", 0.0), 1),
            "nonrigid": round(1e3 * acc.get("nonrigid", 0.0), 1),
        },
        "phases": [
            {"phase": k, "ms": round(1e3 * v, 1), "share_pct": round(100 * v / total, 1)}
            for k, v in sorted(phases.items(), key=lambda kv: -kv[1])
        ],
        "top_ops": [
            {
                "op": e.key,
                "shapes": str(e.input_shapes)[:80],
                "share_pct": round(100 * e.self_cpu_time_total / all_self, 1),
            }
            for e in ops[:8]
        ],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="FLAME landmark-fitting throughput")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, nargs="*", default=None)
    ap.add_argument("--scipy-n", type=int, default=8)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--landmark-set", default="face1609")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--profile-batch", type=int, default=64, help="0: no profile")
    ap.add_argument("--sync-batch", type=int, default=4, help="host syncs of a fit at this batch (0: none)")
    ap.add_argument(
        "--cpu-ref-n",
        type=int,
        default=0,
        help="on a GPU: also fit the first N problems on the CPU and report the cost ratio",
    )
    ap.add_argument(
        "--write-md",
        default=None,
        metavar="BENCHMARKS.md",
        help="also replace the fitting section of this file",
    )
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    batches = a.batches or ([1, 64, 1024] if dev.type == "cuda" else [1, 16, 64])
    fitter = build_flame_fitter(landmark_set=a.landmark_set, config=FitterConfig()).to(dev)
    nmax = max(max(batches), a.scipy_n)
    prob = make_problems(fitter, nmax, seed=0, noise_px=a.noise)
    lm = prob.landmarks.float().to(dev)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    fitter.fit(lm[:2])  # warm-up (allocations, kernels)
    sync()
    rates, cpu_rates, peak_mib = {}, {}, {}
    for b in batches:
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        fitter.fit(lm[:b])  # warm-up at this batch (reused buffers)
        if dev.type == "cuda":
            peak_mib[b] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
        walls, cpus = [], []
        for _ in range(a.repeats):
            (_, wall, cpu) = _timed(lambda b=b: (fitter.fit(lm[:b]), sync()))
            walls.append(wall)
            cpus.append(cpu)
        rates[b] = b / min(walls)
        cpu_rates[b] = b / max(min(cpus), 1e-9)
        print(
            f"theseus batch {b}: {rates[b]:.1f} faces/s ({cpu_rates[b]:.1f} per CPU-s)", flush=True
        )
    prof = None
    if a.profile_batch > 0:
        prof = profile_fit(fitter, lm[: a.profile_batch], sync)
        print(f"profile at batch {a.profile_batch}: {json.dumps(prof['phases'])}", flush=True)
    syncs = None
    if a.sync_batch > 0:
        syncs = fit_host_syncs(fitter, lm[: a.sync_batch], device_path=dev.type != "cpu")
        print(f"host syncs at batch {a.sync_batch}: {json.dumps(syncs)}", flush=True)
    cpu_ref = None
    if a.cpu_ref_n > 0 and dev.type != "cpu":
        n = min(a.cpu_ref_n, lm.shape[0])
        dev_cost = fitter.fit(lm[:n]).cost.double().cpu()
        cpu_fitter = build_flame_fitter(landmark_set=a.landmark_set, config=FitterConfig())
        cpu_cost = cpu_fitter.fit(lm[:n].cpu()).cost.double()
        r = (dev_cost / cpu_cost).tolist()
        cpu_ref = {"n": n, "cost_ratio_min": round(min(r), 6), "cost_ratio_max": round(max(r), 6)}
        print(f"cost ratio {dev.type} / cpu over {n} images: {cpu_ref}", flush=True)
    ours = fitter.fit(lm[: a.scipy_n]).cost.double().cpu()
    ref, wall, cpu = _timed(lambda: scipy_fit(fitter.cpu(), prob.landmarks[: a.scipy_n]))
    scipy_rate, scipy_cpu_rate = a.scipy_n / wall, a.scipy_n / max(cpu, 1e-9)
    ratio = (ours.numpy() / ref.cost).tolist()
    print(
        f"scipy: {scipy_rate:.2f} faces/s ({scipy_cpu_rate:.2f} per CPU-s), nfev {ref.nfev.tolist()}, "
        f"cost ratio ours/scipy {[round(r, 5) for r in ratio]}",
        flush=True,
    )
    best_b = max(rates, key=rates.get)
    best_cpu_b = max(cpu_rates, key=cpu_rates.get)
    result = {
        "bench": "fitting",
        "device": str(dev)
        + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": load_avg(),
        "landmarks": int(lm.shape[1]),
        "iterations": [fitter.config.rigid_iterations, fitter.config.nonrigid_iterations],
        "faces_per_s": {str(k): round(v, 2) for k, v in rates.items()},
        "faces_per_cpu_s": {str(k): round(v, 2) for k, v in cpu_rates.items()},
        "scipy_faces_per_s": round(scipy_rate, 3),
        "scipy_faces_per_cpu_s": round(scipy_cpu_rate, 3),
        "speedup_vs_scipy": round(rates[best_b] / scipy_rate, 2),
        "speedup_vs_scipy_cpu_s": round(cpu_rates[best_cpu_b] / scipy_cpu_rate, 2),
        "cost_ratio_max": round(max(ratio), 6),
        "cost_ratio_min": round(min(ratio), 6),
        "scipy_n": a.scipy_n,
    }
    if peak_mib:
        result["peak_memory_mib"] = {str(k): v for k, v in peak_mib.items()}
    if syncs is not None:
        result["host_syncs_batch"] = a.sync_batch
        result["host_syncs_per_lm_iteration"] = syncs["per_iteration"]
        result["host_syncs_per_lm_iteration_by_owner"] = syncs["per_iteration_by_owner"]
        result["host_syncs"] = syncs
    if cpu_ref is not None:
        result["cost_ratio_vs_cpu"] = cpu_ref
    if prof is not None:
        result["profile"] = prof
    result["verdict"] = verdict(result, dev)
    if a.write_md:
        threads = os.environ.get("OMP_NUM_THREADS")
        cmd = (
            f"OMP_NUM_THREADS={threads} " if threads else ""
        ) + "python -m benchmarks.bench_fitting"
        write_markdown_section(a.write_md, result, cmd)
    print(json.dumps(result))
    return result


def verdict(r: dict, dev: torch.device) -> str:
    """One paragraph: targets (issue 9) against the figures of this run, and what bounds it."""
    cpu_b = max(r["faces_per_cpu_s"], key=r["faces_per_cpu_s"].get)
    out = [
        f"{r['device']}, {r['torch_threads']} thread(s), load average {r['load_avg_1min']}: "
        f"{r['faces_per_cpu_s'][cpu_b]} faces per CPU-second at batch {cpu_b} against scipy's "
        f"{r['scipy_faces_per_cpu_s']} per image (MINPACK LM, exact Jacobian, same problems): "
        f"**{r['speedup_vs_scipy_cpu_s']}x** per CPU-second, {r['speedup_vs_scipy']}x wall clock "
        f"(target >= 10x on the CPU: {'met' if r['speedup_vs_scipy_cpu_s'] >= 10 else 'missed'}). "
        f"Final cost ours / scipy over {r['scipy_n']} images: {r['cost_ratio_min']} .. "
        f"{r['cost_ratio_max']} (equal within 1e-4 relative: our LM stops an image once a step "
        "gains < 1e-4 of its cost, scipy runs to ftol 1e-8)."
    ]
    prof = r.get("profile")
    if prof:
        top = prof["phases"][0]
        b, L = prof["batch"], r["landmarks"]
        gram = [o for o in prof["top_ops"] if f"[{b}, 200, {L}]" in o["shapes"]]
        gram_pct = round(sum(o["share_pct"] for o in gram), 1)
        gflop = 2 * b * 2 * L * 200 * 228 / 1e9
        out.append(
            f" What bounds it (one fit at batch {b}): the {top['phase']}, {top['share_pct']} % of "
            f"the CPU time. Inside, the batched product J1^T [J1 | Hm | Y] of the coefficient "
            f"block (one `bmm` / `baddbmm_` per residual row, {b} x 200 x {L} x 228 each; "
            f"{gflop:.1f} GFLOP per non-rigid iteration) takes {gram_pct} % of all op time: a "
            "dense FP32 GEMM, which one core of this machine runs at ~140 GFLOP/s when idle "
            "(torch.bmm alone), so it is near that core's peak; the rest is memory traffic (the "
            "one write of the Jacobian J1 by a per-landmark batched product, the small-column "
            "concatenations and copies) and the 3x3 / 2x3 per-landmark algebra. Theseus' own LM "
            "loop (damping, retraction, convergence) is a few % at this batch."
        )
    if dev.type != "cuda":
        L, K, extra = r["landmarks"], 200, 28  # 100 + 100 coefficients; [Hm (15) | small J | e]
        tflop = 2 * 1024 * 2 * L * K * (K + extra) / 1e12
        out.append(
            "\n\n**GPU (H200): unmeasured in this run** (no GPU). The H200 figure comes from "
            "`make bench BENCH=fitting` on a CUDA machine (device cuda, batches 1, 64 and 1024; "
            "`python -m benchmarks.bench_fitting --write-md BENCHMARKS.md` rewrites this section). "
            "What is checked here instead (tests/fitting/test_fit_batched.py): a whole fit "
            "dispatches the same ops for a 4x batch and the normal equations the same ops for 4x "
            "landmarks (no Python loop over faces or landmarks), float64 fits make float64 "
            "tensors, and every piece of the LM iteration that fitting/ owns (normal equations, "
            "residual, priors, linearisation, robust Cholesky, convergence test) runs on the "
            "`meta` device, i.e. creates nothing on the CPU and never synchronises with the "
            "device. Estimate, not a measurement: the dominant product is "
            f"2 B 2L K (K + {extra}) = {tflop:.2f} TFLOP per non-rigid iteration at B = 1024 "
            "(4 to 5 per fit, the rigid ones are ~30x cheaper), so ~1.5 TFLOP per 1024 faces: "
            "at 30 TFLOP/s of FP32 GEMM that is ~50 ms, i.e. ~20,000 faces/s before overheads. "
            "What then bounds it is Theseus' LM loop: each iteration it synchronises with the "
            "host (converged.all(), the status array via .cpu(), reject.all()/any()), launches "
            "a few hundred small kernels from Python, and every 5 iterations our chunking "
            "compacts the batch (nonzero), so the 2,000 faces/s target needs the iteration "
            "(10 to 20 per fit) to stay under 25 to 50 ms."
        )
    return "".join(out)


def markdown_section(r: dict, command: str) -> list[str]:
    """The fitting section of BENCHMARKS.md: figures, profile tables, verdict."""
    out = ["## fitting", "", f"`{command}`", "", "| figure | value |", "| --- | --- |"]
    for k, v in r.items():
        if k not in ("bench", "profile", "verdict", "host_syncs"):
            out.append(f"| {k} | {json.dumps(v) if not isinstance(v, str) else v} |")
    prof = r.get("profile")
    if prof:
        out += [
            "",
            f"### What bounds the fit (one fit at batch {prof['batch']}: {prof['fit_cpu_ms']} ms "
            f"CPU; rigid stage {prof['stage_ms']['rigid']} ms, non-rigid stage "
            f"{prof['stage_ms']['nonrigid']} ms)",
            "",
            "| phase | CPU ms | share of the fit |",
            "| --- | --- | --- |",
        ]
        out += [f"| {p['phase']} | {p['ms']} | {p['share_pct']} % |" for p in prof["phases"]]
        out += [
            "",
            "torch.profiler, top ops by self time (share of all op time; the profiler itself "
            "slows the many small ops most):",
            "",
            "| op | input shapes | share of op time |",
            "| --- | --- | --- |",
        ]
        out += [f"| `{o['op']}` | {o['shapes']} | {o['share_pct']} % |" for o in prof["top_ops"]]
    out += ["", r["verdict"], ""]
    return out


def write_markdown_section(path: str, result: dict, command: str) -> None:
    """Replace the ``## fitting`` section of ``path`` (appended if missing); the rest stays."""
    replace_section(path, "fitting", markdown_section(result, command))

if __name__ == "__main__":
    main()
