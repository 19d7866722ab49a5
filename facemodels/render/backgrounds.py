"""Procedural backgrounds and occluders, fully described by small parameter dataclasses
(so a scene stores them and re-renders identically). All images are (H, W, 3) float32 in
[0, 1] until the final uint8 conversion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

BACKGROUND_KINDS = ("flat", "gradient", "noise", "stripes", "checker", "blobs")


@dataclass
class BackgroundSpec:
    """A procedural background.

    Attributes:
        kind: one of ``BACKGROUND_KINDS``.
        color_a, color_b: (3,) RGB in [0, 1].
        angle: pattern direction, radians.
        frequency: pattern cycles across the image (stripes, checker) or noise grid size.
        seed: seed of the pattern's own random parts (noise, blobs).
        grain: std of per-pixel noise added on top, in [0, 1] units.
    """

    kind: str = "gradient"
    color_a: tuple[float, float, float] = (0.2, 0.3, 0.4)
    color_b: tuple[float, float, float] = (0.7, 0.7, 0.6)
    angle: float = 0.0
    frequency: float = 4.0
    seed: int = 0
    grain: float = 0.0


@dataclass
class Occluder:
    """A flat-coloured rectangle or ellipse drawn over the rendered head.

    Attributes:
        shape: "rect" or "ellipse".
        center: (x, y) as fractions of (W, H).
        size: (width, height) as fractions of (W, H) (full extents).
        angle: rotation in radians.
        color: (3,) RGB in [0, 1].
    """

    shape: str = "rect"
    center: tuple[float, float] = (0.5, 0.5)
    size: tuple[float, float] = (0.2, 0.2)
    angle: float = 0.0
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)


def _coords(H: int, W: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates along and across ``angle``, (H, W) float32 each, image spanning [0, 1]^2."""
    y = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    return c * x + s * y, c * y - s * x


def _upsample_uint8(grid: np.ndarray, H: int, W: int) -> np.ndarray:
    """(h, w, 3) float [0, 1] -> (H, W, 3) float32 [0, 1] by PIL bilinear resampling."""
    small = Image.fromarray((np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8), mode="RGB")
    return np.asarray(small.resize((W, H), Image.BILINEAR), dtype=np.float32) * np.float32(1 / 255)


def make_background(spec: BackgroundSpec, H: int, W: int) -> np.ndarray:
    """Render a background.

    Args:
        spec: :class:`BackgroundSpec`.  H, W: pixels.
    Returns:
        (H, W, 3) float32 in [0, 1].
    """
    a = np.asarray(spec.color_a, dtype=np.float32)
    b = np.asarray(spec.color_b, dtype=np.float32)
    rng = np.random.default_rng(spec.seed)
    kind = spec.kind
    if kind == "flat":
        img = np.empty((H, W, 3), dtype=np.float32)
        img[:] = a
    elif kind in ("gradient", "stripes", "checker"):
        u, v = _coords(H, W, spec.angle)
        if kind == "gradient":
            s = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        elif kind == "stripes":
            s = 0.5 + 0.5 * np.sin(np.float32(2 * np.pi * spec.frequency) * u)
        else:
            f = np.float32(spec.frequency)
            s = ((np.floor(f * u) + np.floor(f * v)) % 2).astype(np.float32)
        img = a + (b - a) * s[..., None]
    elif kind == "noise":
        n = max(2, int(spec.frequency))
        coarse = rng.random((n, n, 1))
        tint = rng.random((n, n, 3)) * 0.3 - 0.15
        img = _upsample_uint8(a + (b - a) * coarse + tint, H, W)
    elif kind == "blobs":
        img = np.empty((H, W, 3), dtype=np.float32)
        img[:] = a
        y = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None]
        x = np.linspace(0.0, 1.0, W, dtype=np.float32)[None, :]
        for _ in range(int(rng.integers(3, 8))):
            c = rng.random(2)
            r = 0.05 + 0.25 * rng.random(2)
            m = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 <= 1.0
            img[m] = b * rng.uniform(0.5, 1.2) + rng.normal(0, 0.1, 3).astype(np.float32)
    else:
        raise ValueError(
            f"facemodels.render.make_background: unknown kind {kind!r}, expected one of {BACKGROUND_KINDS}"
        )
    if spec.grain > 0:
        img = img + np.float32(spec.grain) * rng.standard_normal((H, W, 1), dtype=np.float32)
    return np.clip(img, 0.0, 1.0, out=img if img.dtype == np.float32 else None).astype(
        np.float32, copy=False
    )


def occluder_mask(occ: Occluder, H: int, W: int) -> np.ndarray:
    """(H, W) bool mask of one occluder (pixel (i, j) sampled at x = j, y = i)."""
    cx, cy = occ.center[0] * W, occ.center[1] * H
    hw, hh = 0.5 * occ.size[0] * W, 0.5 * occ.size[1] * H
    r = float(np.hypot(hw, hh)) + 1
    i0, i1 = max(0, int(cy - r)), min(H, int(cy + r) + 1)
    j0, j1 = max(0, int(cx - r)), min(W, int(cx + r) + 1)
    mask = np.zeros((H, W), dtype=bool)
    if i0 >= i1 or j0 >= j1:
        return mask
    yy, xx = np.mgrid[i0:i1, j0:j1].astype(np.float32)
    c, s = np.cos(occ.angle), np.sin(occ.angle)
    lx = c * (xx - cx) + s * (yy - cy)  # occluder-local coordinates
    ly = -s * (xx - cx) + c * (yy - cy)
    if occ.shape == "rect":
        m = (np.abs(lx) <= hw) & (np.abs(ly) <= hh)
    elif occ.shape == "ellipse":
        m = (lx / max(hw, 1e-6)) ** 2 + (ly / max(hh, 1e-6)) ** 2 <= 1.0
    else:
        raise ValueError(
            f"facemodels.render.Occluder: shape must be 'rect' or 'ellipse', got {occ.shape!r}"
        )
    mask[i0:i1, j0:j1] = m
    return mask


def draw_occluders(img: np.ndarray, occluders: list[Occluder]) -> np.ndarray:
    """Paint occluders in order onto ``img`` in place.

    Args:
        img: (H, W, 3) float32 [0, 1].  occluders: list of :class:`Occluder`.
    Returns:
        (H, W) bool union of the occluder masks.
    """
    H, W = img.shape[:2]
    union = np.zeros((H, W), dtype=bool)
    for occ in occluders:
        m = occluder_mask(occ, H, W)
        img[m] = np.asarray(occ.color, dtype=np.float32)
        union |= m
    return union
