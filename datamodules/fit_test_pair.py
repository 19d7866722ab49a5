"""Train and validate on one dataset, test on another (e.g. 300W-LP -> AFLW2000-3D, the standard protocol)."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader


class FitTestDataModule(pl.LightningDataModule):
    """Delegates fit (train/val) to `fit` and test/predict to `test`; both are ordinary DataModules."""

    def __init__(self, fit: pl.LightningDataModule, test: pl.LightningDataModule) -> None:
        super().__init__()
        self.fit, self.test = fit, test

    def prepare_data(self) -> None:
        self.fit.prepare_data()
        self.test.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate"):
            self.fit.setup(stage)
        if stage in (None, "test", "predict"):
            self.test.setup(stage)

    def train_dataloader(self) -> DataLoader:
        return self.fit.train_dataloader()

    def val_dataloader(self) -> DataLoader:
        return self.fit.val_dataloader()

    def test_dataloader(self) -> DataLoader:
        return self.test.test_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self.test.predict_dataloader()

    # Batch hooks (uint8 images with normalize_on_device): each inner DataModule converts only its own
    # deferred uint8 batches and passes float batches through, so chaining both is exact.
    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.test.on_before_batch_transfer(self.fit.on_before_batch_transfer(batch, dataloader_idx), dataloader_idx)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.test.on_after_batch_transfer(self.fit.on_after_batch_transfer(batch, dataloader_idx), dataloader_idx)
