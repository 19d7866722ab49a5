"""CoMA writer on the procedural FLAME world + the CoMA DataModule reading it back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.coma import ComaDataModule, coma_split
from datamodules.formats.coma import list_coma
from datamodules.writers.coma import SUBJECTS, write_coma
from fitting.mesh_io import read_ply


@pytest.fixture(scope="module")
def flame_dir():
    from facemodels.world import default_flame_dir

    return str(default_flame_dir())


@pytest.fixture(scope="module")
def coma_dir(tmp_path_factory, flame_dir):
    out = tmp_path_factory.mktemp("coma")
    write_coma(out, n_subjects=2, n_expressions=3, n_frames=4, seed=1, flame_dir=flame_dir)
    return out


def test_coma_layout_and_ply(coma_dir, flame_dir):
    from facemodels.flame_files import load_flame_arrays

    items = list_coma(coma_dir)
    assert len(items) == 2 * 3 * 4
    assert {it.subject for it in items} == set(SUBJECTS[:2])
    assert {it.expression for it in items} == {"bareteeth", "cheeks_in", "eyebrow"}
    p = coma_dir / SUBJECTS[0] / "bareteeth" / "bareteeth.000003.ply"
    assert p.is_file() and p.read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\n")
    v, f = read_ply(p)
    assert v.shape == (5023, 3) and f.shape == (9976, 3)
    np.testing.assert_array_equal(f, load_flame_arrays(flame_dir).faces)
    assert 1.35 < float(v[:, 1].mean()) < 1.6  # scanner world, metres, not centred


def test_coma_sequences_go_from_neutral_to_extreme(coma_dir, flame_dir):
    from facemodels.flame import FlameModel

    def centred(subject, expr, frame):
        v, _ = read_ply(coma_dir / subject / expr / f"{expr}.{frame:06d}.ply")
        return v.astype(np.float64) - v.mean(0)

    s = SUBJECTS[1]
    # frame 0 of every expression is the subject's neutral face (only head motion differs)
    np.testing.assert_allclose(centred(s, "bareteeth", 0), centred(s, "eyebrow", 0), atol=1e-5)
    d = [np.abs(centred(s, "bareteeth", k) - centred(s, "bareteeth", 0)).max() for k in range(4)]
    assert d[1] < d[2] < d[3] and d[3] > 2e-3  # monotone ramp to a visible (> 2 mm) extreme
    # neutral frame = FLAME with that subject's shape only: differs from the template shape
    tmpl = FlameModel(flame_dir)().vertices[0].double().numpy()
    assert np.abs(centred(s, "bareteeth", 0) - (tmpl - tmpl.mean(0))).max() > 1e-3


def test_coma_datamodule_batch(coma_dir, flame_dir):
    dm = ComaDataModule(data_dir=str(coma_dir), landmark_set="face1609", image_size=64, batch_size=4,
                        num_workers=0, flame_dir=flame_dir, split_mode="sliced", view_yaws=(-30.0, 0.0, 30.0))
    dm.setup()
    items = list_coma(coma_dir)
    tr, te = coma_split(items, "sliced")
    assert len(te) == 10 and len(tr) == 14 and len(dm.datasets["test"]) == 10
    b = next(iter(dm.train_dataloader()))
    assert b["vertices"].shape == (4, 5023, 3) and b["landmarks"].shape == (4, 1609, 2)
    assert b["landmarks3d"].shape == (4, 1609, 3) and b["landmarks3d_model"].shape == (4, 1609, 3)
    torch.testing.assert_close(b["landmarks"], b["landmarks_px"] / 64 - 0.5)
    assert set(b["yaw"].tolist()) <= {-30.0, 0.0, 30.0}
    # landmarks3d_model = the face1609 vertices of the stored mesh, centred
    from facemodels.landmark_sets import landmark_vertex_indices

    idx = landmark_vertex_indices("face1609", flame_dir)
    v = b["vertices"][0].double()[idx]
    torch.testing.assert_close(b["landmarks3d_model"][0].double(), v - v.mean(0), atol=1e-6, rtol=0)
    _, te_pyg = coma_split(items, "pyg")
    assert len(te_pyg) == 0  # frames 0..3 are all < 90
