"""Training-step throughput (images/s) per model config, and what bounds it (torch.profiler).

One step = model_step (forward + loss) + backward + optimizer step of the config's own optimizer,
on random batches in the batch contract (learning rate set to 1e-5 so random targets cannot
make the loss diverge; data loading excluded: bench_loader measures it; the
runner writes the loader rate next to these step rates in BENCHMARKS.md). On CUDA: bf16
autocast (the trainer default there) and channels_last (the models' CUDA default); on CPU: fp32,
contiguous. Defaults: 256 px, batch 32 on CUDA; 64 px, batch 8 on CPU (``--image-size``,
``--batch-size``). Each figure is the median of per-step rates with [p10, p90] over ``--steps``
timed steps after ``--warmup`` steps.

``--profile`` (default on): torch.profiler over ``--profile-steps`` steps of the first model,
top ops by self time (CPU: self CPU time; CUDA: self CUDA time) and the forward / backward /
optimizer share of the step: the answer to "what bounds it".

The last printed line is JSON:
{"bench": "train", "device": ..., "image_size": ..., "batch_size": ...,
 "images_per_s": {model: {"median": m, "p10_p90": [a, b]}}, "profile_top_ops": [...], ...}

Usage: python -m benchmarks.bench_train [--device cuda] [--models tiny resll_convnext]
       [--image-size 256] [--batch-size 32] [--steps 10] [--threads 1] [--compile] [--smoke]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

from benchmarks.common import build_model, load_avg, random_batch, set_threads, spread, synchronize

MODELS = ["resll_convnext", "tiny", "thesis_t41_resll_exp_resnet50", "kp520_mobilenetv2"]
LOADER_FIGURE = "loader.samples_per_s"


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_step(model, batch, device: torch.device):
    """A closure running one optimisation step; returns the loss (float is not taken: no sync)."""
    model.train()
    opt = model.configure_optimizers()["optimizer"]

    from torch.profiler import record_function

    def step() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        with record_function("bench::forward"), _autocast(device):
            loss, _, _ = model.model_step(batch)
        with record_function("bench::backward"):
            loss.backward()
        with record_function("bench::optimizer"):
            opt.step()
        return loss.detach()

    return step


def time_steps(step, device: torch.device, warmup: int, steps: int, batch_size: int) -> list[float]:
    """Images/s of each timed step (synchronised on CUDA)."""
    for _ in range(warmup):
        step()
    synchronize(device)
    rates = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        synchronize(device)
        rates.append(batch_size / (time.perf_counter() - t0))
    if not torch.isfinite(loss):
        raise FloatingPointError("bench_train: non-finite loss")
    return rates


def profile_step(step, device: torch.device, steps: int, top: int = 8) -> tuple[list[dict], dict]:
    """Top ops by self time over `steps` steps: [{"op", "self_ms_per_step", "share_pct"}], and the
    forward / backward / optimizer phases' share of the step (CPU wall time inside each phase's
    record_function range; on CUDA that is launch + sync time, not kernel time)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(steps):
            step()
        synchronize(device)
    events = prof.key_averages()

    def self_time(e) -> float:  # microseconds
        if device.type == "cuda":
            return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))
        return float(e.self_cpu_time_total)

    total = sum(self_time(e) for e in events) or 1.0
    ranked = sorted(events, key=self_time, reverse=True)[:top]
    ops = [
        {"op": e.key, "self_ms_per_step": round(self_time(e) / 1000.0 / steps, 2),
         "share_pct": round(100.0 * self_time(e) / total, 1)}
        for e in ranked
    ]
    phase_us = {e.key.split("::", 1)[1]: float(e.cpu_time_total) for e in events if e.key.startswith("bench::")}
    whole = sum(phase_us.values()) or 1.0
    phases = {k: round(100.0 * v / whole, 1) for k, v in sorted(phase_us.items())}
    return ops, phases


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="training-step throughput per model config")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--image-size", type=int, default=None, help="px (default 256 on CUDA, 64 on CPU)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 32 on CUDA, 8 on CPU")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--profile-steps", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="torch.compile the net (inductor; warm-up compiles)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings for the test suite")
    a = ap.parse_args(argv)
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if a.smoke:
        a.models = ["tiny", "kp520_mobilenetv2"] if a.models == MODELS else a.models
        a.image_size, a.batch_size, a.steps, a.warmup, a.profile_steps = a.image_size or 32, a.batch_size or 2, 2, 1, 1
    size = a.image_size or (256 if cuda else 64)
    bs = a.batch_size or (32 if cuda else 8)
    threads = set_threads(a.threads)
    torch.manual_seed(0)
    rates: dict[str, dict] = {}
    top_ops: list[dict] = []
    phases: dict[str, float] = {}
    for i, name in enumerate(a.models):
        # lr 1e-5: random batches must not blow up (SGD lr 0.1 of kp520 does); timing is unaffected
        model = build_model(name, size, ("model.optimizer.lr=1e-5",)).to(dev)
        if cuda:
            model.channels_last = None  # the default: on for CUDA
        if a.compile:
            model.compile_backend = "inductor"
        model.apply_gpu_path(dev)
        batch = random_batch(model, bs, dev)
        step = make_step(model, batch, dev)
        rates[name] = spread(time_steps(step, dev, a.warmup, a.steps, bs))
        if i == 0 and not a.no_profile:
            top_ops, phases = profile_step(step, dev, a.profile_steps)
        del model, batch, step
        if cuda:
            torch.cuda.empty_cache()
    result = {
        "bench": "train",
        "device": str(dev) + (f" ({torch.cuda.get_device_name(dev)})" if cuda else ""),
        "image_size": size,
        "batch_size": bs,
        "precision": "bf16 autocast" if cuda else "fp32",
        "memory_format": "channels_last" if cuda else "contiguous",
        "compiled": bool(a.compile),
        "images_per_s": rates,
        "steps": a.steps,
        "warmup": a.warmup,
        "threads": threads,
        "load_avg_1min": load_avg(),
        "profile_model": a.models[0] if top_ops else None,
        "profile_top_ops": top_ops,
        "profile_phase_pct": phases,
        "compare_with": LOADER_FIGURE,
        "smoke": a.smoke,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
