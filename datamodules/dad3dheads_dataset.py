"""The DAD-3DHeads Dataset: one split (or a subset) of a DAD-3DHeads folder, read through the
split arrays of datamodules/dad3dheads_splits.py.

Per sample (batch contract, docs/ARCHITECTURE.md): ``image`` (3, S, S); ``landmarks``,
``landmarks_px`` (L, 2) of ``landmark_set`` (face-region sets: the projected FLAME face
vertices; ibug68: the barycentric iBUG-68 points); ``landmarks3d`` (L, 3) x, y crop px and
z = depth towards the camera in the same px scale (``f / mean depth`` of the set, zero mean
over the set); ``visibility`` (L,); ``landmarks68_px`` (68, 2); ``vertices`` (5023, 3)
model space metres; ``yaw`` degrees; ``bbox`` [x, y, w, h] original px (the index's box: the
DAD-3DHeads benchmark's NME normaliser); ``crop_matrix`` (3, 3) original px -> crop px;
``item_id`` (str, the index's id: the benchmark's key); ``camera`` {K, R, t} of the crop (cv
convention, model -> camera); ``index``.

``normalize_on_device=True`` (DataModule) / ``defer_photometric=True`` (Dataset): ``image`` is
the (3, S, S) uint8 crop and training samples carry ``photometric`` (jitter / noise
parameters, occluder boxes); the DataModule's ``on_after_batch_transfer`` turns the batch into
the float32 contract on its device (datamodules/batch_photometric.py).

Loader speed: benchmarks/bench_loader.py (BENCHMARKS.md "loader"); ``image_cache`` removes the
PNG decode from the per-sample cost (docs/DECISIONS.md).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.base import FaceDataset
from datamodules.crop_geometry import transform_camera
from datamodules.dad3dheads_splits import (
    flame_dir_or_default,
    load_split_annotations,
    load_split_images,
    load_split_regions,
)
from datamodules.flame_info import LandmarkSet
from datamodules.formats import dad
from datamodules.photometric import normalise_image
from datamodules.stage_timer import stage
from datamodules.transforms import AugmentConfig, FaceCropTransform

__all__ = ["Dad3DHeadsDataset", "cache_mode"]

_MIRROR_X = np.array([-1.0, 1.0, 1.0], np.float32)


def cache_mode(image_cache: bool | str | None) -> str:
    """False / None / "none" -> "none"; True / "frames" -> "frames"; "regions"."""
    if image_cache is None or image_cache is False or image_cache == "none":
        return "none"
    if image_cache is True or image_cache == "frames":
        return "frames"
    if image_cache == "regions":
        return "regions"
    raise ValueError(f"image_cache: expected false, true, 'frames' or 'regions', got {image_cache!r}")


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
        self.flame_dir = flame_dir_or_default(flame_dir)
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
        mode = cache_mode(image_cache)
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
