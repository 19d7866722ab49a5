"""Shared image + landmark augmentation: one affine matrix per sample, one warp.

Conventions (docs/ARCHITECTURE.md): pixel (row i, column j) has coordinates x = j, y = i;
crop coordinates run over [0, S-1] for an S x S crop. Every geometric operation (crop
from the box with random enlargement and shift, scale, in-plane rotation, horizontal flip)
is folded into ONE 3x3 matrix ``M`` (source px -> crop px). The image is warped once
with ``M`` (PIL affine, bilinear) and every point set is moved with the same ``M``, so
landmarks move exactly with the pixels. A horizontal flip also re-orders each point set
with its left/right permutation (``facemodels.landmarks.flip_permutation``).

Photometric operations (colour jitter, blur, noise) and occluding boxes (Zhao et al.:
d x d boxes, d in [0.2, 0.4] x inter-eye distance, on a fraction of images; MobileFace:
black rectangles) act after the warp and never move points. Occluders do not change the
``visibility`` labels (which mean self-occlusion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from datamodules.stage_timer import StageTimer, stage

__all__ = [
    "AugmentConfig",
    "FaceCropTransform",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "crop_matrix",
    "flip_matrix",
    "warp_image",
    "apply_affine",
    "transform_camera",
    "mirror_vertices",
    "normalise_image",
    "color_jitter",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# diag(-1, 1, 1): mirror of the camera / model frame along x.
_F3 = np.diag([-1.0, 1.0, 1.0])


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


def crop_matrix(
    bbox: np.ndarray | list[float],
    size: int,
    crop_scale: float = 1.2,
    scale: float = 1.0,
    shift: tuple[float, float] = (0.0, 0.0),
    rotation_deg: float = 0.0,
) -> np.ndarray:
    """Similarity (3, 3) mapping source px -> crop px for a square crop of ``size`` px.

    bbox: [x, y, w, h] in source px. The crop is centred on the box centre
    (x + w/2, y + h/2) moved by ``shift`` (fraction of the side), side =
    crop_scale * scale * max(w, h), rotated by ``rotation_deg`` (positive = the image
    content turns counter-clockwise on screen).
    """
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0):
        raise ValueError(f"crop_matrix: bbox needs w, h > 0, got {list(bbox)}")
    side = crop_scale * scale * max(w, h)
    cx = x + 0.5 * w + shift[0] * side
    cy = y + 0.5 * h + shift[1] * side
    s = size / side
    a = math.radians(rotation_deg)
    c, sn = math.cos(a), math.sin(a)
    # Image y points down, so a counter-clockwise turn on screen is [[c, s], [-s, c]].
    rot = np.array([[c, sn], [-sn, c]])
    m = np.eye(3)
    m[:2, :2] = s * rot
    centre_out = (size - 1) / 2.0
    m[:2, 2] = np.array([centre_out, centre_out]) - m[:2, :2] @ np.array([cx, cy])
    return m


def flip_matrix(size: int) -> np.ndarray:
    """(3, 3) horizontal mirror of an S-px-wide crop: x -> (S - 1) - x."""
    return np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


def warp_image(
    image: np.ndarray | Image.Image, m: np.ndarray, size: int, fill: int = 0
) -> np.ndarray:
    """Warp an (H, W, 3) uint8 image with the (3, 3) source->crop matrix ``m``.

    Returns (size, size, 3) uint8. PIL samples at pixel centres (i + 0.5); our points
    sit on integer coordinates, so the inverse map is conjugated by a half-pixel shift.
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    inv = half @ np.linalg.inv(m) @ np.linalg.inv(half)
    coeffs = tuple(inv[:2].reshape(-1))
    out = pil.transform(
        (size, size), Image.AFFINE, data=coeffs, resample=Image.BILINEAR, fillcolor=(fill,) * 3
    )
    return np.asarray(out)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Move points with the (3, 3) matrix ``m``.

    points: (N, 2) px, or (N, 3) with z in the same px scale; z is multiplied by the
    similarity scale sqrt(|det m[:2,:2]|) (depth scales with the image, mirror and
    rotation leave it unchanged).
    """
    pts = np.asarray(points, dtype=np.float64)
    out = pts.copy()
    out[:, :2] = pts[:, :2] @ m[:2, :2].T + m[:2, 2]
    if pts.shape[1] == 3:
        out[:, 2] = pts[:, 2] * math.sqrt(abs(np.linalg.det(m[:2, :2])))
    return out


def transform_camera(
    K: np.ndarray, R: np.ndarray, t: np.ndarray, m_sim: np.ndarray, flipped: bool, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera (cv convention) of the crop, such that the crop shows ``u = K' (R' X' + t')``.

    K (3, 3) source px; R (3, 3), t (3,) model -> camera. ``m_sim`` is the crop
    similarity WITHOUT the flip. The in-plane rotation of ``m_sim`` becomes a camera roll
    (R' = Rz R, t' = Rz t) so K' stays upper-triangular. When ``flipped``, the crop shows
    the mirrored head X' = F X (F = diag(-1, 1, 1), vertices re-ordered by the flip
    permutation): K' -> Flip K' F, R' -> F R' F, t' -> F t'. Returns (K', R', t').
    """
    lin = m_sim[:2, :2]
    scale = math.sqrt(abs(np.linalg.det(lin)))
    c, sn = lin[0, 0] / scale, lin[1, 0] / scale  # lin = scale * [[c, -sn], [sn, c]]
    rz = np.array([[c, -sn, 0.0], [sn, c, 0.0], [0.0, 0.0, 1.0]])
    K2 = m_sim @ K @ rz.T
    R2, t2 = rz @ R, rz @ t
    if flipped:
        K2 = flip_matrix(size) @ K2 @ _F3
        R2, t2 = _F3 @ R2 @ _F3, _F3 @ t2
    return K2, R2, t2


def mirror_vertices(vertices: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Mirror (N, 3) model-space points along x and re-order them: out = (F v)[perm]."""
    out = vertices * np.array([-1.0, 1.0, 1.0], dtype=vertices.dtype)
    return out[perm]


_MEAN_255 = (IMAGENET_MEAN * 255.0).astype(np.float32)
_INV_STD_255 = (1.0 / (IMAGENET_STD * 255.0)).astype(np.float32)


def normalise_image(image: np.ndarray) -> np.ndarray:
    """(S, S, 3) float32 in [0, 1] or uint8 -> (3, S, S) float32, ImageNet mean/std.

    uint8 input: channel-wise subtract straight into the (3, S, S) output, then one in-place
    scale (no float temporaries of the whole image; ~8x faster than the naive expression).
    """
    if image.dtype == np.uint8:
        out = np.empty((3,) + image.shape[:2], np.float32)
        for c in range(3):
            np.subtract(image[..., c], _MEAN_255[c], out=out[c], dtype=np.float32)
        out *= _INV_STD_255[:, None, None]
        return out
    img = (image - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(img.transpose(2, 0, 1)).astype(np.float32)


def color_jitter(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    """Brightness, then saturation, then contrast on an (H, W, 3) uint8 image, as one affine
    colour map applied by PIL (rounded, clipped to 0..255):

        f1 = b f;  f2 = sat f1 + (1 - sat) gray(f1);  out = ct (f2 - m) + m,

    gray = 0.299 R + 0.587 G + 0.114 B and m = mean of gray(f1) over the image. All three
    steps are linear in f, so out = A f + (1 - ct) m with A = ct b (sat I + (1 - sat) 1 w^T).
    """
    w = np.array([0.299, 0.587, 0.114])
    A = contrast * brightness * (saturation * np.eye(3) + (1.0 - saturation) * np.outer(np.ones(3), w))
    pil = Image.fromarray(image)
    hist = np.asarray(pil.histogram(), np.float64).reshape(3, 256)  # channel means from C
    m = brightness * float((hist @ np.arange(256.0)) / hist[0].sum() @ w)
    off = (1.0 - contrast) * m
    matrix = tuple(float(v) for row in np.concatenate([A, np.full((3, 1), off)], 1) for v in row)
    return np.asarray(pil.convert("RGB", matrix))


class FaceCropTransform:
    """Crop + augment one sample.

    ``__call__(image, bbox, points, flip_perms, rng, eyes=None)``:
    image (H, W, 3) uint8; bbox [x, y, w, h] source px; points: dict name -> (N, 2|3)
    source px (z in px scale); flip_perms: dict name -> (N,) int permutation (needed for
    every name in ``points`` when a flip can happen); eyes: name of the point set and the
    two indices of the outer eye corners, for Zhao's occluders.
    Returns a dict with ``image`` (S, S, 3) uint8, ``points`` (moved, re-ordered),
    ``matrix`` (3, 3, with flip), ``matrix_sim`` (3, 3, without flip), ``flipped``.
    """

    def __init__(self, image_size: int, train: bool, config: AugmentConfig | None = None):
        self.size = int(image_size)
        self.train = bool(train)
        self.cfg = config or AugmentConfig()
        self.timer: StageTimer | None = None  # per-stage profile (benchmarks.bench_loader)

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
    ) -> dict:
        scale, shift, rot, flip = self.sample_geometry(rng)
        if flip and flip_perms is None:
            flip = False
        m_sim = crop_matrix(bbox, self.size, self.cfg.crop_scale, scale, shift, rot)
        m = flip_matrix(self.size) @ m_sim if flip else m_sim
        with stage(self.timer, "warp"):
            out_img = warp_image(image, m, self.size)
        moved = {}
        with stage(self.timer, "landmarks"):
            for name, pts in points.items():
                p = apply_affine(m, pts)
                if flip:
                    if name not in flip_perms:
                        raise KeyError(f"FaceCropTransform: no flip permutation for point set {name!r}")
                    p = p[flip_perms[name]]
                moved[name] = p
        if self.train:
            with stage(self.timer, "photometric"):
                out_img = self._photometric(out_img, rng)
            with stage(self.timer, "occlusion"):
                out_img = self._occlude(out_img, moved, eyes, rng)
        return {"image": out_img, "points": moved, "matrix": m, "matrix_sim": m_sim, "flipped": flip}

    # ----------------------------------------------------------------- photometric
    def _photometric(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.cfg
        if c.blur_prob > 0 and rng.random() < c.blur_prob:
            sigma = float(rng.uniform(*c.blur_sigma))
            img = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma)))
        if c.color_jitter > 0:
            j = c.color_jitter
            b, ct, sat = (float(rng.uniform(1 - j, 1 + j)) for _ in range(3))
            img = color_jitter(img, b, ct, sat)
        if c.noise_prob > 0 and rng.random() < c.noise_prob:
            f = img.astype(np.float32) + rng.normal(0.0, c.noise_std, size=img.shape).astype(np.float32)
            img = np.clip(f + 0.5, 0, 255).astype(np.uint8)
        return img

    def _occlude(
        self,
        img: np.ndarray,
        points: dict[str, np.ndarray],
        eyes: tuple[str, int, int] | None,
        rng: np.random.Generator,
    ) -> np.ndarray:
        c = self.cfg
        if c.occlusion == "none" or rng.random() >= c.occlusion_prob:
            return img
        img = img.copy()
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
            img[max(0, y0) : max(0, y0 + d), max(0, x0) : max(0, x0 + d)] = colour
        else:  # mobileface: black rectangles
            for _ in range(int(rng.integers(1, 4))):
                w, h = (rng.uniform(0.1, 0.4, size=2) * s).astype(int)
                x0, y0 = rng.integers(0, s - w + 1), rng.integers(0, s - h + 1)
                img[y0 : y0 + h, x0 : x0 + w] = 0
        return img
