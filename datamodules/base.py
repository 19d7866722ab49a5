"""Shared pieces of the suite's DataModules: the Lightning wrapper and the Dataset base.

Every DataModule: resolves its data folder (``data_dir``, or writes the procedural world
in the real format once, cached, when ``data_dir`` is null), builds train / val / test /
predict Datasets that read that folder with the real-format reader, and serves
DataLoaders with ``num_workers``, ``pin_memory`` (default: when CUDA is available) and
``persistent_workers`` (when ``num_workers > 0``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.batch_photometric import apply_photometric, host_params
from datamodules.stage_timer import StageTimer, stage
from datamodules.transforms import AugmentConfig
from facemodels.landmark_sets import landmark_set_names

__all__ = ["FaceDataset", "FaceDataModule", "to_tensors", "sample_rng"]

log = logging.getLogger(__name__)


def sample_rng(index: int, counter: int) -> np.random.Generator:
    """Per-sample generator: differs across workers, epochs (torch's worker seed changes
    every epoch) and repeated calls in one process (``counter``)."""
    return np.random.default_rng([torch.initial_seed() % (2**63), int(index), int(counter)])


def to_tensors(sample: dict) -> dict:
    """numpy arrays -> torch tensors (float64 -> float32), recursing into dicts."""
    out = {}
    for k, v in sample.items():
        if isinstance(v, dict):
            out[k] = to_tensors(v)
        elif isinstance(v, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(v))
            out[k] = t.float() if t.is_floating_point() else t
        elif isinstance(v, float):
            out[k] = torch.tensor(v, dtype=torch.float32)
        elif isinstance(v, (int, np.integer)):
            out[k] = torch.tensor(int(v), dtype=torch.int64)
        else:
            out[k] = v
    return out


class FaceDataset(Dataset):
    """Base Dataset: ``load(i)`` reads + transforms sample i (subclasses), ``__getitem__``
    adds the corrupt-file policy.

    skip_corrupt: False -> a broken sample raises (the error names its file);
        True -> it is logged with its path, counted in ``n_skipped`` (per process) and the
        next sample is returned instead.
    """

    def __init__(self, skip_corrupt: bool = False):
        self.skip_corrupt = bool(skip_corrupt)
        self.n_skipped = 0
        self._counter = 0
        self._timer: StageTimer | None = None

    @property
    def timer(self) -> StageTimer | None:
        """Per-stage profile of ``__getitem__`` (None: off); shared with ``self.transform``."""
        return self._timer

    @timer.setter
    def timer(self, value: StageTimer | None) -> None:
        self._timer = value
        if hasattr(self, "transform"):
            self.transform.timer = value

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int, rng: np.random.Generator) -> dict:  # pragma: no cover
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        for attempt in range(min(n, 50)):
            i = (int(index) + attempt) % n
            self._counter += 1
            try:
                sample = self.load(i, sample_rng(i, self._counter))
                sample["index"] = np.int64(i)
                with stage(self._timer, "to_tensor"):
                    return to_tensors(sample)
            except (OSError, ValueError, KeyError, SyntaxError) as e:
                if not self.skip_corrupt:
                    raise
                self.n_skipped += 1
                log.warning("skipping corrupt sample %d: %s", i, e)
        raise RuntimeError(f"{type(self).__name__}: 50 consecutive corrupt samples from index {index}")


class FaceDataModule(pl.LightningDataModule):
    """Base class; subclasses implement ``_build_root()`` and ``_build_datasets(root)``.

    Args:
        data_dir: dataset root in the real layout; None -> procedural data written once
            under ``cache_root`` (default ``<repo>/data/procedural``).
        landmark_set: name from docs/ARCHITECTURE.md (e.g. "face1609", "ibug68").
        image_size: crop side in px.
        batch_size, num_workers, pin_memory (None = when CUDA), persistent_workers,
            prefetch_factor (batches loaded ahead per worker; None = torch's default, 2).
        augment: dict of :class:`AugmentConfig` fields (train only).
        seed: procedural data seed and split shuffling.
        skip_corrupt: see :class:`FaceDataset`.
        normalize_on_device: None: True when CUDA is available, else False. False: every sample's ``image`` is the float32
            normalised crop (the batch contract) straight from the workers. True (for
            Datasets that support it, DAD-3DHeads): workers send (3, S, S) uint8 crops plus
            the drawn photometric parameters (key ``photometric``), and
            :meth:`on_after_batch_transfer` (called by the Trainer once the batch is on its
            device) applies colour jitter, noise, occluders and the normalisation to the
            whole batch (datamodules/batch_photometric.py), so the model still sees the
            contract. Code that iterates the DataLoaders without a Trainer calls
            ``dm.on_after_batch_transfer(batch, 0)`` itself.
    """

    # The box the crops are taken around (a key of experiments.face_detection.BOX_CONVENTIONS): "head"
    # (the projected head vertices, DAD-3DHeads' bbox) or "landmarks68" (the box of the 68 landmarks).
    box_convention = "head"
    # The face model whose topology the dataset's landmark sets live on ("flame" or "bfm", a key of
    # facemodels.landmark_sets); None: the subclass checks its landmark_set itself.
    face_model: str | None = None

    def __init__(
        self,
        data_dir: str | None = None,
        landmark_set: str = "ibug68",
        image_size: int = 256,
        batch_size: int = 32,
        num_workers: int = 2,
        pin_memory: bool | None = None,
        persistent_workers: bool = True,
        augment: dict | None = None,
        seed: int = 0,
        skip_corrupt: bool = False,
        cache_root: str | None = None,
        normalize_on_device: bool | None = False,
        prefetch_factor: int | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unknown arguments {sorted(kwargs)}")
        if self.face_model is not None and landmark_set not in landmark_set_names(self.face_model):
            raise ValueError(f"{type(self).__name__}: landmark_set must be one of {list(landmark_set_names(self.face_model))} "
                             f"(the sets on {self.face_model.upper()}, this dataset's topology), got {landmark_set!r}")
        self.data_dir = data_dir
        self.landmark_set = landmark_set
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
        self.persistent_workers = bool(persistent_workers)
        self.augment = AugmentConfig(**(dict(augment) if augment else {}))
        self.seed = int(seed)
        self.skip_corrupt = bool(skip_corrupt)
        self.cache_root = cache_root
        self.normalize_on_device = (torch.cuda.is_available() if normalize_on_device is None
                                    else bool(normalize_on_device))
        self.prefetch_factor = None if prefetch_factor is None else int(prefetch_factor)
        self.root: Path | None = None
        self.datasets: dict[str, Dataset] = {}

    # -- to implement -------------------------------------------------------------
    def _build_root(self) -> Path:  # pragma: no cover - abstract
        raise NotImplementedError

    def _build_datasets(self, root: Path) -> dict[str, Dataset]:  # pragma: no cover
        raise NotImplementedError

    # -- Lightning hooks ----------------------------------------------------------
    def prepare_data(self) -> None:
        """Writes the procedural dataset once (rank 0); no-op when ``data_dir`` is set."""
        self.root = self._resolve_root()

    def _resolve_root(self) -> Path:
        if self.data_dir is not None:
            root = Path(self.data_dir).expanduser()
            if not root.exists():
                raise FileNotFoundError(f"{type(self).__name__}: data_dir {root} does not exist; "
                                        f"{self.layout_help()}")
            return root
        return self._build_root()

    def layout_help(self) -> str:
        return ""

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.root is None:
            self.root = self._resolve_root()
        self.datasets = self._build_datasets(self.root)

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        if not self.datasets:
            self.setup()
        if name not in self.datasets:
            raise KeyError(f"{type(self).__name__} has no '{name}' split (has {sorted(self.datasets)})")
        return DataLoader(
            self.datasets[name],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            **({"prefetch_factor": self.prefetch_factor} if self.num_workers > 0 and self.prefetch_factor else {}),
            drop_last=shuffle and len(self.datasets[name]) > self.batch_size,
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With deferred photometric parameters: their per-sample decisions as Python lists
        (``photometric["_host"]``, left on the host by the transfer) so the batch step on CUDA
        needs no device->host copy."""
        if self.normalize_on_device and isinstance(batch, dict) and isinstance(batch.get("photometric"), dict):

            batch = dict(batch)
            batch["photometric"] = {**batch["photometric"], "_host": host_params(batch["photometric"])}
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 ``image`` batches (``normalize_on_device``) -> the float32 normalised batch
        contract, with the deferred photometric augmentation; other batches pass unchanged."""
        if (self.normalize_on_device and isinstance(batch, dict) and torch.is_tensor(batch.get("image"))
                and batch["image"].dtype == torch.uint8):

            batch = dict(batch)
            batch["image"] = apply_photometric(batch["image"], batch.pop("photometric", None))
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("predict" if "predict" in self.datasets else "test", shuffle=False)
