"""Photos in, meshes out: `make predict`'s rate end to end (photos/s), and where the time goes.

A real photograph (scikit-image's astronaut, 512 x 512, one face) is copied ``--photos`` times into a
folder; experiments.predict runs over it with face detection (MTCNN), the landmark network
(``--model``, default resll_convnext at ``--image-size``, random weights: the rate does not depend on
them), the two-stage FLAME fit (``--iterations`` LM steps per stage) and every output written (json,
npy, obj, ply, the overlay picture with the shaded mesh, the contact sheet). Median of ``--repeats``
timed runs after a warm-up run; the per-stage seconds per photo are those of the median run.

The last printed line is JSON:
{"bench": "predict", "device": ..., "photos_per_s": {"median": m, "p10_p90": [a, b]},
 "seconds_per_photo": {"detect": ..., "network": ..., "fit": ..., "write": ..., "pictures": ...}, ...}

Usage: python -m benchmarks.bench_predict [--device cuda] [--photos 16] [--batch-size 16] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from benchmarks.common import build_model, load_avg, set_threads, spread
from experiments.face_detection import FaceDetector
from experiments.media_io import list_inputs
from experiments.predict import build_fitter, predict


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="make predict, end to end")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", default="resll_convnext")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--photos", type=int, default=None, help="default 8 (CPU), 64 (CUDA)")
    ap.add_argument("--batch-size", type=int, default=None, help="default = photos")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny settings for the test suite")
    a = ap.parse_args(argv)
    from skimage import data  # the real photograph (scikit-image ships it)

    dev = torch.device(a.device)
    if a.smoke:
        a.model, a.image_size, a.photos, a.iterations, a.repeats = "tiny", 32, 2, 2, 1
    photos = a.photos or (64 if dev.type == "cuda" else 8)
    batch = a.batch_size or photos
    threads = set_threads(a.threads)
    model = build_model(a.model, a.image_size).to(dev).eval()
    model.apply_gpu_path(dev)
    fitter, flame_dir = build_fitter(model.landmark_set, model.image_size, iterations=a.iterations)
    fitter = fitter.to(dev)
    detector = FaceDetector(dev)
    work = Path(tempfile.mkdtemp(prefix="bench_predict_"))
    try:
        src = work / "in"
        src.mkdir()
        Image.fromarray(data.astronaut()).save(src / "p0000.jpg", quality=95)
        for i in range(1, photos):
            shutil.copy(src / "p0000.jpg", src / f"p{i:04d}.jpg")
        inputs = list_inputs(src)
        runs = []
        for r in range(a.repeats + 1):
            out = work / f"out{r}"
            t0 = time.perf_counter()
            report = predict(model, inputs, out, fitter, flame_dir, detector=detector, batch_size=batch, device=dev)
            wall = time.perf_counter() - t0
            if len(report.written) != photos:
                raise RuntimeError(f"bench_predict: {len(report.written)} faces for {photos} photos")
            if r > 0:  # the first run warms up
                runs.append((photos / wall, wall, dict(report.seconds)))
            shutil.rmtree(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    runs.sort(key=lambda x: x[0])
    rate, wall, secs = runs[len(runs) // 2]
    per = {k: round(v / photos, 4) for k, v in secs.items()}
    per["pictures_and_rest"] = round(wall / photos - sum(secs.values()) / photos, 4)
    result = {
        "bench": "predict", "device": str(dev), "model": a.model, "image_size": a.image_size,
        "photos": photos, "batch_size": batch, "lm_iterations": a.iterations, "threads": threads,
        "photos_per_s": spread([x[0] for x in runs]), "seconds_per_photo": per, "load_avg": load_avg(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
