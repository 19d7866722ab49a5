"""Photometric augmentation on the host: ImageNet normalisation, colour jitter (one affine colour map,
:func:`jitter_matrix`, the formula datamodules/batch_photometric.py applies on the device too) and
occluding boxes. None of it moves points. Why the jitter runs in torch: docs/DECISIONS.md.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from datamodules.crop_geometry import one_torch_thread

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "normalise_image", "GRAY_WEIGHTS", "jitter_matrix", "color_jitter",
           "color_jitter_planar", "MAX_OCCLUDERS", "paint_occluders"]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_MEAN_255 = (IMAGENET_MEAN * 255.0).astype(np.float32)
_INV_STD_255 = (1.0 / (IMAGENET_STD * 255.0)).astype(np.float32)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """(S, S, 3) float32 in [0, 1] or uint8 -> (3, S, S) float32, ImageNet mean/std.

    uint8 input: channel-wise subtract straight into the (3, S, S) output, then one in-place
    scale (no float temporaries of the whole image; faster than the naive expression).
    """
    if image.dtype == np.uint8:
        out = np.empty((3,) + image.shape[:2], np.float32)
        for c in range(3):
            np.subtract(image[..., c], _MEAN_255[c], out=out[c], dtype=np.float32)
        out *= _INV_STD_255[:, None, None]
        return out
    img = (image - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32)


GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, PIL's "L" conversion


def jitter_matrix(
    brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor, gray: torch.Tensor | None = None
) -> torch.Tensor:
    """The colour-jitter matrix ``A = ct b (sat I + (1 - sat) 1 w^T)`` (w = :data:`GRAY_WEIGHTS`),
    the one formula every path uses (:func:`color_jitter`, :func:`color_jitter_planar`,
    ``datamodules.batch_photometric``). brightness, contrast, saturation: (...) tensors of one
    dtype and device -> (..., 3, 3) in that dtype; ``gray``: the (3,) weights already on that
    device (a CUDA caller passes its cached copy: building it here would be a host->device copy).

    Brightness, then saturation, then contrast on an image f are all linear:
    ``f1 = b f;  f2 = sat f1 + (1 - sat) gray(f1);  out = ct (f2 - m) + m = A f + (1 - ct) m``
    with ``m = b w . mean(f)``, the mean grey level of the brightened image.
    """
    b, ct, sat = brightness, contrast, saturation
    w = torch.tensor(GRAY_WEIGHTS, dtype=b.dtype, device=b.device) if gray is None else gray
    eye = torch.eye(3, dtype=b.dtype, device=b.device)
    return (ct * b)[..., None, None] * (sat[..., None, None] * eye + (1.0 - sat)[..., None, None] * w.expand(3, 3))


def _jitter_matrix64(brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    """(3, 3) float64 :func:`jitter_matrix` of Python floats."""
    b, ct, sat = (torch.tensor(float(v), dtype=torch.float64) for v in (brightness, contrast, saturation))
    return jitter_matrix(b, ct, sat)


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness, then saturation, then contrast on an (H, W, 3) uint8 image, as one affine
    colour map (:func:`jitter_matrix`) applied by PIL (rounded, clipped to 0..255); the
    reference of :func:`color_jitter_planar`. m = mean grey level of the brightened image.
    """
    w = np.array(GRAY_WEIGHTS)
    A = _jitter_matrix64(brightness, contrast, saturation).numpy()
    pil = Image.fromarray(image)
    hist = np.asarray(pil.histogram(), np.float64).reshape(3, 256)  # channel means from C
    m = brightness * float((hist @ np.arange(256.0)) / hist[0].sum() @ w)
    off = (1.0 - contrast) * m
    matrix = tuple(float(v) for row in np.concatenate([A, np.full((3, 1), off)], 1) for v in row)
    return np.asarray(pil.convert("RGB", matrix))


def color_jitter_planar(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """:func:`color_jitter` (same formula, same rounding: + 0.5, truncate, clip to 0..255) as one
    3 x 3 matrix product in torch on the channel planes. (H, W, 3) uint8 in, (H, W, 3) uint8 out
    as a view of a channel-first buffer (``np.transpose(out, (2, 0, 1))`` is contiguous). With
    :func:`warp_image`'s channel-first output no HWC copy is made, which PIL needs first
    (docs/DECISIONS.md)."""
    H, W = image.shape[:2]
    with one_torch_thread():
        x = torch.from_numpy(np.ascontiguousarray(np.transpose(image, (2, 0, 1)))).reshape(3, H * W).float()
        w = torch.tensor(GRAY_WEIGHTS)
        m = brightness * float(torch.dot(x.mean(1), w))  # channel means: exact (integer sums < 2^24)
        A = _jitter_matrix64(brightness, contrast, saturation).float()
        off = torch.full((3, 1), (1.0 - contrast) * m + 0.5)
        y = torch.addmm(off, A, x).floor_().clamp_(0.0, 255.0).to(torch.uint8)
    return y.numpy().reshape(3, H, W).transpose(1, 2, 0)


MAX_OCCLUDERS = 3  # mobileface draws 1-3 rectangles, zhao one box


def paint_occluders(img: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 image with the valid rows of ``boxes`` ((K, 8) [x0, y0, x1, y1, r, g,
    b, valid], crop px) painted in their colours (a copy when any box is valid)."""
    valid = boxes[:, 7] > 0
    if not valid.any():
        return img
    img = img.copy()
    for x0, y0, x1, y1, r, g, b, _ in boxes[valid].astype(np.int64):
        img[y0:y1, x0:x1] = (r, g, b)
    return img
