"""Benchmark the CPU renderer: images per second at 256x256 for a FLAME-sized head.

Renders procedural-world scenes (5023 vertices / 9976 faces) when ``facemodels.flame`` and
the default world are available, else a 4990-vertex / 9976-face ellipsoid with the same
poses. Timing covers ``render_mesh`` only (projection, normals, shading, rasterisation,
background, occluders, visibility); ``render_scene`` (FLAME forward + albedo + render) is
timed separately when the world is available. ``images_per_cpu_s`` divides by this
process's CPU time (a fairer figure on a machine shared with other jobs; compare
``load_avg_1min``). The last printed line is JSON:
{"bench": "render", "images_per_s": median, "spread": [p10, p90], ...}.

Usage: python benchmarks/bench_render.py [--n 60] [--size 256] [--ssaa 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from facemodels.albedo import vertex_albedo
from facemodels.flame import FlameModel
from facemodels.render import render_mesh
from facemodels.sampler import (
    SamplerConfig,
    SceneSampler,
    _assets,
    render_scene,
    scene_camera,
    scene_geometry,
)
from facemodels.world import default_flame_dir


def _scenes_and_meshes(n: int, size: int, ssaa: int):
    """[(render_mesh kwargs)] for n sampled scenes of the procedural FLAME head, its label, (sampler, model)."""
    from facemodels.render import render_mesh  # noqa: F401  (import cost outside timing)

    fd = default_flame_dir()
    model = FlameModel(fd)
    sampler = SceneSampler(fd, seed=123, config=SamplerConfig(ssaa=ssaa))
    assets = _assets(str(fd))
    jobs = []
    for i in range(n):
        sc = sampler.sample(i)
        V, _ = scene_geometry(sc, model)
        K, R, t = scene_camera(sc, V, size)
        alb = vertex_albedo(assets.regions, assets.template, sc.albedo, assets.faces)
        jobs.append(dict(vertices=V, faces=assets.faces, K=K, R=R, t=t, albedo=alb, size=size,
                         lighting=sc.lighting, background=sc.background, occluders=sc.occluders, ssaa=ssaa))
    return jobs, "procedural FLAME head (5023 v / 9976 f)", (sampler, model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="images per timing round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ssaa", type=int, default=1)
    args = ap.parse_args()


    jobs, label, full = _scenes_and_meshes(args.n, args.size, args.ssaa)
    for j in jobs[:3]:  # warm-up
        render_mesh(**j)
    rates, cpu_rates = [], []
    for _ in range(args.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        for j in jobs:
            render_mesh(**j)
        rates.append(len(jobs) / (time.perf_counter() - t0))
        cpu_rates.append(len(jobs) / (time.process_time() - c0))
    per_image = []
    for j in jobs:
        t0 = time.perf_counter()
        render_mesh(**j)
        per_image.append(time.perf_counter() - t0)
    result = {
        "bench": "render",
        "images_per_s": round(float(np.median(rates)), 1),
        "spread": [
            round(float(np.percentile(rates, 10)), 1),
            round(float(np.percentile(rates, 90)), 1),
        ],
        "images_per_cpu_s": round(float(np.median(cpu_rates)), 1),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "ms_per_image_p50_p90": [
            round(1e3 * float(np.median(per_image)), 2),
            round(1e3 * float(np.percentile(per_image, 90)), 2),
        ],
        "size": args.size,
        "ssaa": args.ssaa,
        "mesh": label,
        "images_per_round": len(jobs),
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }

    sampler, model = full
    t0 = time.perf_counter()
    m = min(len(jobs), 30)
    for i in range(m):
        render_scene(sampler.sample(i), model, args.size)
    result["render_scene_images_per_s"] = round(m / (time.perf_counter() - t0), 1)
    print(f"renderer: {result['images_per_s']} images/s (p10-p90 {result['spread']}) on {label}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
