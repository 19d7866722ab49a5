"""Loader throughput: samples/s of the DAD-3DHeads DataModule at 256 x 256 with 2 workers.

Uses the procedural DAD-format data (the DataModule's defaults: 1500 train frames of 320 px,
written once, cached) unless --data-dir is given. Per sample: PNG decode + one affine warp
+ photometric augmentation (colour jitter always, blur / noise on 10 %) + ImageNet
normalisation + face1609 landmarks, visibility, vertices and camera; the annotation json is
parsed once into a cache (datamodules/dad3dheads.py). Images are decoded per sample unless
``--image-cache`` (decoded frames read from a uint8 memory map: no PNG decode; reported in
the JSON as "image_cache").

Figures (one JSON line last, ``{"bench": "loader", "samples_per_s": median, ...}``):
- samples_per_s / spread: batches/s x batch size seen by the main process with 2 workers
  (depends on the machine's load: see load_avg_1min).
- cpu_ms_per_sample: CPU time of one sample (Dataset.__getitem__, 1 torch thread) measured
  in-process; independent of other load. 2 / cpu_ms is what 2 free cores could deliver.
- worker_cpu_ms_per_sample / main_cpu_ms_per_sample: CPU time the DataLoader's worker
  processes (read from /proc: sample + collate + shared-memory IPC) and the main process
  (receiving the batch) spent per sample during the timed loader run.
- stage_ms: the per-sample CPU-time profile of __getitem__ by stage (datamodules/stage_timer.py
  thread-CPU timers inside the real code path): read (file bytes / memory-map page-in), decode (PNG),
  warp (the one affine resample), photometric (blur, colour jitter, noise), occlusion,
  landmarks (projection of the landmark set + iBUG-68, moving the points, the crop camera),
  normalise (uint8 -> float ImageNet mean/std), to_tensor, other (cpu_ms_per_sample minus
  the timed stages); "collate" is default_collate of a batch, per sample (not in
  cpu_ms_per_sample; the workers pay it).
- target / bound_by: whether 500 samples/s (issue 4) is met and which stage dominates.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time

import torch
from torch.utils.data import default_collate

from datamodules.dad3dheads import Dad3DHeadsDataModule
from datamodules.stage_timer import StageTimer

TARGET = 500.0  # samples/s, issue 4


def _proc_cpu_s(pid: int) -> float:
    """utime + stime of a process in seconds (/proc/<pid>/stat); 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _workers_cpu_s() -> float:
    return sum(_proc_cpu_s(p.pid) for p in mp.active_children())


def profile_stages(ds, n: int, batch_size: int, batch_step=None) -> tuple[float, dict[str, float]]:
    """(cpu ms per sample, {stage: ms per sample}) of ``n`` samples of ``ds`` in this process.

    One pass with the stage timers on (their overhead is ~1 us per stage); samples are not
    kept (keeping them would add page faults of fresh memory to the figure); "collate" and
    "batch_photometric" (``batch_step(collated batch)``, the deferred jitter / noise /
    normalisation on the CPU) are timed on separate batches; the latter is added to the CPU
    figure (on a CPU-only machine someone pays it per sample)."""
    for i in range(10):  # warm caches (annotation arrays, landmark tables)
        ds[i % len(ds)]
    timer = StageTimer()
    ds.timer = timer
    c0 = time.process_time()
    for i in range(n):
        ds[i % len(ds)]
    cpu_ms = (time.process_time() - c0) / n * 1000
    ds.timer = None
    stages = timer.ms_per(n)
    stages["other"] = max(0.0, cpu_ms - sum(stages.values()))  # sample_rng, crop matrix, dict glue
    n_col, t_col, t_step = 0, 0.0, 0.0
    for j in range(0, min(n, 4 * batch_size) - batch_size + 1, batch_size):
        batch = [ds[i % len(ds)] for i in range(j, j + batch_size)]
        t0 = time.thread_time()
        batch = default_collate(batch)
        t1 = time.thread_time()
        if batch_step is not None:
            batch_step(batch)
        t_col, t_step = t_col + t1 - t0, t_step + time.thread_time() - t1
        n_col += batch_size
    stages["collate"] = 1000.0 * t_col / max(n_col, 1)
    if batch_step is not None:
        stages["batch_photometric"] = 1000.0 * t_step / max(n_col, 1)
        cpu_ms += stages["batch_photometric"]
    return cpu_ms, {k: round(v, 3) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--landmark-set", default="face1609")
    ap.add_argument("--image-cache", action="store_true")
    ap.add_argument("--profile-samples", type=int, default=192)
    ap.add_argument("--normalize-in-workers", action="store_true",
                    help="the per-sample CPU path (normalize_on_device=false) instead of uint8 batches")
    a = ap.parse_args()
    on_device = not a.normalize_in_workers
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dm = Dad3DHeadsDataModule(data_dir=a.data_dir, landmark_set=a.landmark_set, image_size=256,
                              batch_size=a.batch_size, num_workers=a.workers, persistent_workers=True,
                              image_cache=a.image_cache, normalize_on_device=on_device,
                              pin_memory=dev.type == "cuda")
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # start the workers
    rates, worker_ms, main_ms = [], [], []
    for _ in range(a.repeats):
        n, t0, c0, w0 = 0, time.perf_counter(), time.process_time(), _workers_cpu_s()
        for _ in range(a.batches):
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                b = next(it)
            # what the Trainer does with a batch: to the device, then the DataModule hook
            # (normalize_on_device: jitter / noise / occluders / normalisation of the uint8 batch)
            b = dm.on_after_batch_transfer(
                {k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v) for k, v in b.items()}, 0)
            n += b["image"].shape[0]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        rates.append(n / (time.perf_counter() - t0))
        main_ms.append((time.process_time() - c0) / n * 1000)
        worker_ms.append((_workers_cpu_s() - w0) / n * 1000)
    del it, loader
    # CPU time of one sample in this process (1 torch thread): what a worker spends per sample
    # independently of other load on the machine; 2 / cpu_ms bounds 2 free cores' throughput
    torch.set_num_threads(1)
    step = (lambda batch: dm.on_after_batch_transfer(batch, 0)) if on_device else None
    cpu_ms, stages = profile_stages(dm.datasets["train"], a.profile_samples, a.batch_size, step)
    rate = statistics.median(rates)
    top = max(stages, key=stages.get)
    result = {
        "bench": "loader", "samples_per_s": round(rate, 1),
        "spread": [round(min(rates), 1), round(max(rates), 1)], "workers": a.workers,
        "image_size": 256, "batch_size": a.batch_size, "annotation_cache": True,
        "image_cache": a.image_cache, "normalize_on_device": on_device, "batch_device": dev.type,
        "cpu_ms_per_sample": round(cpu_ms, 2),
        "worker_cpu_ms_per_sample": round(statistics.median(worker_ms), 2),
        "main_cpu_ms_per_sample": round(statistics.median(main_ms), 2),
        "stage_ms": stages,
        "free_2core_bound_samples_per_s": round(2000.0 / cpu_ms, 1),
        "target_samples_per_s": TARGET,
        "target_met": bool(rate >= TARGET),
        "bound_by": f"{top} ({stages[top]:.2f} of {cpu_ms:.2f} ms CPU per sample)",
        "cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
