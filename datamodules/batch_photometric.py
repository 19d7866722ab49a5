"""Photometric augmentation + ImageNet normalisation of a whole uint8 batch, on its device.

With ``normalize_on_device`` (datamodules.base.FaceDataModule) the workers return the warped
crop as (3, S, S) uint8 (4x less inter-process traffic than float32) plus, for training
samples, the parameters drawn by ``FaceCropTransform`` (``defer_photometric``). After the
batch reaches its device, :func:`apply_photometric` does in one vectorised pass what
``FaceCropTransform._photometric`` + ``paint_occluders`` + ``normalise_image`` did per
sample on the CPU, with the same formulas and roundings:

    jitter:  f1 = b f;  f2 = sat f1 + (1 - sat) gray(f1);  out = ct (f2 - m) + m, clipped to
             0..255, m = mean of gray(f1) over the crop (as ``color_jitter``);
    noise:   out = out + N(0, noise_std^2), clipped (own generator per sample, seeded by the
             worker's draw, so a batch is reproducible);
    occluders: boxes painted in their colour after jitter and noise;
    normalise: (out / 255 - mean) / std  (ImageNet, as ``normalise_image``), folded into the
             jitter matrix (one matrix product + one clamp per batch).

The blur stays in the worker (it comes before the jitter). The per-sample CPU path rounds to
uint8 after the jitter and after the noise; this path keeps floats, so without noise the
results differ by at most half a grey level (tests/datamodules/test_dm_batch_photometric.py).
"""

from __future__ import annotations

import torch

from datamodules.crop_geometry import one_torch_thread
from datamodules.photometric import GRAY_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD, jitter_matrix

__all__ = ["apply_photometric", "normalise_batch", "host_params"]

_GRAY = GRAY_WEIGHTS


_SCALE = (1.0 / (IMAGENET_STD.astype(float) * 255.0)).tolist()  # per channel: 1 / (255 std)
_SHIFT = (IMAGENET_MEAN.astype(float) / IMAGENET_STD.astype(float)).tolist()  # mean / std
_CONSTS: dict[str, dict[str, torch.Tensor]] = {}


def _consts(device: torch.device) -> dict[str, torch.Tensor]:
    """Per-device constants (copied to the device once: a host->device copy of a new tensor
    waits for the stream, so building them per batch would stall a CUDA pipeline)."""
    key = str(device)
    if key not in _CONSTS:
        scale = torch.tensor(_SCALE, dtype=torch.float32)
        shift = torch.tensor(_SHIFT, dtype=torch.float32)
        _CONSTS[key] = {k: v.to(device) for k, v in {
            "scale": scale, "shift": shift, "lo": -shift, "hi": 255.0 * scale - shift,
            "gray": torch.tensor(_GRAY, dtype=torch.float32)}.items()}
    return _CONSTS[key]


def _norm_consts(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(3,) float32 scale = 1 / (255 std) and shift = mean / std of the ImageNet normalisation."""
    c = _consts(device)
    return c["scale"], c["shift"]


def host_params(photometric: dict) -> dict:
    """The per-sample decisions of the batch step as Python lists (noise std and seed, occluder
    boxes), taken while the parameters are still on the host (``on_before_batch_transfer``), so
    :func:`apply_photometric` on CUDA needs no device->host copy (each one would stall)."""
    return {"noise_std": photometric["noise_std"].reshape(-1).tolist(),
            "noise_seed": photometric["noise_seed"].reshape(-1).tolist(),
            "occluders": photometric["occluders"].tolist() if "occluders" in photometric else None}


def normalise_batch(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) uint8 (or float in 0..255) -> float32 ImageNet-normalised, on its device
    (the input is left alone)."""
    scale, shift = _norm_consts(image.device)
    x = image.float() if image.dtype != torch.float32 else image.clone()
    return x.mul_(scale.view(1, 3, 1, 1)).sub_(shift.view(1, 3, 1, 1))


def _jitter_affine(means: torch.Tensor, jitter: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour jitter followed by the normalisation as one affine colour map per sample:
    (B, 3, 3) matrices and (B, 3, 1) offsets acting on grey levels, from the (B, 3) channel
    means of the crops and (B, 3) [brightness, contrast, saturation] ``jitter``:

        normalise(A f + (1 - ct) m) = S A f + S (1 - ct) m - shift,  S = diag(1 / (255 std)),

    A = ct b (sat I + (1 - sat) 1 w^T) (``datamodules.photometric.jitter_matrix``), m = b w . means. Clipping to
    0..255 before the normalisation equals clipping to [normalise(0), normalise(255)] after it
    (an increasing affine map per channel)."""
    dev = means.device
    b, ct, sat = jitter.to(device=dev, dtype=torch.float32).unbind(1)
    w = _consts(dev)["gray"]
    m = b * (means.float() @ w)  # (B,) mean grey after the brightness factor
    A = jitter_matrix(b, ct, sat, gray=w)  # (B, 3, 3)
    scale, shift = _norm_consts(dev)
    A = scale[None, :, None] * A
    off = (scale[None, :] * ((1.0 - ct) * m)[:, None] - shift[None, :])[:, :, None]
    return A, off


def _clip_bounds() -> tuple[list[float], list[float]]:
    """Per-channel normalised values of grey levels 0 and 255."""
    lo = (-IMAGENET_MEAN / IMAGENET_STD).tolist()
    hi = ((1.0 - IMAGENET_MEAN) / IMAGENET_STD).tolist()
    return lo, hi


def _jitter_normalised(image: torch.Tensor, jitter: torch.Tensor, batched: bool | None = None) -> torch.Tensor:
    """Colour jitter + normalisation of (B, 3, H, W) uint8 -> float32 (B, 3, H, W): one matrix
    product and one clip. The CPU path (``color_jitter`` then ``normalise_image``) also rounds
    to uint8 in between; this does not, so values differ from it by at most half a grey level.
    CUDA (``batched`` None -> by device): one batched product; CPU: one small product per sample
    (faster per sample than batched ``baddbmm`` there, and the sample stays in cache;
    docs/DECISIONS.md)."""
    B, _, H, W = image.shape
    lo, hi = _clip_bounds()
    if batched if batched is not None else image.device.type != "cpu":
        x = image.reshape(B, 3, H * W).float()
        A, off = _jitter_affine(x.mean(-1), jitter)
        y = torch.baddbmm(off, A, x).view(B, 3, H, W)
        c = _consts(y.device)
        return torch.clamp(y, c["lo"].view(1, 3, 1, 1), c["hi"].view(1, 3, 1, 1), out=y)
    # A does not depend on the means: one batched call with dummy means gives every A and the
    # offset's parts; per sample only off = S (1 - ct) b (w . means) - shift remains.
    A, _ = _jitter_affine(torch.zeros(B, 3), jitter)
    b, ct, _sat = jitter.float().unbind(1)
    alpha = ((1.0 - ct) * b).tolist()
    scale, shift = _norm_consts(image.device)
    w = _consts(image.device)["gray"]
    y = torch.empty((B, 3, H, W), dtype=torch.float32)
    for i in range(B):
        x = image[i].reshape(3, H * W).float()
        grey = float(torch.dot(x.mean(1), w))
        off = (scale * (alpha[i] * grey) - shift)[:, None]
        yi = y[i].view(3, H * W)
        torch.addmm(off, A[i], x, out=yi)
        for c in range(3):
            yi[c].clamp_(lo[c], hi[c])
    return y


def apply_photometric(image: torch.Tensor, photometric: dict | None = None) -> torch.Tensor:
    """(B, 3, H, W) uint8 crops -> (B, 3, H, W) float32, ImageNet-normalised, on the same device.

    photometric: None (val / test: normalisation only) or the collated parameters of
    ``FaceCropTransform(defer_photometric=True)``: ``jitter`` (B, 3) float32 [brightness,
    contrast, saturation], ``noise_std`` (B,) float32 (0: no noise, 0..255 units),
    ``noise_seed`` (B,) int64, ``occluders`` (B, K, 8) float32 [x0, y0, x1, y1, r, g, b, valid]
    crop px; optionally ``_host``: :func:`host_params` of them taken before the transfer (then
    the CUDA path never copies device -> host).
    """
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"apply_photometric: expected a (B, 3, H, W) image batch, got {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        raise ValueError(f"apply_photometric: expected a uint8 image batch, got {image.dtype}")
    if image.device.type == "cpu":  # per-sample small ops: one thread (see one_torch_thread)
        with one_torch_thread():
            return _apply(image, photometric)
    return _apply(image, photometric)


def _apply(image: torch.Tensor, photometric: dict | None) -> torch.Tensor:
    if photometric is None:
        return normalise_batch(image)
    x = _jitter_normalised(image, photometric["jitter"])
    host = photometric.get("_host") or host_params(photometric)  # CPU tensors: no copy
    scale = _consts(x.device)["scale"].view(3, 1, 1)
    lo, hi = _consts(x.device)["lo"].view(3, 1, 1), _consts(x.device)["hi"].view(3, 1, 1)
    for i, (std, seed) in enumerate(zip(host["noise_std"], host["noise_seed"], strict=True)):
        if std > 0:  # a few samples per batch (noise_prob); grey levels -> normalised units, re-clipped
            g = torch.Generator(device=x.device).manual_seed(int(seed))
            n = torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype)
            x[i].addcmul_(n, std * scale)
            torch.maximum(x[i], lo, out=x[i])
            torch.minimum(x[i], hi, out=x[i])
    for i, boxes in enumerate(host["occluders"] or ()):
        for x0, y0, x1, y1, r, g, b, valid in boxes:
            if valid > 0:  # painted in the normalised colour (fill_ with a Python scalar: no copy)
                x0, y0, x1, y1 = (int(round(v)) for v in (x0, y0, x1, y1))
                for c, v in enumerate((r, g, b)):
                    x[i, c, y0:y1, x0:x1].fill_(v * _SCALE[c] - _SHIFT[c])
    return x
