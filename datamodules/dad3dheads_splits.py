"""One DAD-3DHeads split read into arrays, each written once under the cache root: the parsed
annotations (:func:`load_split_annotations`), the decoded frames (:func:`load_split_images`) and
the frames' crop regions (:func:`load_split_regions`). The file format itself is
datamodules/formats/dad.py.

Visibility: the procedural writer stores the renderer's z-buffer visibility in the
optional annotation key ``suite_visibility``. Real DAD files lack it; then visibility is
computed once by a z-test against the annotated mesh itself (facemodels.render rasteriser
at the image size, front-facing test + depth tolerance 1 cm) when the annotation cache is
built.

Annotation cache: parsing a 5023-vertex json costs more than decoding the image (docs/DECISIONS.md).
At setup each split's annotations (vertices float32, MV, P, image height, K, R, t, yaw,
visibility) are parsed once into ``<cache_root>/dad3dheads_ann_<hash>/<split>.npz`` (hash of
the absolute root, split and index file size/mtime) and loaded into memory at setup (forked DataLoader workers share it copy-on-write).
Images are decoded per sample unless cached; the DataModule's default ``image_cache="auto"``
caches the procedural frames (data_dir null) and decodes real data per sample. ``image_cache=True`` decodes every frame
once into a uint8 memory map next to the annotation cache (only when all frames of a split
have one size, as the procedural data; see :func:`load_split_images`): it removes the PNG
decode from the per-sample cost at the price of N x H x W x 3 bytes of disk.
``image_cache="regions"`` works for frames of any size (real DAD-3DHeads): it keeps per
sample only the square any augmented crop can reach, box-reduced to at most 2 x image_size
px (see :func:`load_split_regions`; N x (2 S)^2 x 3 bytes; same samples as decoding when no
reduction is needed, an antialiased downscale otherwise).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamodules.cache import cached_dataset
from datamodules.flame_info import flame_topology
from datamodules.formats import dad
from datamodules.transforms import AugmentConfig
from facemodels.cameras import gl_to_krt
from facemodels.render import rasterize, vertex_normals, vertex_visibility
from facemodels.rotations import matrix_to_euler
from facemodels.world import data_root, default_flame_dir

__all__ = ["flame_dir_or_default", "load_split_annotations", "load_split_images", "crop_region",
           "load_split_regions"]


def flame_dir_or_default(flame_dir: str | None) -> str:
    if flame_dir is not None:
        return str(flame_dir)

    return str(default_flame_dir())


def _yaw_deg(R_cv: np.ndarray) -> np.ndarray:
    """(B,) yaw (degrees, model Euler of facemodels.rotations) of (B, 3, 3) cv model->camera
    rotations."""

    R_model = np.diag([1.0, -1.0, -1.0]) @ R_cv
    return matrix_to_euler(torch.from_numpy(R_model))[:, 0].numpy()


def _zbuffer_visibility(vertices, K, R, t, faces, H, W) -> np.ndarray:
    """(5023,) 0/1: z-test of every vertex against its own mesh (real data fallback)."""

    cam = vertices @ R.T + t  # (N, 3) metres, cv camera
    uv = cam[:, :2] / cam[:, 2:] @ K[:2, :2].T + K[:2, 2]
    ras = rasterize(uv, cam[:, 2], faces, H, W)
    n_cam = vertex_normals(vertices, faces) @ R.T
    front = (n_cam * -cam).sum(1) > 0
    return vertex_visibility(uv, cam[:, 2], front, ras.zbuf).astype(np.uint8)


def _parse_split(root: Path, entries: list[dict], flame_dir: str) -> dict[str, np.ndarray]:

    n = len(entries)
    out = {
        "vertices": np.zeros((n, 5023, 3), np.float32), "model_view": np.zeros((n, 4, 4)),
        "projection": np.zeros((n, 4, 4)), "height": np.zeros(n, np.int64),
        "width": np.zeros(n, np.int64), "K": np.zeros((n, 3, 3)), "R": np.zeros((n, 3, 3)),
        "t": np.zeros((n, 3)), "yaw": np.zeros(n), "visibility": np.zeros((n, 5023), np.uint8),
        "ok": np.ones(n, bool),
    }
    for i, e in enumerate(entries):
        try:
            a = dad.read_annotation(root / e["annotation_path"])
            with Image.open(root / e["img_path"]) as im:
                W, H = im.size
        except (OSError, ValueError) as err:  # kept: the Dataset raises / skips it later
            out["ok"][i] = False
            out.setdefault("errors", []).append(f"{e.get('annotation_path')}: {err}")
            continue
        out["vertices"][i], out["model_view"][i], out["projection"][i] = (
            a["vertices"], a["model_view"], a["projection"])
        out["height"][i], out["width"][i] = H, W
        out["visibility"][i] = a["visibility"] > 0.5 if a["visibility"] is not None else 0
        if a["visibility"] is None:
            out.setdefault("_no_vis", []).append(i)
    # cameras: one batched decomposition per image size (a 3 x 3 torch QR per sample
    # is mostly overhead, docs/DECISIONS.md)
    ok = np.flatnonzero(out["ok"])
    for hw in {(int(out["height"][i]), int(out["width"][i])) for i in ok}:
        sel = ok[(out["height"][ok] == hw[0]) & (out["width"][ok] == hw[1])]
        K, R, t = gl_to_krt(torch.from_numpy(out["model_view"][sel]), torch.from_numpy(out["projection"][sel]),
                            hw[0], hw[1])
        out["K"][sel], out["R"][sel], out["t"][sel] = K.numpy(), R.numpy(), t.numpy()
        out["yaw"][sel] = _yaw_deg(R.numpy())
    no_vis = out.pop("_no_vis", [])
    if no_vis:
        topo = flame_topology(flame_dir)
        for i in no_vis:
            out["visibility"][i] = _zbuffer_visibility(out["vertices"][i].astype(np.float64), out["K"][i],
                                                       out["R"][i], out["t"][i], topo.faces,
                                                       int(out["height"][i]), int(out["width"][i]))
    if "errors" in out:
        out["errors"] = np.array(out["errors"])
    return out


def load_split_annotations(
    root: str | Path, split: str, flame_dir: str, cache_root: str | Path | None = None
) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Index entries + parsed annotation arrays of one split (cached, see module doc)."""
    root = Path(root).resolve()
    entries = dad.read_index(root, split)
    st = dad.index_path(root, split).stat()
    params = {"root": str(root), "split": split, "size": st.st_size, "mtime": st.st_mtime_ns,
              "flame": str(flame_dir), "version": 1}
    cache_root = Path(cache_root) if cache_root else data_root() / "cache"

    def write(out: Path, **_: object) -> None:
        np.savez(out / f"{split}.npz", **_parse_split(root, entries, flame_dir))

    folder = cached_dataset("dad3dheads_ann", params, write, cache_root)
    with np.load(folder / f"{split}.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return entries, arrays


def load_split_images(
    root: str | Path, split: str, entries: list[dict], cache_root: str | Path | None = None
) -> Path | None:
    """Path of the decoded frames of one split, a (N, H, W, 3) uint8 .npy written once to ``<cache_root>/dad3dheads_img_<hash>/<split>.npy`` (``image_cache=True``).
    None when the first and last frames differ in size (real DAD: then images are decoded per
    sample; ``image_cache="regions"`` serves any sizes); a size change in between raises
    naming the file. Costs N x H x W x 3 bytes of disk (1800 frames of 320 px: 550 MB)."""
    root = Path(root).resolve()
    st = dad.index_path(root, split).stat()
    params = {"root": str(root), "split": split, "size": st.st_size, "mtime": st.st_mtime_ns, "version": 1}
    cache_root = Path(cache_root) if cache_root else data_root() / "cache"
    sizes = set()
    for e in entries[:1] + entries[-1:]:
        with Image.open(root / e["img_path"]) as im:
            sizes.add(im.size)
    if len(sizes) != 1:
        return None
    W, H = sizes.pop()

    def write(out: Path, **_: object) -> None:
        arr = np.lib.format.open_memmap(out / f"{split}.npy", mode="w+", dtype=np.uint8,
                                        shape=(len(entries), H, W, 3))
        for i, e in enumerate(entries):
            with Image.open(root / e["img_path"]) as im:
                if im.size != (W, H):
                    raise ValueError(f"{root / e['img_path']}: size {im.size}, expected {(W, H)} "
                                     f"(image_cache=true needs one frame size; use image_cache='regions' or false)")
                arr[i] = np.asarray(im.convert("RGB"))
        arr.flush()

    return cached_dataset("dad3dheads_img", params, write, cache_root) / f"{split}.npy"


def crop_region(bbox: np.ndarray | list[float], aug: AugmentConfig) -> tuple[float, float, float]:
    """(cx, cy, half) in source px: the square [cx - half, cx + half] x [cy - half, cy + half]
    contains every crop ``FaceCropTransform`` can take from ``bbox`` [x, y, w, h] under ``aug``
    (largest scale, largest shift per axis, the rotation whose axis-aligned extent is largest)."""
    x, y, w, h = (float(v) for v in bbox)
    side = aug.crop_scale * max(1.0, float(aug.scale_range[1])) * max(w, h)
    r = math.radians(min(abs(float(aug.rotation_deg)), 45.0))
    return x + 0.5 * w, y + 0.5 * h, side * (0.5 * (math.cos(r) + math.sin(r)) + abs(float(aug.shift)))


def load_split_regions(
    root: str | Path, split: str, entries: list[dict], aug: AugmentConfig, max_side: int,
    cache_root: str | Path | None = None,
) -> Path:
    """Folder of the region cache of one split (``image_cache="regions"``), for frames of any size
    (real DAD-3DHeads): per sample only the square of :func:`crop_region` (+ a margin for the
    bilinear neighbours), box-reduced by the smallest integer factor k that makes it fit
    ``max_side`` px, in ``<split>.npy`` (N, max_side, max_side, 3) uint8 slots; ``<split>_meta.npy``
    (N, 5) int64 rows [x0, y0, k, h, w]: slot pixel (i, j) (i < h, j < w) is the mean of the
    source block of k x k pixels starting at (x0 + k j, y0 + k i), i.e. centred at source px
    (x0 + k j + (k - 1) / 2, y0 + k i + (k - 1) / 2) (a block cut by the frame's right / bottom
    edge: the mean of its pixels). k = -1 marks a frame that could not be decoded (the Dataset
    then reads it per sample and raises / skips as usual).

    With k = 1 the samples equal the decoded-frame path (within one grey level); with k > 1 the
    crop is resampled from the box-reduced region (an antialiased downscale, where the frame
    path samples the full frame bilinearly). Costs N x max_side^2 x 3 bytes of disk."""
    root = Path(root).resolve()
    st = dad.index_path(root, split).stat()
    params = {"root": str(root), "split": split, "size": st.st_size, "mtime": st.st_mtime_ns, "version": 1,
              "max_side": int(max_side), "crop_scale": aug.crop_scale, "scale_max": aug.scale_range[1],
              "shift": aug.shift, "rotation_deg": aug.rotation_deg, "layout": 2}
    cache_root = Path(cache_root) if cache_root else data_root() / "cache"
    R = int(max_side)

    def write(out: Path, **_: object) -> None:
        slots = np.lib.format.open_memmap(out / f"{split}.npy", mode="w+", dtype=np.uint8,
                                          shape=(len(entries), R, R, 3))
        meta = np.zeros((len(entries), 5), np.int64)
        for i, e in enumerate(entries):
            try:
                with Image.open(root / e["img_path"]) as im:
                    frame = np.asarray(im.convert("RGB"))
            except (OSError, ValueError, SyntaxError):
                meta[i] = (0, 0, -1, 0, 0)
                continue
            H, W = frame.shape[:2]
            cx, cy, half = crop_region(e["bbox"], aug)
            k = 1
            while math.ceil((2 * half + 2 * (2 * k + 1) + 1) / k) > R:
                k += 1
            margin = 2 * k + 1
            x0, y0 = max(0, math.floor(cx - half) - margin), max(0, math.floor(cy - half) - margin)
            x1, y1 = min(W, math.ceil(cx + half) + margin + 1), min(H, math.ceil(cy + half) + margin + 1)
            w, h = -(-max(0, x1 - x0) // k), -(-max(0, y1 - y0) // k)  # blocks; the last may be partial
            if w > 0 and h > 0:
                region = frame[y0:y1, x0:x1]
                if k > 1:  # PIL's box reduce; a partial last block is the mean of its pixels
                    region = np.asarray(Image.fromarray(np.ascontiguousarray(region)).reduce(k))
                h, w = min(h, R, region.shape[0]), min(w, R, region.shape[1])
                slots[i, :h, :w] = region[:h, :w]
            meta[i] = (x0, y0, k, h, w)
        slots.flush()
        np.save(out / f"{split}_meta.npy", meta)

    return cached_dataset("dad3dheads_regions", params, write, cache_root)
