"""Landmark inference throughput (images/s): ConvNeXt-Tiny (model=resll_convnext, 1609 landmarks)
at 256 px, eval mode, no autograd (torch.inference_mode), `predict_step` (network + sigma ->
confidences), input already on the device.

CUDA: bf16 autocast + channels_last, and with ``--compile`` also torch.compile (inductor; the
compile time is excluded, reported separately). CPU: fp32, contiguous. Batch sizes 1 and 64
(and 256 on CUDA; ``--batches``). Each figure is the median of per-call rates with [p10, p90]
over ``--repeats`` timed calls after one warm-up call.

The last printed line is JSON:
{"bench": "inference", "model": "resll_convnext", "image_size": 256, "device": ...,
 "images_per_s": {"1": {"median": m, "p10_p90": [a, b]}, "64": {...}}, ...}

Usage: python -m benchmarks.bench_inference [--device cuda] [--compile] [--batches 1 64 256]
       [--repeats 5] [--threads 1] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from benchmarks.common import build_model, load_avg, set_threads, spread, synchronize


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="landmark inference throughput")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="resll_convnext")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--batches", type=int, nargs="*", default=None, help="default 1 64 (CPU), 1 64 256 (CUDA)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="torch.compile the net (CUDA path; inductor)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings for the test suite")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if a.smoke:
        a.model, a.image_size, a.batches, a.repeats = "tiny", 32, a.batches or [1, 2], 2
    batches = a.batches or ([1, 64, 256] if cuda else [1, 64])
    threads = set_threads(a.threads)
    model = build_model(a.model, a.image_size).to(dev).eval()
    model.channels_last = None  # the default: on for CUDA, off on CPU
    model.compile_backend = "inductor" if a.compile else None
    model.apply_gpu_path(dev)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()
    g = torch.Generator().manual_seed(0)

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast:
            out = model.predict_step({"image": x}, 0)
        return out["landmarks_px"]

    rates: dict[str, dict] = {}
    compile_s = None
    for bs in batches:
        x = torch.randn(bs, 3, a.image_size, a.image_size, generator=g).to(dev)
        t0 = time.perf_counter()
        out = call(x)  # warm-up (and compilation for this shape)
        synchronize(dev)
        if a.compile and compile_s is None:
            compile_s = round(time.perf_counter() - t0, 1)
        if out.shape != (bs, model.num_landmarks, 2) or not torch.isfinite(out.float()).all():
            raise RuntimeError(f"bench_inference: bad output {tuple(out.shape)}")
        per_call = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            call(x)
            synchronize(dev)
            per_call.append(bs / (time.perf_counter() - t0))
        rates[str(bs)] = spread(per_call)
    result = {
        "bench": "inference",
        "model": a.model,
        "image_size": a.image_size,
        "landmarks": model.num_landmarks,
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if cuda else ""),
        "precision": "bf16 autocast" if cuda else "fp32",
        "memory_format": "channels_last" if model._channels_last_active else "contiguous",
        "compiled": bool(a.compile),
        "compile_s": compile_s,
        "images_per_s": rates,
        "repeats": a.repeats,
        "threads": threads,
        "load_avg_1min": load_avg(),
        "smoke": a.smoke,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
