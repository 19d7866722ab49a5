"""A tiny in-memory landmark dataset for smoke tests and CI: images whose pixels show the landmarks.

Each sample takes a fixed layout of L points (a face-like ellipse arrangement), applies a random
similarity transform, and draws every landmark as a Gaussian blob, so a network can actually learn the
mapping. It follows the batch contract of docs/ARCHITECTURE.md; nothing is written to disk.
"""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.photometric import IMAGENET_MEAN, IMAGENET_STD
from facemodels.landmark_sets import landmark_count

_MEAN = torch.from_numpy(IMAGENET_MEAN).view(3, 1, 1)
_STD = torch.from_numpy(IMAGENET_STD).view(3, 1, 1)


def base_layout(n: int) -> np.ndarray:
    """(n, 2) points in [-0.3, 0.3]^2 on nested ellipses: a deterministic face-like layout."""
    i = np.arange(n)
    ring = i % 3
    angle = 2 * math.pi * i / max(n, 1) * 2.618
    radius = 0.3 - 0.08 * ring
    return np.stack([radius * np.cos(angle) * 0.8, radius * np.sin(angle)], axis=1).astype(np.float32)


class SyntheticLandmarkDataset(Dataset):
    """`num_samples` images (3, S, S) with landmarks (L, 2) in [-0.5, 0.5]; deterministic per (seed, index)."""

    def __init__(self, num_samples: int, num_landmarks: int, image_size: int, seed: int) -> None:
        self.num_samples, self.num_landmarks, self.image_size, self.seed = num_samples, num_landmarks, image_size, seed
        self.layout = base_layout(num_landmarks)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        s = self.image_size
        angle = rng.uniform(-0.5, 0.5)
        scale = rng.uniform(0.8, 1.2)
        shift = rng.uniform(-0.08, 0.08, size=2)
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], np.float32)
        lmk = (self.layout @ rot.T) * scale + shift  # (L, 2) normalised
        px = (lmk + 0.5) * s  # (L, 2) crop px
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        sigma = max(s / 64.0, 0.8)
        img = np.zeros((s, s), np.float32)
        for x, y in px:  # L is small in smoke tests
            img = np.maximum(img, np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2)))
        colour = rng.uniform(0.3, 1.0, size=3).astype(np.float32)
        image = torch.from_numpy(colour[:, None, None] * img[None])  # (3, S, S) in [0, 1]
        image = (image - _MEAN) / _STD
        depth = np.zeros((self.num_landmarks, 1), np.float32)
        sample = {
            "image": image.float(),
            "landmarks": torch.from_numpy(lmk.astype(np.float32)),
            "landmarks_px": torch.from_numpy(px.astype(np.float32)),
            "landmarks3d": torch.from_numpy(np.concatenate([px, depth], axis=1).astype(np.float32)),
            "visibility": torch.ones(self.num_landmarks),
            "bbox": torch.tensor([0.0, 0.0, s, s]),
            "yaw": torch.tensor(float(rng.uniform(-90, 90))),
            "index": torch.tensor(index),
        }
        if self.num_landmarks == 68:
            sample["landmarks68_px"] = sample["landmarks_px"]
        return sample


class SyntheticDataModule(pl.LightningDataModule):
    """Tiny procedural batches for smoke tests: `data=synthetic`."""

    def __init__(
        self,
        landmark_set: str = "ibug68",
        image_size: int = 64,
        num_train: int = 16,
        num_val: int = 8,
        num_test: int = 8,
        batch_size: int = 4,
        num_workers: int = 0,
        pin_memory: bool = False,
        seed: int = 0,
        num_landmarks: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if num_landmarks is None:

            num_landmarks = landmark_count(landmark_set)
        self.num_landmarks = int(num_landmarks)
        self.batch_size = batch_size

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = SyntheticLandmarkDataset(h.num_train, self.num_landmarks, h.image_size, h.seed)
        self.val_set = SyntheticLandmarkDataset(h.num_val, self.num_landmarks, h.image_size, h.seed + 1)
        self.test_set = SyntheticLandmarkDataset(h.num_test, self.num_landmarks, h.image_size, h.seed + 2)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        h = self.hparams
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, num_workers=h.num_workers,
                          pin_memory=h.pin_memory, persistent_workers=h.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)
