"""Shared image + landmark augmentation of one sample: :class:`AugmentConfig` and :class:`FaceCropTransform`
(geometry: datamodules/crop_geometry.py; colour and occluders: datamodules/photometric.py).

Conventions (docs/ARCHITECTURE.md): pixel (row i, column j) has coordinates x = j, y = i;
crop coordinates run over [0, S-1] for an S x S crop. Every geometric operation (crop
from the box with random enlargement and shift, scale, in-plane rotation, horizontal flip)
is folded into ONE 3x3 matrix ``M`` (source px -> crop px). The image is warped once
with ``M`` (bilinear, :func:`warp_image`: torch grid_sample with PIL's sampling rule;
:func:`warp_image_pil` is the reference) and every point set is moved with the same ``M``,
so landmarks move exactly with the pixels. A horizontal flip also re-orders each point set
with its left/right permutation (``facemodels.landmark_sets.flip_permutation``).

Photometric operations (colour jitter, blur, noise) and occluding boxes (Zhao et al.:
d x d boxes, d in [0.2, 0.4] x inter-eye distance, on a fraction of images; MobileFace:
black rectangles) act after the warp and never move points. Occluders do not change the
``visibility`` labels (which mean self-occlusion). With ``defer_photometric`` the transform
only blurs and draws the jitter / noise / occluder parameters; they are applied to the
uint8 batch on its device (datamodules/batch_photometric.py, ``normalize_on_device``).

Speed: benchmarks/bench_loader.py profiles the whole sample (BENCHMARKS.md "loader"); why the
warp and the jitter run in torch: docs/DECISIONS.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from datamodules.crop_geometry import (
    apply_affine,
    crop_matrix,
    flip_matrix,
    warp_image,
)
from datamodules.photometric import (
    MAX_OCCLUDERS,
    color_jitter_planar,
    paint_occluders,
)
from datamodules.stage_timer import StageTimer, stage

__all__ = ["AugmentConfig", "FaceCropTransform"]


@dataclass
class AugmentConfig:
    """Augmentation knobs. Geometric ranges apply only when ``train`` is True.

    crop_scale: side of the square crop = crop_scale * max(bbox w, h).
    scale_range: random multiplier of the crop side (train), e.g. (0.9, 1.15).
    shift: random shift of the crop centre, fraction of the side (train).
    rotation_deg: uniform in-plane rotation in [-r, r] degrees (train).
    flip_prob: probability of a horizontal flip (train).
    color_jitter: strength of brightness / contrast / saturation jitter (0 = off).
    blur_prob, blur_sigma: Gaussian blur probability and sigma range in crop px.
    noise_prob, noise_std: additive Gaussian noise probability and std (0..255 units).
    occlusion: "none", "zhao" (d x d boxes, d in [0.2, 0.4] x inter-eye distance) or
        "mobileface" (1-3 black rectangles of 10-40 % of the crop side).
    occlusion_prob: fraction of images that get occluders (Zhao: 0.25).
    """

    crop_scale: float = 1.2
    scale_range: tuple[float, float] = (0.9, 1.15)
    shift: float = 0.05
    rotation_deg: float = 15.0
    flip_prob: float = 0.5
    color_jitter: float = 0.3
    blur_prob: float = 0.1
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    noise_prob: float = 0.1
    noise_std: float = 6.0
    occlusion: str = "none"
    occlusion_prob: float = 0.25

    def __post_init__(self) -> None:
        if self.occlusion not in ("none", "zhao", "mobileface"):
            raise ValueError(
                f"AugmentConfig.occlusion: expected 'none', 'zhao' or 'mobileface', "
                f"got {self.occlusion!r}"
            )
        self.scale_range = tuple(float(s) for s in self.scale_range)  # type: ignore[assignment]
        self.blur_sigma = tuple(float(s) for s in self.blur_sigma)  # type: ignore[assignment]


class FaceCropTransform:
    """Crop + augment one sample.

    ``__call__(image, bbox, points, flip_perms, rng, eyes=None)``:
    image (H, W, 3) uint8; bbox [x, y, w, h] source px; points: dict name -> (N, 2|3)
    source px (z in px scale); flip_perms: dict name -> (N,) int permutation (needed for
    every name in ``points`` when a flip can happen); eyes: name of the point set and the
    two indices of the outer eye corners, for Zhao's occluders; image_to_source: (3, 3) map
    from ``image`` px to the source px of ``bbox`` / ``points`` when ``image`` is a cut-out
    (a cached region), None when it is the source frame itself.
    Returns a dict with ``image`` (S, S, 3) uint8, ``points`` (moved, re-ordered),
    ``matrix`` (3, 3, with flip), ``matrix_sim`` (3, 3, without flip), ``flipped``,
    ``photometric`` (None, or with ``defer_photometric`` when training: the colour jitter /
    noise parameters and occluder boxes that :func:`datamodules.batch_photometric.apply_photometric`
    applies to the whole uint8 batch, on its device; the image then has only the blur).
    """

    def __init__(self, image_size: int, train: bool, config: AugmentConfig | None = None,
                 defer_photometric: bool = False):
        self.size = int(image_size)
        self.train = bool(train)
        self.cfg = config or AugmentConfig()
        self.defer_photometric = bool(defer_photometric)
        self.timer: StageTimer | None = None  # per-stage profile (benchmarks.bench_loader)
        # the reference path (benchmarks.bench_loader): warp_image_pil, color_jitter
        self.warp_fn = warp_image
        self.jitter_fn = color_jitter_planar

    def sample_geometry(self, rng: np.random.Generator) -> tuple[float, tuple, float, bool]:
        """(scale, shift, rotation_deg, flip) for one sample; identity when not training."""
        if not self.train:
            return 1.0, (0.0, 0.0), 0.0, False
        c = self.cfg
        scale = float(rng.uniform(*c.scale_range))
        shift = (float(rng.uniform(-c.shift, c.shift)), float(rng.uniform(-c.shift, c.shift)))
        rot = float(rng.uniform(-c.rotation_deg, c.rotation_deg))
        flip = bool(rng.random() < c.flip_prob)
        return scale, shift, rot, flip

    def __call__(
        self,
        image: np.ndarray | Image.Image,
        bbox: np.ndarray | list[float],
        points: dict[str, np.ndarray],
        flip_perms: dict[str, np.ndarray] | None,
        rng: np.random.Generator,
        eyes: tuple[str, int, int] | None = None,
        image_to_source: np.ndarray | None = None,
    ) -> dict:
        scale, shift, rot, flip = self.sample_geometry(rng)
        if flip and flip_perms is None:
            flip = False
        m_sim = crop_matrix(bbox, self.size, self.cfg.crop_scale, scale, shift, rot)
        m = flip_matrix(self.size) @ m_sim if flip else m_sim
        with stage(self.timer, "warp"):
            out_img = self.warp_fn(image, m if image_to_source is None else m @ image_to_source, self.size)
        moved = {}
        with stage(self.timer, "landmarks"):
            for name, pts in points.items():
                p = apply_affine(m, pts)
                if flip:
                    if name not in flip_perms:
                        raise KeyError(f"FaceCropTransform: no flip permutation for point set {name!r}")
                    p = p[flip_perms[name]]
                moved[name] = p
        photometric = None
        if self.train and self.defer_photometric:
            with stage(self.timer, "photometric"):
                out_img, photometric = self._photometric_params(out_img, rng)
            with stage(self.timer, "occlusion"):
                photometric["occluders"] = self._occluders(moved, eyes, rng)
        elif self.train:
            with stage(self.timer, "photometric"):
                out_img = self._photometric(out_img, rng)
            with stage(self.timer, "occlusion"):
                out_img = paint_occluders(out_img, self._occluders(moved, eyes, rng))
        return {"image": out_img, "points": moved, "matrix": m, "matrix_sim": m_sim, "flipped": flip,
                "photometric": photometric}

    # ----------------------------------------------------------------- photometric
    def _draw_photometric(self, rng: np.random.Generator) -> tuple[float | None, np.ndarray | None, bool]:
        """The photometric decisions of one sample, in the one order both paths use: blur sigma
        (None: no blur), jitter (3,) float64 [brightness, contrast, saturation] each
        U(1 - j, 1 + j) (None when ``color_jitter`` is 0), and whether noise is added."""
        c = self.cfg
        sigma = float(rng.uniform(*c.blur_sigma)) if c.blur_prob > 0 and rng.random() < c.blur_prob else None
        jitter = None
        if c.color_jitter > 0:
            j = c.color_jitter
            jitter = np.array([float(rng.uniform(1 - j, 1 + j)) for _ in range(3)])
        noise = bool(c.noise_prob > 0 and rng.random() < c.noise_prob)
        return sigma, jitter, noise

    def _photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per-sample photometric step on the (S, S, 3) uint8 crop: blur, colour jitter, noise."""
        sigma, jitter, noise = self._draw_photometric(rng)
        if sigma is not None:
            img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma)))
        if jitter is not None:
            img = self.jitter_fn(img, *(float(v) for v in jitter))
        if noise:
            f = img.astype(np.float32) + rng.normal(0.0, self.cfg.noise_std, size=img.shape).astype(np.float32)
            img = np.clip(f + 0.5, 0, 255).astype(np.uint8)
        return img

    def _photometric_params(self, img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        """Deferred photometric step: blur now (rare, before the jitter as in :meth:`_photometric`),
        draw the jitter / noise parameters for :func:`datamodules.batch_photometric.apply_photometric`
        (the draws of :meth:`_photometric`, except that noise draws one seed instead of the noise
        image). Returns (image, {"jitter": (3,) float32 [brightness, contrast, saturation],
        "noise_std": () float32 (0: none), "noise_seed": int64})."""
        sigma, jitter, noise = self._draw_photometric(rng)
        if sigma is not None:
            img = np.asarray(Image.fromarray(np.ascontiguousarray(img)).filter(ImageFilter.GaussianBlur(sigma)))
        noise_std, seed = (float(self.cfg.noise_std), int(rng.integers(0, 2**62))) if noise else (0.0, 0)
        jit = np.ones(3, np.float32) if jitter is None else jitter.astype(np.float32)
        return img, {"jitter": jit, "noise_std": np.array(noise_std, np.float32), "noise_seed": np.int64(seed)}

    def _occluders(
        self,
        points: dict[str, np.ndarray],
        eyes: tuple[str, int, int] | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """(MAX_OCCLUDERS, 8) float32 rows [x0, y0, x1, y1, r, g, b, valid] of the occluding
        boxes of one crop (crop px, half-open, clipped to the crop; valid 0 = unused row)."""
        c = self.cfg
        boxes = np.zeros((MAX_OCCLUDERS, 8), np.float32)
        if c.occlusion == "none" or rng.random() >= c.occlusion_prob:
            return boxes
        s = self.size
        if c.occlusion == "zhao":
            if eyes is None or eyes[0] not in points:
                raise ValueError("occlusion='zhao' needs the eye-corner landmarks (eyes=...)")
            pts = points[eyes[0]]
            d_eyes = float(np.linalg.norm(pts[eyes[1], :2] - pts[eyes[2], :2]))
            d = max(1, int(round(rng.uniform(0.2, 0.4) * d_eyes)))
            lo = np.clip(pts[:, :2].min(0), 0, s - 1)
            hi = np.clip(pts[:, :2].max(0), 0, s - 1)
            cx, cy = rng.uniform(lo, hi + 1e-6)
            x0, y0 = int(cx - d / 2), int(cy - d / 2)
            colour = rng.integers(0, 256, size=3, dtype=np.uint8)
            boxes[0] = [max(0, x0), max(0, y0), min(s, max(0, x0 + d)), min(s, max(0, y0 + d)), *colour, 1]
        else:  # mobileface: black rectangles
            for k in range(int(rng.integers(1, 4))):
                w, h = (rng.uniform(0.1, 0.4, size=2) * s).astype(int)
                x0, y0 = rng.integers(0, s - w + 1), rng.integers(0, s - h + 1)
                boxes[k] = [x0, y0, x0 + w, y0 + h, 0, 0, 0, 1]
        return boxes
