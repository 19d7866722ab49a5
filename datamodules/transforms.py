"""Shared image + landmark augmentation: one affine matrix per sample, one warp.

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

import contextlib
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
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
    "warp_image_pil",
    "apply_affine",
    "transform_camera",
    "mirror_vertices",
    "normalise_image",
    "GRAY_WEIGHTS",
    "jitter_matrix",
    "color_jitter",
    "color_jitter_planar",
    "paint_occluders",
    "MAX_OCCLUDERS",
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


def warp_image_pil(
    image: np.ndarray | Image.Image, m: np.ndarray, size: int, fill: int = 0
) -> np.ndarray:
    """Reference warp (PIL ``Image.transform`` AFFINE, bilinear; PIL truncates to uint8):
    (H, W, 3) uint8 -> (size, size, 3) uint8 with the (3, 3) source->crop matrix ``m``.
    :func:`warp_image` is the fast equivalent.

    PIL samples at pixel centres (i + 0.5); our points sit on integer coordinates, so the
    inverse map is conjugated by a half-pixel shift.
    """
    pil = image if isinstance(image, Image.Image) else Image.fromarray(image)
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    inv = half @ np.linalg.inv(m) @ np.linalg.inv(half)
    coeffs = tuple(inv[:2].reshape(-1))
    out = pil.transform(
        (size, size), Image.AFFINE, data=coeffs, resample=Image.BILINEAR, fillcolor=(fill,) * 3
    )
    return np.asarray(out)


_HALF = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])  # our px -> PIL's (centres at +0.5)
_MAX_WINDOW_RATIO = 12  # source window area / crop area above which warp_image uses PIL


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the enclosed small torch ops on one intra-op thread (restored afterwards). A 256 px
    warp split over OpenMP threads gains nothing and, on a loaded machine, waits for
    descheduled threads (docs/DECISIONS.md); DataLoader workers already use 1 thread, this
    covers the main process (num_workers=0, experiments.predict, the batch step on the CPU)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@functools.lru_cache(maxsize=8)
def _base_grid(size: int) -> torch.Tensor:
    """(size * size, 3) float32 rows (x_n, y_n, 1) of the output grid, normalised to [-1, 1]
    with align_corners=True, x fastest (the layout of ``affine_grid``)."""
    lin = torch.linspace(-1.0, 1.0, size)
    return torch.stack([lin[None, :].expand(size, size), lin[:, None].expand(size, size),
                        torch.ones(size, size)], -1).reshape(-1, 3).contiguous()


def _outside_mask(inv: np.ndarray, W: int, H: int, size: int) -> np.ndarray:
    """(size, size) bool: crop pixels (i, j) whose source point ``inv (j, i, 1)`` leaves
    [-0.5, W - 0.5) x [-0.5, H - 0.5). Per row the inside pixels form one interval of j (the
    source is affine in j), found in O(size); the mask is two broadcast comparisons."""
    i = np.arange(size, dtype=np.float64)
    lo, hi = np.full(size, -np.inf), np.full(size, np.inf)
    for row, limit in ((0, W), (1, H)):
        a, k = inv[row, 0], inv[row, 1] * i + inv[row, 2]  # source coordinate = a j + k
        if abs(a) < 1e-12:  # constant along the row: the whole row is in or out
            out_row = (k < -0.5) | (k >= limit - 0.5)
            lo[out_row], hi[out_row] = np.inf, -np.inf
            continue
        b1, b2 = (-0.5 - k) / a, (limit - 0.5 - k) / a
        lo, hi = np.maximum(lo, np.minimum(b1, b2)), np.minimum(hi, np.maximum(b1, b2))
    j = np.arange(size, dtype=np.float64)[None, :]
    return (j < lo[:, None]) | (j >= hi[:, None])


def warp_image(
    image: np.ndarray | Image.Image, m: np.ndarray, size: int, fill: int = 0
) -> np.ndarray:
    """Warp an (H, W, C) (or (H, W)) uint8 image with the (3, 3) source->crop matrix ``m``;
    see :func:`_warp_image` (runs on one torch thread, :func:`one_torch_thread`)."""
    with one_torch_thread():
        return _warp_image(image, m, size, fill)


def _warp_image(
    image: np.ndarray | Image.Image, m: np.ndarray, size: int, fill: int = 0
) -> np.ndarray:
    """Warp an (H, W, C) (or (H, W)) uint8 image with the (3, 3) source->crop matrix ``m``.

    Returns (size, size, C) (or (size, size)) uint8: crop pixel (i, j) is the bilinear
    sample of the source at ``m^-1 (j, i, 1)`` (integer pixel coordinates, as the landmarks),
    rounded to nearest. Same sampling rule as PIL's bilinear affine (:func:`warp_image_pil`):
    inside the half-pixel-extended frame [-0.5, W - 0.5) x [-0.5, H - 0.5) neighbours are
    clamped to the edge, outside it the pixel is ``fill``; values differ from PIL's by at most
    1 level (PIL truncates, this rounds).

    Implementation: torch ``grid_sample`` on float32 of only the source window the crop
    touches (so a large frame costs no more than a small one), faster than PIL's warp
    (docs/DECISIONS.md). The HWC result is a view of a channel-first buffer, so
    ``np.transpose(out, (2, 0, 1))`` is contiguous without a copy. A window more than 12x the
    crop's area (a > 3.5x downscale) goes to PIL's warp instead (its cost depends on the
    output only; it truncates, so values may be one level lower there).
    """
    src = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) and image.mode not in ("RGB", "L")
                     else image)
    if src.dtype != np.uint8:
        raise ValueError(f"warp_image: expected a uint8 image, got {src.dtype}")
    gray = src.ndim == 2
    if gray:
        src = src[..., None]
    H, W = src.shape[:2]
    inv = np.linalg.inv(np.asarray(m, np.float64))
    corners = np.array([[0.0, 0.0, 1.0], [size - 1.0, 0.0, 1.0], [0.0, size - 1.0, 1.0],
                        [size - 1.0, size - 1.0, 1.0]]) @ inv.T  # (4, 3) source px
    lo, hi = corners[:, :2].min(0), corners[:, :2].max(0)
    x0, y0 = max(0, int(math.floor(lo[0])) - 1), max(0, int(math.floor(lo[1])) - 1)
    x1, y1 = min(W, int(math.ceil(hi[0])) + 2), min(H, int(math.ceil(hi[1])) + 2)
    C = src.shape[2]
    if (x1 - x0) * (y1 - y0) > _MAX_WINDOW_RATIO * size * size and C in (1, 3):
        # a strong downscale of a large frame: converting the whole window to float would cost
        # more than PIL's output-driven warp (same sampling rule, truncating instead of rounding)
        pil = Image.fromarray(src[..., 0] if gray else src)
        inv_half = _HALF @ inv @ np.linalg.inv(_HALF)
        out_pil = pil.transform((size, size), Image.AFFINE, data=tuple(inv_half[:2].reshape(-1)),
                                resample=Image.BILINEAR, fillcolor=fill if gray else (fill,) * 3)
        return np.asarray(out_pil)
    if x1 - x0 < 2 or y1 - y0 < 2:  # the crop misses the frame (or a 1-px frame): all fill
        out = np.full((size, size, C), fill, np.uint8)
        return out[..., 0] if gray else out
    win = torch.from_numpy(src[y0:y1, x0:x1].astype(np.float32)).permute(2, 0, 1)[None]  # (1, C, h, w)
    h, w = y1 - y0, x1 - x0
    # output normalised coords (align_corners: -1 .. 1 over 0 .. size-1) -> window normalised
    n_in = np.array([[2.0 / (w - 1), 0.0, -2.0 * x0 / (w - 1) - 1.0],
                     [0.0, 2.0 / (h - 1), -2.0 * y0 / (h - 1) - 1.0], [0.0, 0.0, 1.0]])
    half = (size - 1) / 2.0
    n_out_inv = np.array([[half, 0.0, half], [0.0, half, half], [0.0, 0.0, 1.0]])
    theta = torch.from_numpy((n_in @ inv @ n_out_inv)[:2].T.astype(np.float32))  # (3, 2)
    grid = torch.mm(_base_grid(size), theta).view(1, size, size, 2)  # = affine_grid, faster
    out = torch.nn.functional.grid_sample(win, grid, mode="bilinear", padding_mode="border",
                                          align_corners=True)[0]  # (C, S, S)
    inside = ((corners[:, 0] >= -0.5) & (corners[:, 0] < W - 0.5) & (corners[:, 1] >= -0.5)
              & (corners[:, 1] < H - 0.5)).all()
    if not inside:  # PIL's rule: fill where the sample point leaves the half-pixel-extended frame
        out.masked_fill_(torch.from_numpy(_outside_mask(inv, W, H, size)), float(fill))
    # bilinear weights are convex, so values stay in [0, 255]: + 0.5 and truncation rounds
    res = out.add_(0.5).to(torch.uint8).numpy().transpose(1, 2, 0)
    return res[..., 0] if gray else res


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
