"""Photos, folders and videos -> faces -> landmarks, confidences, FLAME fits, meshes and pictures.

    make predict CKPT=logs/train/runs/<run>/checkpoints/best.ckpt IMAGES=photo_folder_or_video OUT=dir
    == python -m experiments.predict --ckpt C --images PATH --out DIR
           [--faces auto|whole] [--bbox x,y,w,h] [--batch-size 16] [--device auto|cpu|cuda]
           [--iterations N] [--every N] [--no-fit]

Input: an image file (png, jpg, bmp, tif, webp; any size and mode: grey, palette, RGBA, 16-bit; the
EXIF orientation is applied), a video (mp4, mov, avi, mkv, webm: every ``--every``-th frame), or a
folder of them (sorted by name, not recursive). Which faces each picture holds:

- a sidecar ``<name>.json`` ``{"bbox": [x, y, w, h]}`` (original px) or ``--bbox`` gives one face;
- otherwise, ``--faces auto`` (default): every face the detector finds (experiments.face_detection:
  MTCNN, weights inside its pip package), its box mapped to the box convention the network was trained
  with (the run's data: the head box for DAD-3DHeads-style data, the 68-landmark box for 300W-LP);
  ``--faces whole``: the picture is a face crop, used whole (padded to a square, centred, resized).

A box is cropped exactly as the datamodules do at test time (``datamodules.crop_geometry.crop_matrix``
with the run's ``data.augment.crop_scale``, default 1.2, then ``warp_image``). The network (rebuilt from
the checkpoint alone, ``experiments.checkpoints``) runs batched; its landmarks are mapped back to
original px with the inverse crop matrix. FLAME is fitted in the crop frame (confidences as weights, the
crop's default intrinsics ``f = sqrt(2) S, c = (S/2, S/2)``); the camera of the original picture is
``K_image = M^-1 K_crop`` (M the similarity picture px -> crop px).

Written into ``--out`` per face ``<face>`` (``<name>`` for a face crop or a given box, ``<name>_<k>``
for the k-th detected face; video frames are named ``<video>_f<frame>``):
    <face>_landmarks.json  landmarks_px (L, 2) original px, confidences (L,), sigma_px (L, 2) when the
                           model predicts it, bbox, crop matrix, sizes; for a detected face the detector's
                           box, score and five points, and ``five_point_error``: the predicted five points
                           (eye centres, nose tip, mouth corners) against the detector's, mean distance /
                           the detector's eye distance
    <face>_landmarks.npy   (L, 3) float32: x px, y px (original picture), confidence
    <face>_flame.json      shape, expression, pose (neck, jaw axis-angle rad), rot (axis-angle rad),
                           transl (m), valid, cost, K_crop, K_image, mrle_px (original px)
    <face>.obj, <face>.ply the fitted mesh, FLAME model space, metres
per picture ``<name>_overlay.png`` (a photo; every face: the fitted mesh shaded over it, the landmarks
coloured by confidence, red = unsure, green = sure), per video ``<video>_overlay.mp4``, for more than one
photo ``contact_sheet.png``, and ``summary.json`` (counts, failures, pictures without a face, timings).

Bad input: an unreadable file or a bad sidecar is named on stderr and skipped; a picture without a face
is named; the rest is still written. Exit code: 0 when every input gave a face; bit 1 set when a file
could not be read, bit 2 set when a picture had no face (so 1, 2 or 3).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from PIL import Image
from rich.progress import Progress

from datamodules.crop_geometry import apply_affine
from experiments.checkpoints import load_system
from experiments.face_detection import BOX_CONVENTIONS, Detection, FaceDetector, five_points_from_68
from experiments.media_io import (
    VIDEO_SUFFIXES,
    Frame,
    VideoWriter,
    iter_frames,
    list_inputs,
    video_rate,
)
from experiments.predict_inputs import (
    DEFAULT_CROP_SCALE,
    PreparedFace,
    box_convention,
    faces_in,
    parse_bbox,
)
from experiments.predict_pictures import FaceDrawing, contact_sheet, draw_faces
from facemodels.flame_files import load_flame_arrays
from facemodels.landmark_sets import landmark_set_names
from facemodels.world import default_flame_dir
from fitting.builder import fitter_from_config
from fitting.fit_loop import embed68
from fitting.mesh_io import write_mesh
from fitting.reprojection import project

log = logging.getLogger("experiments.predict")

__all__ = [
    "PredictReport",
    "build_fitter",
    "load_model",
    "main",
    "predict",
]

FLAME_SETS = landmark_set_names("flame")  # the sets the FLAME fitter can use (kp520 is BFM topology)
SMALL_FACE_PX = 40  # a detected face narrower than this is flagged (the crop is upsampled a lot)


@dataclass
class PredictReport:
    """What a run did: faces written, (name, reason) for every input that could not be read, the pictures
    without a face, the number of pictures, and the seconds spent per stage."""

    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    pictures: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    five_point_errors: list[float] = field(default_factory=list)

    def add_time(self, stage: str, t0: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    @property
    def exit_code(self) -> int:
        return (1 if self.failed else 0) | (2 if self.no_face else 0)


# ----------------------------------------------------------------------------------- model
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("experiments.predict: --device cuda but torch sees no CUDA device")
    return dev


def _crop_scale(config: DictConfig) -> float:
    data = config.get("data")
    if data is not None and data.get("augment") is not None:
        return float(data.augment.get("crop_scale", DEFAULT_CROP_SCALE))
    return DEFAULT_CROP_SCALE


def load_model(ckpt: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, float]:
    """Rebuild the checkpoint's LightningModule (experiments.checkpoints); -> (model in eval mode,
    crop_scale of the run's data config (default 1.2))."""
    system = load_system(ckpt, device)
    return system.module, _crop_scale(system.config)


def build_fitter(
    landmark_set: str,
    image_size: int,
    flame_dir: str | Path | None = None,
    iterations: int | None = None,
    config_path: str | Path | None = None,
):
    """The FLAME fitter of configs/fitting/default.yaml (or ``config_path``) for S x S crops and the
    model's landmark set; -> (fitter, its FLAME folder). iterations: overrides both LM stages."""
    if landmark_set not in FLAME_SETS:
        raise ValueError(
            f"experiments.predict: landmark_set={landmark_set!r} has no FLAME fitter; expected one of {FLAME_SETS}"
        )
    path = Path(config_path) if config_path else Path(__file__).resolve().parents[1] / "configs" / "fitting" / "default.yaml"
    block = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    block["landmark_set"] = landmark_set
    if flame_dir is not None:
        block["flame_dir"] = str(flame_dir)
    return fitter_from_config(block, int(image_size), landmark_set, iterations, origin=str(path))


# ----------------------------------------------------------------------------------- outputs
def _tolist(x: torch.Tensor | np.ndarray) -> Any:
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return a.tolist()


def _five_point_error(pred5: np.ndarray, det: Detection) -> float:
    """Mean distance of the predicted five points to the detector's / the detector's eye distance."""
    iod = float(np.linalg.norm(det.points5[0] - det.points5[1]))
    return float(np.linalg.norm(pred5 - det.points5, axis=1).mean() / max(iod, 1e-9))


@dataclass
class _FaceResult:
    face: PreparedFace
    landmarks_px: np.ndarray  # (L, 2) original px
    confidences: np.ndarray  # (L,)
    drawing: FaceDrawing


def _run_batch(model, fitter, flame, flame_dir, faces: list[PreparedFace], out: Path, device: torch.device,
               report: PredictReport) -> list[_FaceResult]:
    """Network + fit for a batch of faces; writes each face's files; -> what the pictures need."""
    size = faces[0].crop.shape[-1]
    t0 = time.perf_counter()
    x = torch.from_numpy(np.stack([f.crop for f in faces])).to(device)
    with torch.no_grad():
        pred = model.predict_step({"image": x}, 0)
        lm = pred["landmarks_px"].float()  # (B, L, 2) crop px
        conf = pred.get("confidences")
        conf = torch.ones(lm.shape[:2], device=lm.device) if conf is None else conf.float()
        sigma = pred.get("sigma_px")
    report.add_time("network", t0)
    res, pts68 = None, None
    if fitter is not None:
        t0 = time.perf_counter()
        res = fitter.fit(lm, conf)
        pts68 = project(embed68(res.vertices_camera, flame, flame_dir), res.K)  # (B, 68, 2) crop px
        report.add_time("fit", t0)
    t0 = time.perf_counter()
    lm_np, conf_np = lm.cpu().double().numpy(), conf.cpu().double().numpy()
    sigma_np = None if sigma is None else sigma.float().cpu().double().numpy()
    landmark_set = getattr(model, "landmark_set", "?")
    results = []
    for b, face in enumerate(faces):
        inv = np.linalg.inv(face.matrix)
        lm_img = apply_affine(inv, lm_np[b])
        scale = float(np.sqrt(abs(np.linalg.det(face.matrix[:2, :2]))))  # crop px per original px
        H, W = face.image.shape[:2]
        record: dict[str, Any] = {
            "image": face.frame.source.name,
            "frame": face.frame.index,
            "image_size": [W, H],
            "crop_size": size,
            "bbox": None if face.bbox is None else face.bbox.tolist(),
            "crop_matrix": face.matrix.tolist(),
            "landmark_set": landmark_set,
            "landmarks_px": lm_img.tolist(),
            "confidences": conf_np[b].tolist(),
        }
        if sigma_np is not None:
            record["sigma_px"] = (sigma_np[b] / scale).tolist()
        drawing = FaceDrawing(lm_img, conf_np[b])
        if res is not None:
            K_image = inv @ res.K[b].detach().cpu().double().numpy()
            fit = {"shape": _tolist(res.shape[b]), "expression": _tolist(res.expr[b]), "pose": _tolist(res.pose[b]),
                   "rot": _tolist(res.rot[b]), "transl": _tolist(res.transl[b]), "valid": bool(res.valid[b]),
                   "cost": float(res.cost[b]), "K_crop": _tolist(res.K[b]), "K_image": K_image.tolist(),
                   "mrle_px": float((res.landmarks2d[b] - lm[b]).norm(dim=-1).mean()) / scale}
            (out / f"{face.name}_flame.json").write_text(json.dumps(fit))
            verts = res.vertices[b].detach().cpu().numpy()
            write_mesh(out / f"{face.name}.obj", verts, flame.faces)
            write_mesh(out / f"{face.name}.ply", verts, flame.faces)
            drawing.vertices_camera = res.vertices_camera[b].detach().cpu().double().numpy()
            drawing.K_image = K_image
        if face.detection is not None:
            d = face.detection
            drawing.box = d.box
            record["detection"] = {"box": d.box.tolist(), "score": d.score, "points5": d.points5.tolist(),
                                   "small_face": d.side < SMALL_FACE_PX}
            pred5 = None
            if landmark_set == "ibug68":
                pred5 = five_points_from_68(lm_img)
            elif pts68 is not None:
                pred5 = five_points_from_68(apply_affine(inv, pts68[b].detach().cpu().double().numpy()))
            if pred5 is not None:
                record["five_point_error"] = _five_point_error(pred5, d)
                report.five_point_errors.append(record["five_point_error"])
        (out / f"{face.name}_landmarks.json").write_text(json.dumps(record))
        np.save(out / f"{face.name}_landmarks.npy",
                np.concatenate([lm_img, conf_np[b][:, None]], 1).astype(np.float32))
        report.written.append(face.name)
        results.append(_FaceResult(face, lm_img, conf_np[b], drawing))
    report.add_time("write", t0)
    return results


def _draw_and_flush(pending: list[tuple[Frame, list[_FaceResult]]], out: Path, mesh_faces, videos: dict,
                    sheet: list[np.ndarray], with_sheet: bool) -> None:
    """The pictures of finished frames: a photo's overlay png (none without a face), a video frame into
    its overlay mp4."""
    for frame, results in pending:
        if frame.index is None and not results:
            continue
        picture = draw_faces(frame.rgb, [r.drawing for r in results], mesh_faces)
        if frame.index is None:
            Image.fromarray(picture).save(out / f"{frame.name}_overlay.png")
            if with_sheet:
                sheet.append(np.asarray(Image.fromarray(picture).resize(
                    (max(1, picture.shape[1] * 256 // max(picture.shape[:2])),
                     max(1, picture.shape[0] * 256 // max(picture.shape[:2]))))))
        else:
            if frame.source not in videos:
                videos[frame.source] = VideoWriter(out / f"{frame.source.stem}_overlay.mp4", video_rate(frame.source))
            videos[frame.source].write(picture)
    pending.clear()


def predict(
    model: torch.nn.Module,
    inputs: Sequence[Path],
    out_dir: str | Path,
    fitter=None,
    flame_dir: str | Path | None = None,
    crop_scale: float = DEFAULT_CROP_SCALE,
    faces_mode: str = "auto",
    bbox: np.ndarray | None = None,
    detector: FaceDetector | None = None,
    convention: str = "head",
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    every: int = 1,
    progress: bool = False,
) -> PredictReport:
    """Run detection, the model and the fitter (unless None) over image and video files; write every
    output (module doc). model: a LandmarkSystem in eval mode on ``device``; fitter: a LandmarkFitter for
    ``model.image_size`` crops on ``device``, of the FLAME model in ``flame_dir``."""
    if batch_size < 1:
        raise ValueError(f"experiments.predict: batch_size must be >= 1, got {batch_size}")
    if faces_mode not in ("auto", "whole"):
        raise ValueError(f"experiments.predict: faces must be 'auto' or 'whole', got {faces_mode!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = int(model.image_size)
    device = torch.device(device)
    flame_dir = Path(flame_dir or default_flame_dir())
    flame = None if fitter is None else load_flame_arrays(flame_dir)
    mesh_faces = None if flame is None else np.asarray(flame.faces)
    report = PredictReport()
    queue: list[PreparedFace] = []
    pending: list[tuple[Frame, list[_FaceResult]]] = []  # frames whose faces are all in the queue
    done: dict[int, list[_FaceResult]] = {}
    videos: dict[Path, VideoWriter] = {}
    sheet: list[np.ndarray] = []
    with_sheet = sum(p.suffix.lower() not in VIDEO_SUFFIXES for p in inputs) > 1

    def run_queue() -> None:
        for s in range(0, len(queue), batch_size):
            for r in _run_batch(model, fitter, flame, flame_dir, queue[s : s + batch_size], out, device, report):
                done.setdefault(id(r.face.frame), []).append(r)
        queue.clear()
        for frame, results in pending:
            results.extend(done.pop(id(frame), []))
        _draw_and_flush(pending, out, mesh_faces, videos, sheet, with_sheet)

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("predict", total=len(inputs))
        for path in inputs:
            bar.update(task, description=path.name)
            try:
                for frame in iter_frames(path, every):
                    report.pictures += 1
                    t0 = time.perf_counter()
                    try:
                        faces = faces_in(frame, size, crop_scale, faces_mode, bbox, detector, convention)
                    except ValueError as e:  # a bad sidecar
                        report.failed.append((path.name, str(e)))
                        print(f"experiments.predict: skipped {path.name}: {e}", file=sys.stderr, flush=True)
                        continue
                    finally:
                        report.add_time("detect", t0)
                    if not faces:
                        report.no_face.append(frame.name)
                        print(f"experiments.predict: no face found in {frame.name}", file=sys.stderr, flush=True)
                    queue.extend(faces)
                    pending.append((frame, []))
                    if len(queue) >= batch_size:
                        run_queue()
            except OSError as e:  # unreadable image or video
                report.failed.append((path.name, str(e)))
                print(f"experiments.predict: skipped {path.name}: {e}", file=sys.stderr, flush=True)
            bar.advance(task)
        run_queue()
    for writer in videos.values():
        writer.close()
    if sheet:
        Image.fromarray(contact_sheet(sheet)).save(out / "contact_sheet.png")
    errs = np.asarray(report.five_point_errors)
    summary = {"pictures": report.pictures, "faces": len(report.written), "failed": report.failed,
               "no_face": report.no_face, "seconds": report.seconds,
               "five_point_error": None if errs.size == 0 else
               {"mean": float(errs.mean()), "median": float(np.median(errs)), "n": int(errs.size)}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="checkpoint of a training run (or a shipped weights file)")
    ap.add_argument("--images", required=True, help="an image or video file, or a folder of them")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--faces", default="auto", choices=["auto", "whole"],
                    help="pictures without a box: auto = detect every face, whole = the picture is a face crop")
    ap.add_argument("--bbox", default=None, help="x,y,w,h face box (px) for images without a sidecar json")
    ap.add_argument("--box-convention", default=None, choices=sorted(BOX_CONVENTIONS),
                    help="the training crop box a detection maps to (default: from the run's data)")
    ap.add_argument("--min-face", type=int, default=20, help="smallest face the detector looks for, px")
    ap.add_argument("--every", type=int, default=1, help="every N-th frame of a video")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--crop-scale", type=float, default=None, help="default: the run's data.augment.crop_scale")
    ap.add_argument("--iterations", type=int, default=None, help="LM steps per fitting stage (default: config)")
    ap.add_argument("--fit-config", default=None, help="fitting config yaml (default configs/fitting/default.yaml)")
    ap.add_argument("--flame-dir", default=None, help="FLAME folder (default: the procedural world)")
    ap.add_argument("--no-fit", action="store_true", help="landmarks and overlays only")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    bbox = parse_bbox(a.bbox) if a.bbox else None
    inputs = list_inputs(a.images)
    device = _device(a.device)
    system = load_system(a.ckpt, device)
    model = system.module
    crop_scale = a.crop_scale if a.crop_scale is not None else _crop_scale(system.config)
    fitter, flame_dir = None, None
    if not a.no_fit:
        fitter, flame_dir = build_fitter(model.landmark_set, model.image_size, a.flame_dir, a.iterations, a.fit_config)
        fitter = fitter.to(device)
    detector = None
    if a.faces == "auto" and bbox is None:
        detector = FaceDetector(device, min_face_px=a.min_face)
    report = predict(model, inputs, a.out, fitter, flame_dir, crop_scale, a.faces, bbox, detector,
                     a.box_convention or box_convention(system.config), a.batch_size, device, a.every,
                     progress=sys.stderr.isatty())
    print(f"experiments.predict: {len(report.written)} faces in {report.pictures} pictures written to {a.out}; "
          f"{len(report.failed)} failed, {len(report.no_face)} without a face")
    for name, why in report.failed:
        print(f"  failed: {name}: {why}")
    for name in report.no_face:
        print(f"  no face: {name}")
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
