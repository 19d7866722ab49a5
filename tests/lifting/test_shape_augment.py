"""ShapeAugment (datamodules/landmarks3d.py): training-only per-axis proportions and per-landmark 3D
jitter, checked against what each setting must do to a known face."""

from __future__ import annotations

import pytest
import torch

from datamodules.landmarks3d import Landmarks3DDataModule, RandomViewBatches, ShapeAugment
from tests.lifting.synthetic_faces import synthetic_faces


def test_off_is_the_identity() -> None:
    faces = synthetic_faces(4, 0)
    assert torch.equal(ShapeAugment()(faces, torch.Generator().manual_seed(0)), faces)


def test_scale_is_a_per_face_per_axis_scaling_about_the_centroid() -> None:
    faces = synthetic_faces(200, 1).double()
    out = ShapeAugment(scale_xyz=0.1)(faces, torch.Generator().manual_seed(0))
    c_in, c_out = faces.mean(1, keepdim=True), out.mean(1, keepdim=True)
    torch.testing.assert_close(c_out, c_in)  # centroid kept
    # each face and axis: out - c = k * (in - c) with one k per (face, axis), k in [0.9, 1.1]
    k = ((out - c_out) * (faces - c_in)).sum(1) / ((faces - c_in) ** 2).sum(1)  # (B, 3) least squares
    torch.testing.assert_close(out - c_out, (faces - c_in) * k[:, None, :])
    assert k.min() >= 0.9 and k.max() <= 1.1
    assert k.min() < 0.92 and k.max() > 1.08  # the whole range is used
    assert (k[:, 0] - k[:, 2]).abs().max() > 0.05  # axes scaled independently


def test_jitter_has_the_asked_std_in_outer_eye_units() -> None:
    faces = synthetic_faces(500, 2).double()
    out = ShapeAugment(jitter_iod=0.03)(faces, torch.Generator().manual_seed(0))
    iod = (faces[:, 36] - faces[:, 45]).norm(dim=-1).view(-1, 1, 1)
    z = (out - faces) / iod  # N(0, 0.03^2) per coordinate
    assert abs(z.std().item() - 0.03) < 0.001
    assert abs(z.mean().item()) < 0.001


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="scale_xyz"):
        ShapeAugment(scale_xyz=1.5)
    with pytest.raises(ValueError, match="jitter_iod"):
        ShapeAugment(jitter_iod=-0.1)


def test_only_training_batches_are_augmented() -> None:
    faces = synthetic_faces(8, 3)
    dm = Landmarks3DDataModule(shapes={"train": faces, "val": faces, "test": faces}, batch_size=8,
                               views_per_shape=1, augment={"jitter_iod": 0.05})
    dm.setup()
    assert dm.augment == ShapeAugment(jitter_iod=0.05)
    train_ds = dm.train_dataloader().dataset
    assert isinstance(train_ds, RandomViewBatches) and train_ds.augment.jitter_iod == 0.05
    # validation views are of the faces as given: the model-space shape is the centred input
    val = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(val["landmarks3d_model"], faces - faces.mean(1, keepdim=True))
    # training views are of jittered faces
    torch.manual_seed(0)
    batch = next(iter(train_ds))
    centred = faces[batch["index"]] - faces[batch["index"]].mean(1, keepdim=True)
    assert (batch["landmarks3d_model"] - centred).abs().max() > 1e-3
