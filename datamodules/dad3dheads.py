"""DAD-3DHeads DataModule + Dataset (reads the real layout, see datamodules/formats/dad.py).

Splits (as the thesis): train = the official train split; val / test = the first / second
half of the official val split (index order); predict = the official test split (images +
boxes, no labels).

Per sample (batch contract, docs/ARCHITECTURE.md): ``image`` (3, S, S); ``landmarks``,
``landmarks_px`` (L, 2) of ``landmark_set`` (face-region sets: the projected FLAME face
vertices; ibug68: the barycentric iBUG-68 points); ``landmarks3d`` (L, 3) x, y crop px and
z = depth towards the camera in the same px scale (``f / mean depth`` of the set, zero mean
over the set); ``visibility`` (L,); ``landmarks68_px`` (68, 2); ``vertices`` (5023, 3)
model space metres; ``yaw`` degrees; ``bbox`` [x, y, w, h] original px (the index's box: the
DAD-3DHeads benchmark's NME normaliser); ``crop_matrix`` (3, 3) original px -> crop px;
``item_id`` (str, the index's id: the benchmark's key); ``camera`` {K, R, t} of the crop (cv
convention, model -> camera); ``index``.

Visibility: the procedural writer stores the renderer's z-buffer visibility in the
optional annotation key ``suite_visibility``. Real DAD files lack it; then visibility is
computed once by a z-test against the annotated mesh itself (facemodels.render rasteriser
at the image size, front-facing test + depth tolerance 1 cm) when the annotation cache is
built.

Annotation cache: parsing a 5023-vertex json costs ~4 ms, more than decoding the image.
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

``normalize_on_device=True`` (DataModule) / ``defer_photometric=True`` (Dataset): ``image`` is
the (3, S, S) uint8 crop and training samples carry ``photometric`` (jitter / noise
parameters, occluder boxes); the DataModule's ``on_after_batch_transfer`` turns the batch into
the float32 contract on its device (datamodules/batch_photometric.py).

Loader speed (benchmarks/bench_loader.py, BENCHMARKS.md "loader"): ~2.3-2.5 ms CPU per sample
at 256 px with ``image_cache`` + ``normalize_on_device`` (the warp is the largest stage), ~4.1-4.7
ms when the PNG is decoded per sample (decode ~1.8 ms for a 320 px frame); the path before
(PIL warp, per-sample PIL jitter, float32 IPC) took ~5.0-5.4 ms.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamodules.base import FaceDataModule, FaceDataset
from datamodules.cache import REPO_ROOT, cached_dataset
from datamodules.flame_info import LandmarkSet, flame_topology
from datamodules.formats import dad
from datamodules.stage_timer import stage
from datamodules.transforms import (
    AugmentConfig,
    FaceCropTransform,
    normalise_image,
    transform_camera,
)

__all__ = ["Dad3DHeadsDataset", "Dad3DHeadsDataModule", "load_split_annotations"]

_MIRROR_X = np.array([-1.0, 1.0, 1.0], np.float32)


def _flame_dir(flame_dir: str | None) -> str:
    if flame_dir is not None:
        return str(flame_dir)
    from facemodels.world import default_flame_dir

    return str(default_flame_dir())


def _yaw_deg(R_cv: np.ndarray) -> np.ndarray:
    """(B,) yaw (degrees, model Euler of facemodels.rotations) of (B, 3, 3) cv model->camera
    rotations."""
    from facemodels.rotations import matrix_to_euler

    R_model = np.diag([1.0, -1.0, -1.0]) @ R_cv
    return matrix_to_euler(torch.from_numpy(R_model))[:, 0].numpy()


def _zbuffer_visibility(vertices, K, R, t, faces, H, W) -> np.ndarray:
    """(5023,) 0/1: z-test of every vertex against its own mesh (real data fallback)."""
    from facemodels.render import rasterize, vertex_normals, vertex_visibility

    cam = vertices @ R.T + t  # (N, 3) metres, cv camera
    uv = cam[:, :2] / cam[:, 2:] @ K[:2, :2].T + K[:2, 2]
    ras = rasterize(uv, cam[:, 2], faces, H, W)
    n_cam = vertex_normals(vertices, faces) @ R.T
    front = (n_cam * -cam).sum(1) > 0
    return vertex_visibility(uv, cam[:, 2], front, ras.zbuf).astype(np.uint8)


def _parse_split(root: Path, entries: list[dict], flame_dir: str) -> dict[str, np.ndarray]:
    from facemodels.cameras import gl_to_krt

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
    # costs ~10 ms of overhead)
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
    cache_root = Path(cache_root) if cache_root else REPO_ROOT / "data" / "cache"

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
    cache_root = Path(cache_root) if cache_root else REPO_ROOT / "data" / "cache"
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
    cache_root = Path(cache_root) if cache_root else REPO_ROOT / "data" / "cache"
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


class Dad3DHeadsDataset(FaceDataset):
    """One split (or a subset of it) of a DAD-3DHeads folder; see the module docstring.

    Args:
        root: dataset root.  split: "train" | "val" | "test" (test: images only).
        indices: which index entries to use (None = all).
        landmark_set, image_size, train (augment), augment: see FaceDataModule.
        flame_dir: FLAME folder (None = the procedural default) for embeddings / flips.
        cache_root: folder of the annotation / image caches (None = <repo>/data/cache).
        image_cache: False / "none": decode the PNG per sample; True / "frames": decoded frames
            from a memory map (one frame size only, see :func:`load_split_images`; falls back
            to per-sample decoding otherwise); "regions": the augmentation's reachable region
            of every frame, any frame size (:func:`load_split_regions`, slots of 2 x image_size px).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        landmark_set: str = "face1609",
        image_size: int = 256,
        train: bool = False,
        augment: AugmentConfig | None = None,
        indices: list[int] | np.ndarray | None = None,
        flame_dir: str | None = None,
        cache_root: str | Path | None = None,
        skip_corrupt: bool = False,
        image_cache: bool | str = False,
        defer_photometric: bool = False,
    ):
        super().__init__(skip_corrupt)
        self.root, self.split = Path(root), split
        self.flame_dir = _flame_dir(flame_dir)
        self.labelled = split != "test"
        if self.labelled:
            self.entries, self.ann = load_split_annotations(root, split, self.flame_dir, cache_root)
            self.lms = LandmarkSet(landmark_set, self.flame_dir)
            self.topo = self.lms.topo
        else:
            self.entries, self.ann = dad.read_index(root, split), {}
        self.indices = np.arange(len(self.entries)) if indices is None else np.asarray(indices)
        self.transform = FaceCropTransform(image_size, train, augment, defer_photometric=defer_photometric)
        self.defer_photometric = bool(defer_photometric)
        self.size = int(image_size)
        mode = _cache_mode(image_cache)
        self.frames_path = load_split_images(root, split, self.entries, cache_root) if mode == "frames" else None
        self._frames: np.ndarray | None = None  # memory map, opened lazily in each worker
        self.regions_dir = (load_split_regions(root, split, self.entries, self.transform.cfg, 2 * self.size, cache_root)
                            if mode == "regions" else None)
        self._regions: tuple[np.ndarray, np.ndarray] | None = None  # (slots memory map, meta)

    def __len__(self) -> int:
        return len(self.indices)

    def _image(self, entry: dict) -> np.ndarray:
        """(H, W, 3) uint8 frame: the file's bytes, then one PNG decode (stages "read", "decode")."""
        path = self.root / entry["img_path"]
        with stage(self.timer, "read"):
            data = path.read_bytes()
        try:
            with stage(self.timer, "decode"), Image.open(io.BytesIO(data)) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise OSError(f"corrupt image {path}: {e}") from e

    def _region(self, k: int, entry: dict) -> tuple[np.ndarray, np.ndarray | None]:
        """(h, w, 3) cached region of frame k and its (3, 3) region px -> frame px matrix."""
        if self._regions is None:
            self._regions = (np.load(self.regions_dir / f"{self.split}.npy", mmap_mode="r"),
                             np.load(self.regions_dir / f"{self.split}_meta.npy"))
        slots, meta = self._regions
        x0, y0, f, h, w = (int(v) for v in meta[k])
        if f < 0:  # not decodable when the cache was built: read it now (raises naming the file)
            return self._image(entry), None
        with stage(self.timer, "read"):
            img = np.array(slots[k, :h, :w])
        return img, np.array([[f, 0.0, x0 + (f - 1) / 2], [0.0, f, y0 + (f - 1) / 2], [0.0, 0.0, 1.0]])

    def _output_image(self, out: dict) -> np.ndarray:
        """(3, S, S): float32 normalised, or uint8 with ``defer_photometric`` (the batch step
        normalises; see datamodules/batch_photometric.py)."""
        with stage(self.timer, "normalise"):
            if self.defer_photometric:
                return np.ascontiguousarray(np.transpose(out["image"], (2, 0, 1)))  # no copy after warp_image
            return normalise_image(out["image"])

    def load(self, i: int, rng: np.random.Generator) -> dict:
        k = int(self.indices[i])
        e = self.entries[k]
        to_source = None  # (3, 3) image px -> frame px when img is a cached region
        if self.regions_dir is not None:
            img, to_source = self._region(k, e)
        elif self.frames_path is None:
            img = self._image(e)
        else:
            if self._frames is None:
                self._frames = np.load(self.frames_path, mmap_mode="r")
            with stage(self.timer, "read"):
                img = np.array(self._frames[k])  # page-in of the memory-mapped frame
        bbox = np.asarray(e["bbox"], np.float64)
        if not self.labelled:
            out = self.transform(img, bbox, {}, None, rng, image_to_source=to_source)
            return {"image": self._output_image(out), "bbox": bbox.astype(np.float32),
                    "crop_matrix": out["matrix"].astype(np.float32), "item_id": str(e["item_id"])}
        a = self.ann
        if not a["ok"][k]:
            raise ValueError(f"corrupt annotation {self.root / e['annotation_path']}")
        with stage(self.timer, "landmarks"):
            V = a["vertices"][k]  # (5023, 3) float32 metres (a view of the cache; never written)
            H = int(a["height"][k])
            K, R, t = a["K"][k], a["R"][k], a["t"][k]
            lm3 = self.lms.points(V).astype(np.float64)  # (L, 3) model space
            lm_px, lm_w = dad.project_dad(lm3, a["model_view"][k], a["projection"][k], H)
            l68_px, _ = dad.project_dad(self.topo.landmarks68(V), a["model_view"][k], a["projection"][k], H)
            zscale = K[0, 0] / lm_w.mean()
            lm_z = -(lm_w - lm_w.mean()) * zscale  # px, positive towards the camera
            vis = self.lms.visibility(a["visibility"][k])
        out = self.transform(
            img, bbox, {"lm": np.concatenate([lm_px, lm_z[:, None]], 1), "lm68": l68_px},
            {"lm": self.lms.flip, "lm68": self.lms.flip68}, rng, eyes=("lm68", 36, 45), image_to_source=to_source)
        with stage(self.timer, "landmarks"):
            lm = out["points"]["lm"]
            if out["flipped"]:
                vis = vis[self.lms.flip]
                V = (V * _MIRROR_X)[self.topo.mesh_flip_permutation]  # = (V F)[perm], F = diag(-1, 1, 1)
            K2, R2, t2 = transform_camera(K, R, t, out["matrix_sim"], out["flipped"], self.size)
            yaw = -a["yaw"][k] if out["flipped"] else a["yaw"][k]
        sample = {"image": self._output_image(out)}
        if out["photometric"] is not None:
            sample["photometric"] = out["photometric"]
        return sample | {
            "landmarks": lm[:, :2] / self.size - 0.5,
            "landmarks_px": lm[:, :2],
            "landmarks3d": lm,
            "visibility": vis,
            "landmarks68_px": out["points"]["lm68"],
            "vertices": V,
            "yaw": np.float32(yaw),
            "bbox": bbox,
            "crop_matrix": out["matrix"].astype(np.float32),
            "item_id": str(e["item_id"]),
            "camera": {"K": K2, "R": R2, "t": t2},
        }


def _cache_mode(image_cache: bool | str | None) -> str:
    """False / None / "none" -> "none"; True / "frames" -> "frames"; "regions"."""
    if image_cache is None or image_cache is False or image_cache == "none":
        return "none"
    if image_cache is True or image_cache == "frames":
        return "frames"
    if image_cache == "regions":
        return "regions"
    raise ValueError(f"image_cache: expected false, true, 'frames' or 'regions', got {image_cache!r}")


class Dad3DHeadsDataModule(FaceDataModule):
    """DAD-3DHeads. ``data_dir`` null -> procedural DAD-format data (n_train / n_val /
    n_test images of ``frame_size`` px) written once under the cache root."""

    def __init__(
        self,
        n_train: int = 1500,
        n_val: int = 300,
        n_test: int = 50,
        frame_size: int = 320,
        flame_dir: str | None = None,
        annotation_cache_root: str | None = None,
        image_cache: bool | str = "auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.n_train, self.n_val, self.n_test = int(n_train), int(n_val), int(n_test)
        self.frame_size = int(frame_size)
        self.flame_dir = flame_dir
        self.annotation_cache_root = annotation_cache_root
        if image_cache == "auto":  # procedural frames: one size, small -> cache; real data: decode
            image_cache = "frames" if self.data_dir is None else "none"
        self.image_cache = _cache_mode(image_cache)

    def layout_help(self) -> str:
        return dad.LAYOUT

    def _build_root(self) -> Path:
        from datamodules.writers.dad3dheads import write_dad3dheads

        fd = _flame_dir(self.flame_dir)
        params = {"n_train": self.n_train, "n_val": self.n_val, "n_test": self.n_test,
                  "image_size": self.frame_size, "seed": self.seed, "flame_dir": fd}
        return cached_dataset("dad3dheads", params, write_dad3dheads, self.cache_root)

    def _build_datasets(self, root: Path) -> dict:
        common = dict(landmark_set=self.landmark_set, image_size=self.image_size,
                      flame_dir=self.flame_dir, cache_root=self.annotation_cache_root,
                      skip_corrupt=self.skip_corrupt, image_cache=self.image_cache,
                      defer_photometric=self.normalize_on_device)
        if not (root / "train").is_dir() and not (root / "val").is_dir():
            raise FileNotFoundError(f"DAD-3DHeads root {root} has no train/ or val/; {dad.LAYOUT}")
        ds = {}
        if (root / "train").is_dir():
            ds["train"] = Dad3DHeadsDataset(root, "train", train=True, augment=self.augment, **common)
        n_val = len(dad.read_index(root, "val"))
        half = int(math.ceil(n_val / 2))
        ds["val"] = Dad3DHeadsDataset(root, "val", indices=np.arange(half), **common)
        ds["test"] = Dad3DHeadsDataset(root, "val", indices=np.arange(half, n_val), **common)
        if dad.index_path(root, "test").is_file():
            ds["predict"] = Dad3DHeadsDataset(root, "test", **common)
        return ds
