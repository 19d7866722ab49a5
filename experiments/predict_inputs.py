"""Which faces a picture holds and their crops, for ``experiments.predict``.

A face comes from a sidecar ``<name>.json`` ``{"bbox": [x, y, w, h]}`` (original px), a ``--bbox``, the
face detector (its box mapped to the run's box convention) or the whole picture (a face crop). It is
cropped exactly as the datamodules crop at test time (``datamodules.crop_geometry.crop_matrix`` with the
run's ``crop_scale``, then ``warp_image``, ImageNet-normalised).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hydra.utils import get_class
from omegaconf import DictConfig

from datamodules.crop_geometry import crop_matrix, warp_image
from datamodules.photometric import normalise_image
from experiments.face_detection import BOX_CONVENTIONS, Detection, FaceDetector
from experiments.media_io import Frame, read_rgb

__all__ = ["DEFAULT_CROP_SCALE", "PreparedFace", "box_convention", "faces_in", "full_image_matrix",
           "parse_bbox", "prepare_image", "read_sidecar_bbox"]

DEFAULT_CROP_SCALE = 1.2


@dataclass
class PreparedFace:
    """One face ready for the network.

    name: output prefix; frame: the picture it is in; bbox: [x, y, w, h] px of the crop box, None for a
    face crop used whole; detection: the detector's face, None when the box was given or the picture is a
    crop; matrix: (3, 3) picture px -> crop px; crop: (3, S, S) float32, ImageNet-normalised.
    """

    name: str
    frame: Frame
    bbox: np.ndarray | None
    detection: Detection | None
    matrix: np.ndarray
    crop: np.ndarray

    @property
    def image(self) -> np.ndarray:
        return self.frame.rgb



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


def prepare_image(
    path: Path, size: int, crop_scale: float = DEFAULT_CROP_SCALE, bbox: np.ndarray | None = None
) -> PreparedFace:
    """Read one image and crop its one face as the datamodules do at test time.

    bbox: [x, y, w, h] original px; the sidecar ``<name>.json`` wins over it; None for both -> the image
    is a face crop (:func:`full_image_matrix`). Raises OSError / ValueError naming the file for unreadable
    images and bad sidecars.
    """
    frame = Frame(path.stem, path, None, read_rgb(path))
    box = read_sidecar_bbox(path)
    return _crop(frame.name, frame, bbox if box is None else box, None, size, crop_scale)


def _crop(name: str, frame: Frame, box: np.ndarray | None, det: Detection | None, size: int,
          crop_scale: float) -> PreparedFace:
    H, W = frame.rgb.shape[:2]
    m = full_image_matrix(W, H, size) if box is None else crop_matrix(box, size, crop_scale)
    return PreparedFace(name, frame, box, det, m, normalise_image(warp_image(frame.rgb, m, size)))


def box_convention(config: DictConfig | None) -> str:
    """The crop-box convention of a run's data (a key of ``face_detection.BOX_CONVENTIONS``): the data
    module class's ``box_convention`` attribute, "head" when the run config names no data module."""
    target = None if config is None or config.get("data") is None else config.data.get("_target_")
    if not target:
        return "head"
    return str(getattr(get_class(target), "box_convention", "head"))


def faces_in(
    frame: Frame,
    size: int,
    crop_scale: float,
    mode: str = "auto",
    bbox: np.ndarray | None = None,
    detector: FaceDetector | None = None,
    convention: str = "head",
) -> list[PreparedFace]:
    """The faces of one picture, cropped for the network: the box of a sidecar json or ``bbox`` when there
    is one; else the picture whole (``mode`` "whole") or every detected face ("auto")."""
    side = read_sidecar_bbox(frame.source) if frame.index is None else None
    box = side if side is not None else bbox
    if box is not None:
        return [_crop(frame.name, frame, box, None, size, crop_scale)]
    if mode == "whole":
        return [_crop(frame.name, frame, None, None, size, crop_scale)]
    if detector is None:
        raise ValueError("experiments.predict: --faces auto without a box needs a face detector")
    to_box = BOX_CONVENTIONS[convention]
    return [_crop(f"{frame.name}_{k}", frame, to_box.apply(d.box), d, size, crop_scale)
            for k, d in enumerate(detector.detect(frame.rgb))]
