"""Loader throughput: samples/s of the DAD-3DHeads DataModule at 256 x 256 with 2 workers.

Uses the procedural DAD-format data (the DataModule's defaults: 1500 train frames of 320 px,
written once, cached) unless --data-dir is given. Per sample: PNG decode + one affine warp
+ photometric augmentation (colour jitter always, blur / noise on 10 %) + ImageNet
normalisation + face1609 landmarks, visibility, vertices and camera; the annotation json is
parsed once into a cache (datamodules/dad3dheads.py). Images are decoded per sample unless
``--image-cache`` (decoded frames read from a uint8 memory map: no PNG decode; reported in
the JSON as "image_cache"). Also reports "cpu_ms_per_sample": the CPU time of one sample
measured in-process (the per-worker cost, independent of other load on the machine).
Prints one JSON line last:
{"bench": "loader", "samples_per_s": median, "spread": [min, max], ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from datamodules.dad3dheads import Dad3DHeadsDataModule


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--landmark-set", default="face1609")
    ap.add_argument("--image-cache", action="store_true")
    a = ap.parse_args()
    dm = Dad3DHeadsDataModule(data_dir=a.data_dir, landmark_set=a.landmark_set, image_size=256,
                              batch_size=a.batch_size, num_workers=a.workers, persistent_workers=True,
                              image_cache=a.image_cache)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # start the workers
    rates = []
    for _ in range(a.repeats):
        n, t0 = 0, time.perf_counter()
        for _ in range(a.batches):
            try:
                b = next(it)
            except StopIteration:
                it = iter(loader)
                b = next(it)
            n += b["image"].shape[0]
        rates.append(n / (time.perf_counter() - t0))
    # CPU time of one sample in this process (1 torch thread): what a worker spends per sample
    # independently of other load on the machine; 2 / cpu_ms bounds 2 free cores' throughput
    torch.set_num_threads(1)
    ds = dm.datasets["train"]
    c0 = time.process_time()
    for i in range(100):
        ds[i % len(ds)]
    cpu_ms = (time.process_time() - c0) / 100 * 1000
    print(json.dumps({"bench": "loader", "samples_per_s": round(statistics.median(rates), 1),
                      "spread": [round(min(rates), 1), round(max(rates), 1)], "workers": a.workers,
                      "image_size": 256, "batch_size": a.batch_size, "annotation_cache": True,
                      "image_cache": a.image_cache, "cpu_ms_per_sample": round(cpu_ms, 2),
                      "cpu_count": os.cpu_count(),
                      "load_avg_1min": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
