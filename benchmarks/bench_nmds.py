"""Our batched non-metric MDS (fitting.nmds.smacof_nmds) vs sklearn.manifold.MDS (non-metric),
on the same inputs in the same run: time per face and Kruskal stress-1 ratio (ours / sklearn).

Inputs: ``--faces`` random 3D point sets of ``--points`` points (anisotropic Gaussian, a
face-sized cloud), dissimilarities = exp(true distance) - 1 (a monotone distortion: only the
order is informative) times log-normal noise (sigma ``--noise``), symmetrised, float64. Both
methods start from classical MDS and run at most 300 SMACOF iterations with eps 1e-6; sklearn
solves one face at a time (its API), ours the whole batch in one call. Stress-1 of both
configurations is measured by the same function (fitting.nmds.kruskal_stress1) against the
same dissimilarities. Times: median of ``--repeats`` runs with [p10, p90].

The last printed line is JSON:
{"bench": "nmds", "ours_ms_per_face": {...}, "sklearn_ms_per_face": {...}, "speedup": ...,
 "stress_ratio_median": ..., "stress_ratio_max": ..., ...}

Usage: python -m benchmarks.bench_nmds [--faces 32] [--points 68] [--device cpu] [--threads 1] [--smoke]
"""

from __future__ import annotations

import argparse
import inspect
import json
import time

import numpy as np
import torch

from benchmarks.common import load_avg, set_threads, spread, synchronize
from fitting.nmds import kruskal_stress1, pairwise_distances, smacof_nmds


def dissimilarities(faces: int, points: int, noise: float, seed: int = 0) -> torch.Tensor:
    """(B, n, n) float64 symmetric, zero diagonal: a monotone distortion of 3D distances + noise."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(faces, points, 3, generator=g, dtype=torch.float64)
    x = x * torch.tensor([1.0, 1.3, 0.6], dtype=torch.float64)
    d = torch.expm1(pairwise_distances(x))
    d = d * torch.exp(noise * torch.randn(faces, points, points, generator=g, dtype=torch.float64))
    eye = torch.eye(points, dtype=torch.float64)
    return 0.5 * (d + d.transpose(1, 2)) * (1 - eye)


def sklearn_mds(max_iter: int, eps: float):
    """sklearn's non-metric MDS on precomputed dissimilarities, classical-MDS start (both APIs:
    `metric_mds` / `metric="precomputed"` from sklearn 1.8, `metric` / `dissimilarity` before)."""
    from sklearn.manifold import MDS

    params = inspect.signature(MDS).parameters
    kw = dict(n_components=3, n_init=1, max_iter=max_iter, eps=eps, random_state=0)
    if "metric_mds" in params:
        kw.update(metric_mds=False, metric="precomputed")
    else:
        kw.update(metric=False, dissimilarity="precomputed")
    if "init" in params:
        kw["init"] = "classical_mds"
    return MDS(**kw)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="batched non-metric MDS vs sklearn")
    ap.add_argument("--faces", type=int, default=32)
    ap.add_argument("--points", type=int, default=68)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--max-iter", type=int, default=300)
    ap.add_argument("--eps", type=float, default=1e-6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="device of our batched solver (sklearn is CPU)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--smoke", action="store_true", help="tiny settings for the test suite")
    a = ap.parse_args(argv)
    if a.smoke:
        a.faces, a.points, a.repeats, a.max_iter = 2, 12, 1, 50
    threads = set_threads(a.threads)
    dev = torch.device(a.device)
    d = dissimilarities(a.faces, a.points, a.noise)
    d_dev = d.to(dev)

    sklearn_mds(a.max_iter, a.eps).fit_transform(d[0].numpy())  # warm-up (imports, joblib)
    ours_ms, res = [], None
    smacof_nmds(d_dev[:1], n_iter=2)  # warm-up (allocator, kernels)
    for _ in range(a.repeats):
        synchronize(dev)
        t0 = time.perf_counter()
        res = smacof_nmds(d_dev, n_iter=a.max_iter, eps=a.eps)
        synchronize(dev)
        ours_ms.append((time.perf_counter() - t0) * 1000 / a.faces)
    ours_stress = kruskal_stress1(res.points.cpu(), d)

    theirs_ms, emb = [], []
    for r in range(a.repeats):
        t0 = time.perf_counter()
        out = [sklearn_mds(a.max_iter, a.eps).fit_transform(d[b].numpy()) for b in range(a.faces)]
        theirs_ms.append((time.perf_counter() - t0) * 1000 / a.faces)
        if r == 0:
            emb = out
    theirs_stress = kruskal_stress1(torch.from_numpy(np.stack(emb)), d)
    ratio = (ours_stress / theirs_stress.clamp_min(1e-12)).numpy()
    ours, theirs = spread(ours_ms, 3), spread(theirs_ms, 3)
    result = {
        "bench": "nmds",
        "faces": a.faces,
        "points": a.points,
        "noise": a.noise,
        "max_iter": a.max_iter,
        "eps": a.eps,
        "device": str(dev),
        "ours_ms_per_face": ours,
        "sklearn_ms_per_face": theirs,
        "speedup": round(theirs["median"] / max(ours["median"], 1e-9), 1),
        "ours_iterations": res.n_iter,
        "ours_stress_median": round(float(ours_stress.median()), 5),
        "sklearn_stress_median": round(float(theirs_stress.median()), 5),
        "stress_ratio_median": round(float(np.median(ratio)), 4),
        "stress_ratio_max": round(float(ratio.max()), 4),
        "repeats": a.repeats,
        "threads": threads,
        "load_avg_1min": load_avg(),
        "smoke": a.smoke,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
