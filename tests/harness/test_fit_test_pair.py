from __future__ import annotations

from datamodules.fit_test_pair import FitTestDataModule
from datamodules.synthetic import SyntheticDataModule


def test_fit_from_one_datamodule_test_from_the_other():
    a = SyntheticDataModule(num_landmarks=5, num_train=8, num_val=4, num_test=4, image_size=16, seed=0)
    b = SyntheticDataModule(num_landmarks=5, num_train=8, num_val=4, num_test=6, image_size=16, seed=100)
    dm = FitTestDataModule(fit=a, test=b)
    dm.setup("fit")
    dm.setup("test")
    assert len(dm.train_dataloader().dataset) == 8 and len(dm.val_dataloader().dataset) == 4
    assert dm.test_dataloader().dataset is b.test_set and len(dm.test_dataloader().dataset) == 6
