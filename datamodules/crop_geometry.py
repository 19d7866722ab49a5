"""Crop geometry: one affine matrix per sample, one warp.

Conventions (docs/ARCHITECTURE.md): pixel (row i, column j) has coordinates x = j, y = i;
crop coordinates run over [0, S-1] for an S x S crop. Every geometric operation (crop
from the box with random enlargement and shift, scale, in-plane rotation, horizontal flip)
is folded into ONE 3x3 matrix ``M`` (source px -> crop px, :func:`crop_matrix`, :func:`flip_matrix`).
The image is warped once with ``M`` (bilinear, :func:`warp_image`: torch grid_sample with PIL's
sampling rule; :func:`warp_image_pil` is the reference) and every point set is moved with the same
``M`` (:func:`apply_affine`), so landmarks move exactly with the pixels; cameras move with
:func:`transform_camera`. Why the warp runs in torch: docs/DECISIONS.md.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image

__all__ = ["crop_matrix", "flip_matrix", "warp_image", "warp_image_pil", "apply_affine", "transform_camera",
           "mirror_vertices", "one_torch_thread"]

# diag(-1, 1, 1): mirror of the camera / model frame along x.
_F3 = np.diag([-1.0, 1.0, 1.0])


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
