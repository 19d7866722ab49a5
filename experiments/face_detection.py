"""Faces in whole photographs: a face detector whose weights ship inside its pip package, and the map
from its box to the crop box the networks were trained with.

The detector is facenet-pytorch's MTCNN (Zhang et al. 2016; its three networks, 2.0 MB, are inside
the wheel, so it runs offline). facenet-pytorch pins an old torch in its metadata, so the install
puts it in without its dependencies (scripts/install.sh) and the tests check it runs with ours.

Box conventions (:data:`BOX_CONVENTIONS`): a network is trained on crops around one kind of box,
``[x, y, w, h]`` px, and ``crop_matrix(box, size, crop_scale)`` takes a square of side
``crop_scale * max(w, h)`` around the box centre:

- ``head``: the box of the projected head vertices (DAD-3DHeads' ``bbox``, the procedural DAD-format
  images);
- ``landmarks68``: the box of the 68 landmarks (300W-LP, AFLW2000-3D, the 3DDFA protocol).

A :class:`BoxMap` turns a detector box into such a box: centre moved by ``(dx, dy)`` detector
sides, size ``(sw, sh)`` detector sides (side = sqrt(w h) of the detector box). The maps are fitted by
:func:`fit_box_map` on procedural images, where the exact boxes are known
(experiments/reports/detector_boxes.py writes docs/detector_boxes.md and the numbers below), and
checked on real photographs through the detector's five landmarks (:func:`five_point_box`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "BOX_CONVENTIONS",
    "BoxMap",
    "Detection",
    "FaceDetector",
    "box_iou",
    "fit_box_map",
    "five_point_box",
    "five_points_from_68",
]


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` (4,) [x0, y0, x1, y1] px; ``score`` in [0, 1]; ``points5`` (5, 2) px:
    the eye on the image's left, the other eye, the nose tip, the mouth corner on the image's left,
    the other mouth corner (MTCNN's order)."""

    box: np.ndarray
    score: float
    points5: np.ndarray

    @property
    def side(self) -> float:
        """sqrt(w h) of the box, px."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return float(np.sqrt(max(w, 0.0) * max(h, 0.0)))


@dataclass(frozen=True)
class BoxMap:
    """Detector box [x0, y0, x1, y1] -> training box [x, y, w, h]: centre + (dx, dy) * side, size
    (sw, sh) * side, side = sqrt(w h) of the detector box (all unitless)."""

    dx: float
    dy: float
    sw: float
    sh: float

    def apply(self, box: np.ndarray) -> np.ndarray:
        """(..., 4) xyxy px -> (..., 4) xywh px."""
        box = np.asarray(box, np.float64)
        w, h = box[..., 2] - box[..., 0], box[..., 3] - box[..., 1]
        side = np.sqrt(np.clip(w, 0, None) * np.clip(h, 0, None))
        cx = 0.5 * (box[..., 0] + box[..., 2]) + self.dx * side
        cy = 0.5 * (box[..., 1] + box[..., 3]) + self.dy * side
        bw, bh = self.sw * side, self.sh * side
        return np.stack([cx - bw / 2, cy - bh / 2, bw, bh], -1)


def fit_box_map(detector_boxes: np.ndarray, true_boxes: np.ndarray, symmetric: bool = False) -> BoxMap:
    """The :class:`BoxMap` from (N, 4) xyxy detector boxes to (N, 4) xywh true boxes: each of dx, dy, sw,
    sh is the median over the pairs of its value in detector sides (robust to a few bad detections).
    symmetric: the faces' mirror images count too, so dx = 0 (a left-right symmetric convention)."""
    d = np.asarray(detector_boxes, np.float64)
    g = np.asarray(true_boxes, np.float64)
    if d.ndim != 2 or d.shape[1] != 4 or g.shape != d.shape or len(d) < 1:
        raise ValueError(f"fit_box_map: expected two (N, 4) arrays, N >= 1; got {d.shape} and {g.shape}")
    side = np.sqrt((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))
    ox = (g[:, 0] + g[:, 2] / 2) - (d[:, 0] + d[:, 2]) / 2
    oy = (g[:, 1] + g[:, 3] / 2) - (d[:, 1] + d[:, 3]) / 2
    med = lambda v: float(np.median(v / side))  # noqa: E731
    return BoxMap(0.0 if symmetric else med(ox), med(oy), med(g[:, 2]), med(g[:, 3]))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of (..., 4) xywh boxes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x0 = np.maximum(a[..., 0], b[..., 0])
    y0 = np.maximum(a[..., 1], b[..., 1])
    x1 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y1 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter)


def five_points_from_68(lm68: np.ndarray) -> np.ndarray:
    """(..., 68, 2) iBUG-68 px -> (..., 5, 2) in MTCNN's order: the centres of the eyes (36-41 is the
    subject's right eye, on the image's left in a frontal view), the nose tip (30), the mouth corners
    (48, 54)."""
    lm = np.asarray(lm68, np.float64)
    return np.stack([lm[..., 36:42, :].mean(-2), lm[..., 42:48, :].mean(-2), lm[..., 30, :],
                     lm[..., 48, :], lm[..., 54, :]], -2)


def five_point_box(points5: np.ndarray) -> np.ndarray:
    """(..., 5, 2) px -> (..., 4) xyxy: a square box on the five points, side twice the distance from
    the eyes' midpoint to the mouth's, centred between them. It stands in for a detector box where
    only the five points are trusted (the same :class:`BoxMap` kinds are fitted for it)."""
    p = np.asarray(points5, np.float64)
    eyes, mouth = p[..., 0:2, :].mean(-2), p[..., 3:5, :].mean(-2)
    c = 0.5 * (eyes + mouth)
    half = np.linalg.norm(mouth - eyes, axis=-1)
    return np.stack([c[..., 0] - half, c[..., 1] - half, c[..., 0] + half, c[..., 1] + half], -1)


# MTCNN box -> training box, fitted by experiments/reports/detector_boxes.py on procedural faces
# (docs/detector_boxes.md: 240 faces, yaw +-60; dx = 0 by left-right symmetry).
BOX_CONVENTIONS: dict[str, BoxMap] = {
    "head": BoxMap(dx=0.0, dy=0.129, sw=1.052, sh=1.756),
    "landmarks68": BoxMap(dx=0.0, dy=0.108, sw=0.807, sh=0.959),
}


class FaceDetector:
    """MTCNN on (H, W, 3) uint8 RGB images; faces below ``min_score`` or smaller than
    ``min_face_px`` are dropped (the networks need a face of some tens of pixels).

    Args:
        device: where the three networks run ("cpu", "cuda", ...).
        min_face_px: the detector's smallest face (MTCNN's ``min_face_size``), px.
        min_score: the smallest face probability kept.
    """

    def __init__(self, device: torch.device | str = "cpu", min_face_px: int = 20, min_score: float = 0.9) -> None:
        try:
            from facenet_pytorch import MTCNN  # an optional dependency: predict on photos only
        except ImportError as e:  # pragma: no cover - exercised where it is missing
            raise ImportError(
                "face detection needs facenet-pytorch (its MTCNN weights ship in the wheel); install it "
                "without its dependencies, which pin an old torch: pip install --no-deps facenet-pytorch==2.6.0"
            ) from e
        self.device = torch.device(device)
        self.min_score = float(min_score)
        self.mtcnn = MTCNN(keep_all=True, min_face_size=int(min_face_px), device=self.device)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces of one (H, W, 3) uint8 image, most probable first."""
        return self.detect_batch([image])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Faces of each image; images of one size run as one batch."""
        out: list[list[Detection]] = [[] for _ in images]
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ValueError(f"FaceDetector: expected (H, W, 3) uint8 images, got {im.shape} {im.dtype}")
            by_size.setdefault(im.shape, []).append(i)
        for idx in by_size.values():
            stack = np.stack([images[i] for i in idx])
            with torch.no_grad():
                boxes, probs, points = self.mtcnn.detect(stack, landmarks=True)
            for i, b, p, q in zip(idx, boxes, probs, points, strict=True):
                if b is None:
                    continue
                faces = [Detection(np.asarray(bb, np.float64), float(pp), np.asarray(qq, np.float64))
                         for bb, pp, qq in zip(b, p, q, strict=True) if pp is not None and float(pp) >= self.min_score]
                out[i] = sorted(faces, key=lambda d: -d.score)
        return out
