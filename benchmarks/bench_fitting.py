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

Usage: python benchmarks/bench_fitting.py [--device cuda] [--batches 1 64 1024] [--scipy-n 4] [--threads 1]

On a CPU shared with other jobs, --threads 1 avoids OpenMP oversubscription (MINPACK is
single-threaded anyway); faces_per_cpu_s is the fairer figure there.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from fitting.builder import build_flame_fitter
from fitting.flame_fit import FitterConfig
from fitting.scipy_reference import scipy_fit
from fitting.synthetic import make_problems


def _timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="FLAME landmark-fitting throughput")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batches", type=int, nargs="*", default=None)
    ap.add_argument("--scipy-n", type=int, default=4)
    ap.add_argument("--noise", type=float, default=1.0)
    ap.add_argument("--landmark-set", default="face1609")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
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
    rates, cpu_rates = {}, {}
    for b in batches:
        best = None
        for _ in range(a.repeats):
            (_, wall, cpu) = _timed(lambda b=b: (fitter.fit(lm[:b]), sync()))
            if best is None or wall < best[0]:
                best = (wall, cpu)
        rates[b] = b / best[0]
        cpu_rates[b] = b / max(best[1], 1e-9)
        print(
            f"theseus batch {b}: {rates[b]:.1f} faces/s ({cpu_rates[b]:.1f} per CPU-s)", flush=True
        )
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
    result = {
        "bench": "fitting",
        "device": str(dev)
        + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "landmarks": int(lm.shape[1]),
        "iterations": [fitter.config.rigid_iterations, fitter.config.nonrigid_iterations],
        "faces_per_s": {str(k): round(v, 2) for k, v in rates.items()},
        "faces_per_cpu_s": {str(k): round(v, 2) for k, v in cpu_rates.items()},
        "scipy_faces_per_s": round(scipy_rate, 3),
        "scipy_faces_per_cpu_s": round(scipy_cpu_rate, 3),
        "speedup_vs_scipy": round(rates[best_b] / scipy_rate, 2) if dev.type == "cpu" else None,
        "speedup_vs_scipy_cpu_s": round(cpu_rates[best_b] / scipy_cpu_rate, 2)
        if dev.type == "cpu"
        else None,
        "cost_ratio_max": round(max(ratio), 6),
        "scipy_n": a.scipy_n,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
