"""Measure the detector-box -> training-box maps (experiments.face_detection) and write docs/detector_boxes.md.

    python -m experiments.reports.detector_boxes [--n 160] [--out docs/detector_boxes.md]

Procedural faces (yaw +-60, the DAD-format sampler's other ranges) are rendered with their exact head
box and iBUG-68 landmarks; MTCNN runs on each image. On the first half the maps are fitted (detector
box -> head box and -> 68-landmark box; the five-point box of the true landmarks -> the same boxes);
on the second half they are scored (IoU, and the crop centre's error in crop sides). On real photographs
(scikit-image's astronaut and cameraman) no true box exists: the detector box mapped is compared with
the box its own five landmarks give.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from experiments.face_detection import (
    BoxMap,
    FaceDetector,
    box_iou,
    fit_box_map,
    five_point_box,
    five_points_from_68,
)
from facemodels.flame import FlameModel
from facemodels.sampler import SamplerConfig, SceneSampler, render_scene
from facemodels.world import default_flame_dir


def _xywh_of(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]])


def procedural_samples(n: int, seed: int = 0, size: int = 256) -> dict[str, np.ndarray]:
    """Render n procedural faces and detect them; -> arrays over the detected ones: det (N, 4) xyxy,
    det5 (N, 5, 2), head (N, 4) xywh, lm68 (N, 4) xywh, true5 (N, 5, 2), yaw (N,) degrees."""
    fd = default_flame_dir()
    model = FlameModel(fd)
    sampler = SceneSampler(fd, seed, SamplerConfig(yaw_range=60.0))
    detector = FaceDetector()
    rows: dict[str, list] = {k: [] for k in ("det", "det5", "head", "lm68", "true5", "yaw")}
    for i in range(n):
        scene = sampler.sample(i)
        r = render_scene(scene, model, size)
        faces = detector.detect(r.image)
        head = np.asarray(r.bbox, np.float64)
        inside = [f for f in faces if head[0] <= (f.box[0] + f.box[2]) / 2 <= head[0] + head[2]
                  and head[1] <= (f.box[1] + f.box[3]) / 2 <= head[1] + head[3]]
        if not inside:  # no detection, or only false ones (the match is by the true head box)
            continue
        d = inside[0]
        rows["det"].append(d.box)
        rows["det5"].append(d.points5)
        rows["head"].append(head)
        rows["lm68"].append(_xywh_of(r.landmarks68_px.astype(np.float64)))
        rows["true5"].append(five_points_from_68(r.landmarks68_px))
        rows["yaw"].append(float(scene.yaw))
    return {k: np.asarray(v) for k, v in rows.items()}


def centre_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Distance between the crop centres of xywh boxes, in crop sides (max(w, h) of the true box)."""
    c = lambda b: b[:, :2] + b[:, 2:] / 2  # noqa: E731
    return np.linalg.norm(c(pred) - c(true), axis=1) / true[:, 2:].max(1)


def scale_error(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """|log| of the ratio of the crop sides max(w, h)."""
    return np.abs(np.log(pred[:, 2:].max(1) / true[:, 2:].max(1)))


def real_photos() -> list[tuple[str, np.ndarray]]:
    from skimage import data  # real photographs shipped in scikit-image (a test dependency)

    grey = data.camera()
    return [("astronaut", data.astronaut()), ("cameraman", np.repeat(grey[..., None], 3, 2))]


def measure(n: int = 160, seed: int = 0) -> tuple[dict[str, BoxMap], dict[str, BoxMap], list[str]]:
    s = procedural_samples(n, seed)
    m = len(s["det"])
    half = m // 2
    tr, te = slice(0, half), slice(half, m)
    box_maps, five_maps = {}, {}
    lines = [f"{m} of {n} procedural faces detected (yaw +-60 degrees); maps fitted on {half}, scored on "
             f"{m - half}.", "", "| convention | from | dx | dy | sw | sh | IoU mean | IoU min | centre error "
             "(crop sides) | scale error (log) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for conv in ("head", "lm68"):
        name = "head" if conv == "head" else "landmarks68"
        bm = fit_box_map(s["det"][tr], s[conv][tr], symmetric=True)
        fm = fit_box_map(five_point_box(s["true5"][tr]), s[conv][tr], symmetric=True)
        box_maps[name], five_maps[name] = bm, fm
        for label, mp, src in (("detector box", bm, s["det"][te]),
                               ("detector 5 points", fm, five_point_box(s["det5"][te])),
                               ("true 5 points", fm, five_point_box(s["true5"][te]))):
            pred = mp.apply(src)
            iou = box_iou(pred, s[conv][te])
            lines.append(f"| {name} | {label} | {mp.dx:+.3f} | {mp.dy:+.3f} | {mp.sw:.3f} | {mp.sh:.3f} | "
                         f"{iou.mean():.3f} | {iou.min():.3f} | {centre_error(pred, s[conv][te]).mean():.3f} | "
                         f"{scale_error(pred, s[conv][te]).mean():.3f} |")
    lines += ["", "Real photographs (no true box: the detector box mapped vs the box of its own five points):", "",
              "| photo | convention | IoU | centre difference (crop sides) |", "| --- | --- | --- | --- |"]
    det = FaceDetector()
    for photo, img in real_photos():
        faces = det.detect(img)
        if not faces:
            lines.append(f"| {photo} | - | no face found | - |")
            continue
        d = faces[0]
        for name in box_maps:
            a = box_maps[name].apply(d.box[None])
            b = five_maps[name].apply(five_point_box(d.points5[None]))
            lines.append(f"| {photo} | {name} | {box_iou(a, b)[0]:.3f} | {centre_error(a, b)[0]:.3f} |")
    return box_maps, five_maps, lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/detector_boxes.md")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    box_maps, five_maps, lines = measure(a.n, a.seed)
    text = ["# Detector boxes -> training crop boxes", "",
            f"Written by `python -m experiments.reports.detector_boxes --n {a.n} --seed {a.seed}` "
            "(experiments/face_detection.py holds the fitted maps).", "", *lines, "",
            "Fitted maps (the detector-box ones are `BOX_CONVENTIONS` in experiments/face_detection.py; dx = 0 "
            "by left-right symmetry):", "", "```",
            *[f"{k}: {v}" for k, v in box_maps.items()], *[f"five points {k}: {v}" for k, v in five_maps.items()],
            "```", ""]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
