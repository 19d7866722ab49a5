"""Images -> landmarks, confidences, FLAME fit, meshes and overlays with a trained checkpoint.

    make predict CKPT=logs/train/runs/<run>/checkpoints/best.ckpt IMAGES=dir_or_file OUT=dir
    == python -m experiments.predict --ckpt C --images DIR_OR_FILE --out DIR
           [--bbox x,y,w,h] [--batch-size 16] [--device auto|cpu|cuda] [--iterations N]

Input: png / jpg files (a folder is read non-recursively, sorted by name). Each image is either
a face crop (used whole: padded to a square, centred, and resized to the network's input size),
or a full image with the face box given by a sidecar ``<name>.json`` ``{"bbox": [x, y, w, h]}``
(original px) or by ``--bbox x,y,w,h`` (applies to every image without a sidecar). A box is
cropped exactly as the datamodules do at test time (``datamodules.transforms.crop_matrix`` with
the training run's ``data.augment.crop_scale``, default 1.2, then ``warp_image``).

The network (rebuilt from the checkpoint alone, ``experiments.checkpoints``) runs batched; its landmarks are mapped from crop px back to original-image px with the inverse crop
matrix. FLAME is fitted in the crop frame (``build_flame_fitter`` with the model's landmark set,
confidences as weights, the crop's default intrinsics ``f = sqrt(2) S, c = (S/2, S/2)``); the
camera of the original image is ``K_image = M^-1 K_crop`` (M the similarity source->crop).

Written per image ``<name>`` into ``--out``:
    <name>_landmarks.json  landmarks_px (L, 2) original px, confidences (L,), sigma_px (L, 2)
                           original px (when the model predicts sigma), bbox, crop matrix, sizes
    <name>_landmarks.npy   (L, 3) float32: x px, y px (original image), confidence
    <name>_flame.json      shape, expression, pose (neck, jaw axis-angle rad), rot (axis-angle
                           rad), transl (m), valid, cost, K_crop, K_image, mrle_px (original px)
    <name>.obj, <name>.ply the fitted mesh, FLAME model space, metres
    <name>_overlay.png     the original image with landmarks coloured by confidence
                           (red = unsure, green = sure)

A bad image (unreadable / corrupt file, bad sidecar) is reported by name on stderr and skipped;
the run ends with a count and exits 1 if any image failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageOps

from datamodules.transforms import apply_affine, crop_matrix, normalise_image, warp_image
from experiments.checkpoints import load_system
from facemodels.flame_files import load_flame_arrays
from facemodels.world import default_flame_dir
from fitting.builder import build_flame_fitter
from fitting.flame_fit import FitterConfig
from fitting.mesh_io import write_mesh
from fitting.sanitize import SanitizeConfig
from lightning_modules.overlays import confidence_colour

log = logging.getLogger("experiments.predict")

__all__ = [
    "IMAGE_SUFFIXES",
    "PreparedImage",
    "PredictReport",
    "list_images",
    "read_sidecar_bbox",
    "parse_bbox",
    "full_image_matrix",
    "prepare_image",
    "load_model",
    "build_fitter",
    "predict_images",
    "main",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# FLAME-topology landmark sets the fitter can use (kp520 is BFM topology).
FLAME_SETS = ("ibug68", "face1609", "face805", "face403", "face202", "face101")
DEFAULT_CROP_SCALE = 1.2


@dataclass
class PreparedImage:
    """One input image after cropping.

    name: file stem (output prefix); image: (H, W, 3) uint8 original; bbox: [x, y, w, h] px or
    None (the image is a face crop); matrix: (3, 3) original px -> crop px; crop: (3, S, S)
    float32, ImageNet-normalised.
    """

    name: str
    path: Path
    image: np.ndarray
    bbox: np.ndarray | None
    matrix: np.ndarray
    crop: np.ndarray


@dataclass
class PredictReport:
    """What a run did: names written, and (name, reason) for every skipped input."""

    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


# ----------------------------------------------------------------------------------- inputs
def list_images(path: str | Path) -> list[Path]:
    """A file, or the png / jpg files of a folder (sorted, non-recursive)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"experiments.predict: --images {path} is neither a file nor a folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"experiments.predict: no {'/'.join(IMAGE_SUFFIXES)} files in {path}")
    return files


def parse_bbox(text: str) -> np.ndarray:
    """'x,y,w,h' (px) -> (4,) float64; w, h must be > 0."""
    try:
        box = np.array([float(v) for v in text.split(",")], np.float64)
    except ValueError:
        raise ValueError(f"--bbox: expected 'x,y,w,h' numbers, got {text!r}") from None
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"--bbox: expected 'x,y,w,h' with w, h > 0, got {text!r}")
    return box


def read_sidecar_bbox(image_path: Path) -> np.ndarray | None:
    """The box of ``<name>.json`` next to the image ({"bbox": [x, y, w, h]} px), else None."""
    side = image_path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{side}: not readable JSON ({e})") from None
    if not isinstance(data, dict) or "bbox" not in data:
        raise ValueError(f"{side}: expected an object with key 'bbox': [x, y, w, h]")
    try:
        box = np.asarray(data["bbox"], np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError(f"{side}: key 'bbox' must be 4 numbers [x, y, w, h], got {data['bbox']!r}") from None
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"{side}: key 'bbox' must be [x, y, w, h] with w, h > 0, got {data['bbox']!r}")
    return box


def full_image_matrix(width: int, height: int, size: int) -> np.ndarray:
    """(3, 3) original px -> crop px for a face crop used whole.

    The image is centred in a square of side max(W, H) (padding the short side) and resized to
    ``size``; pixel extents map exactly ([-0.5, side - 0.5] -> [-0.5, size - 0.5], since a pixel
    (i, j) sits at x = j, y = i). A size x size input maps by the identity.
    """
    side = float(max(width, height))
    s = size / side
    m = np.eye(3)
    m[0, 0] = m[1, 1] = s
    m[0, 2] = (0.5 + (side - width) / 2.0) * s - 0.5
    m[1, 2] = (0.5 + (side - height) / 2.0) * s - 0.5
    return m


def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 as displayed: the EXIF orientation of photos is applied, so landmark
    pixels refer to the upright picture."""
    with Image.open(path) as im:
        im.load()
        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ValueError(f"empty image {rgb.shape}")
    return rgb


def prepare_image(
    path: Path, size: int, crop_scale: float = DEFAULT_CROP_SCALE, bbox: np.ndarray | None = None
) -> PreparedImage:
    """Read and crop one image as the datamodules do at test time.

    bbox: [x, y, w, h] original px; the sidecar ``<name>.json`` wins over it; None for both ->
    the image is a face crop (:func:`full_image_matrix`). Raises OSError / ValueError naming the
    file for unreadable images and bad sidecars.
    """
    try:
        rgb = _read_rgb(path)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for broken files
        raise OSError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None
    box = read_sidecar_bbox(path)
    if box is None:
        box = bbox
    H, W = rgb.shape[:2]
    m = full_image_matrix(W, H, size) if box is None else crop_matrix(box, size, crop_scale)
    crop = warp_image(rgb, m, size)
    return PreparedImage(path.stem, path, rgb, box, m, normalise_image(crop))


# ----------------------------------------------------------------------------------- model
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("experiments.predict: --device cuda but torch sees no CUDA device")
    return dev


def load_model(ckpt: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, float]:
    """Rebuild the checkpoint's LightningModule (experiments.checkpoints); -> (model in eval mode,
    crop_scale of the run's data config (default 1.2))."""
    system = load_system(ckpt, device)
    crop_scale = DEFAULT_CROP_SCALE
    data = system.config.get("data")
    if data is not None and data.get("augment") is not None:
        crop_scale = float(data.augment.get("crop_scale", DEFAULT_CROP_SCALE))
    return system.module, crop_scale


def build_fitter(
    landmark_set: str,
    image_size: int,
    flame_dir: str | Path | None = None,
    iterations: int | None = None,
    config_path: str | Path | None = None,
):
    """The FLAME fitter of configs/fitting/default.yaml for an S x S crop (landmark_set of the model).

    iterations: overrides both rigid and non-rigid LM step counts.
    """
    if landmark_set not in FLAME_SETS:
        raise ValueError(
            f"experiments.predict: landmark_set={landmark_set!r} has no FLAME fitter; expected one of {FLAME_SETS}"
        )
    root = Path(__file__).resolve().parents[1]
    path = Path(config_path) if config_path else root / "configs" / "fitting" / "default.yaml"
    fit_cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    fc = dict(fit_cfg["config"])
    fc["image_size"] = (int(image_size), int(image_size))
    fc["sanitize"] = SanitizeConfig(**(fc.get("sanitize") or {}))
    if iterations is not None:
        fc["rigid_iterations"] = fc["nonrigid_iterations"] = int(iterations)
    known = {f.name for f in fields(FitterConfig)}
    unknown = set(fc) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys under config: {sorted(unknown)}; expected {sorted(known)}")
    flame_dir = flame_dir or fit_cfg.get("flame_dir")
    if flame_dir is None:
        flame_dir = default_flame_dir()
    fitter = build_flame_fitter(
        flame_dir, landmark_set, FitterConfig(**fc), int(fit_cfg["n_shape"]), int(fit_cfg["n_expr"])
    )
    return fitter, np.asarray(load_flame_arrays(flame_dir).faces)


# ----------------------------------------------------------------------------------- outputs
def _overlay(image: np.ndarray, landmarks_px: np.ndarray, confidences: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 with the (L, 2) landmarks drawn as dots coloured by confidence."""
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    r = max(1.0, min(image.shape[:2]) / 200.0) * (1.0 if len(landmarks_px) > 200 else 2.0)
    for (x, y), c in zip(landmarks_px, confidences, strict=True):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=confidence_colour(float(c)))
    return np.asarray(pil)


def _tolist(x: torch.Tensor | np.ndarray) -> Any:
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    return a.tolist()


def _write_one(
    out: Path,
    item: PreparedImage,
    landmark_set: str,
    size: int,
    lm_crop: np.ndarray,
    conf: np.ndarray,
    sigma_crop: np.ndarray | None,
    fit: dict[str, Any] | None,
    faces: np.ndarray | None,
) -> None:
    inv = np.linalg.inv(item.matrix)
    lm = apply_affine(inv, lm_crop)  # (L, 2) original px
    scale = float(np.sqrt(abs(np.linalg.det(item.matrix[:2, :2]))))  # crop px per original px
    H, W = item.image.shape[:2]
    record = {
        "image": item.path.name,
        "image_size": [W, H],
        "crop_size": size,
        "bbox": None if item.bbox is None else item.bbox.tolist(),
        "crop_matrix": item.matrix.tolist(),
        "landmark_set": landmark_set,
        "landmarks_px": lm.tolist(),
        "confidences": conf.tolist(),
    }
    if sigma_crop is not None:
        record["sigma_px"] = (sigma_crop / scale).tolist()
    (out / f"{item.name}_landmarks.json").write_text(json.dumps(record))
    np.save(out / f"{item.name}_landmarks.npy", np.concatenate([lm, conf[:, None]], 1).astype(np.float32))
    if fit is not None:
        fit = dict(fit)
        verts = fit.pop("vertices")
        fit["K_image"] = (inv @ np.asarray(fit["K_crop"])).tolist()
        fit["mrle_px"] = float(fit.pop("mrle_crop_px")) / scale
        (out / f"{item.name}_flame.json").write_text(json.dumps(fit))
        write_mesh(out / f"{item.name}.obj", verts, faces)
        write_mesh(out / f"{item.name}.ply", verts, faces)
    Image.fromarray(_overlay(item.image, lm, conf)).save(out / f"{item.name}_overlay.png")


def _run_batch(model, fitter, faces, items: list[PreparedImage], out: Path, device: torch.device) -> None:
    size = items[0].crop.shape[-1]
    x = torch.from_numpy(np.stack([it.crop for it in items])).to(device)
    with torch.no_grad():
        pred = model.predict_step({"image": x}, 0)
        lm = pred["landmarks_px"].float()  # (B, L, 2) crop px
        conf = pred.get("confidences")
        conf = torch.ones(lm.shape[:2], device=lm.device) if conf is None else conf.float()
        sigma = pred.get("sigma_px")
        res = None
        if fitter is not None:
            res = fitter.fit(lm, conf)
    lm_np, conf_np = lm.cpu().double().numpy(), conf.cpu().double().numpy()
    sigma_np = None if sigma is None else sigma.float().cpu().double().numpy()
    for b, item in enumerate(items):
        fit = None
        if res is not None:
            err = (res.landmarks2d[b] - lm[b]).norm(dim=-1).mean()  # crop px
            fit = {
                "shape": _tolist(res.shape[b]),
                "expression": _tolist(res.expr[b]),
                "pose": _tolist(res.pose[b]),
                "rot": _tolist(res.rot[b]),
                "transl": _tolist(res.transl[b]),
                "valid": bool(res.valid[b]),
                "cost": float(res.cost[b]),
                "K_crop": _tolist(res.K[b]),
                "mrle_crop_px": float(err),
                "vertices": res.vertices[b].detach().cpu().numpy(),
            }
        _write_one(
            out,
            item,
            getattr(model, "landmark_set", "?"),
            size,
            lm_np[b],
            conf_np[b],
            None if sigma_np is None else sigma_np[b],
            fit,
            faces,
        )


def _batches(
    paths: Sequence[Path],
    size: int,
    crop_scale: float,
    bbox: np.ndarray | None,
    batch_size: int,
    report: PredictReport,
) -> Iterator[list[PreparedImage]]:
    batch: list[PreparedImage] = []
    for p in paths:
        try:
            batch.append(prepare_image(p, size, crop_scale, bbox))
        except (OSError, ValueError) as e:
            report.failed.append((p.name, str(e)))
            print(f"experiments.predict: skipped {p.name}: {e}", file=sys.stderr, flush=True)
            continue
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def predict_images(
    model: torch.nn.Module,
    paths: Sequence[Path],
    out_dir: str | Path,
    fitter=None,
    faces: np.ndarray | None = None,
    crop_scale: float = DEFAULT_CROP_SCALE,
    bbox: np.ndarray | None = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> PredictReport:
    """Run the model (and the fitter, unless None) over image files; write the outputs per image.

    model: a LandmarkSystem in eval mode on ``device`` (``predict_step`` -> landmarks_px (B, L, 2)
    crop px, confidences (B, L), optional sigma_px (B, L, 2)); fitter: a LandmarkFitter for
    ``model.image_size`` crops on ``device`` (faces: (F, 3) mesh triangles for the meshes).
    """
    if batch_size < 1:
        raise ValueError(f"experiments.predict: batch_size must be >= 1, got {batch_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = int(model.image_size)
    device = torch.device(device)
    report = PredictReport()
    for items in _batches(paths, size, crop_scale, bbox, batch_size, report):
        _run_batch(model, fitter, faces, items, out, device)
        report.written.extend(it.name for it in items)
        log.info("wrote %d images", len(report.written))
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="checkpoint in <run>/checkpoints/ of a training run")
    ap.add_argument("--images", required=True, help="an image file or a folder of png / jpg")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--bbox", default=None, help="x,y,w,h face box (px) for images without a sidecar json")
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
    paths = list_images(a.images)
    device = _device(a.device)
    model, crop_scale = load_model(a.ckpt, device)
    if a.crop_scale is not None:
        crop_scale = a.crop_scale
    fitter, faces = None, None
    if not a.no_fit:
        fitter, faces = build_fitter(model.landmark_set, model.image_size, a.flame_dir, a.iterations, a.fit_config)
        fitter = fitter.to(device)
    report = predict_images(model, paths, a.out, fitter, faces, crop_scale, bbox, a.batch_size, device)
    print(f"experiments.predict: {len(report.written)} images written to {a.out}, {len(report.failed)} failed")
    for name, why in report.failed:
        print(f"  failed: {name}: {why}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
