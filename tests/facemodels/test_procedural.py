"""The procedural head in FLAME format: topology, determinism, smplx compatibility, landmark
embeddings (static and dynamic contour), masks, regions and the CLI."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from facemodels.procedural import anatomy as A
from facemodels.procedural import topology as T
from facemodels.procedural.builder import cached_world, write_flame
from facemodels.procedural.embedding import row_yaw_deg
from facemodels.procedural.masks import mirror_index

smplx = pytest.importorskip("smplx")


@pytest.fixture(scope="module")
def world():
    return cached_world(0)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_counts_and_orientation(world):
    v, f = world.v_template, world.faces
    assert v.shape == (5023, 3) and f.shape == (9976, 3)
    assert f.min() == 0 and f.max() == 5022
    # every head edge is shared by at most two faces; all but the neck boundary by exactly two
    head = f[: T.N_FACES_HEAD]
    e = np.sort(np.concatenate([head[:, [0, 1]], head[:, [1, 2]], head[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    assert counts.max() == 2 and (counts == 1).sum() == T.N_COLS
    # outward orientation: positive signed volume of every head face seen from the centre
    a, b, c = (v[head[:, i]] - A.CENTRE for i in range(3))
    assert (np.einsum("ij,ij->i", a, np.cross(b, c)) > 0).all()
    # plausible head: metres, ~15 cm wide, ~25 cm from neck boundary to vertex
    span = v.max(0) - v.min(0)
    assert 0.14 < span[0] < 0.20 and 0.25 < span[1] < 0.32 and 0.18 < span[2] < 0.24


def test_same_seed_same_bytes(world, flame_dir, tmp_path):
    again = write_flame(cached_world(0), tmp_path / "again")
    assert _hashes(again) == _hashes(flame_dir)
    # an independent build (not the memoised one) gives the same bytes too
    from facemodels.procedural.builder import build_world

    fresh = write_flame(build_world(0), tmp_path / "fresh")
    assert _hashes(fresh) == _hashes(flame_dir)


def test_other_seed_same_mean_other_bases(world, tmp_path):
    from facemodels.procedural.builder import build_world

    w1 = build_world(1)
    np.testing.assert_array_equal(w1.v_template, world.v_template)
    assert not np.allclose(w1.shapedirs[..., 100:300], world.shapedirs[..., 100:300])


@pytest.mark.parametrize("batch", [1, 64])
def test_smplx_loads_and_runs(flame_dir, batch):
    m = smplx.FLAME(
        model_path=str(flame_dir),
        num_betas=300,
        num_expression_coeffs=100,
        use_face_contour=True,
        batch_size=batch,
    )
    g = torch.Generator().manual_seed(0)
    out = m(
        betas=torch.randn(batch, 300, generator=g),
        expression=torch.randn(batch, 100, generator=g),
        global_orient=0.2 * torch.randn(batch, 3, generator=g),
        neck_pose=torch.zeros(batch, 3),
        jaw_pose=torch.zeros(batch, 3),
        leye_pose=torch.zeros(batch, 3),
        reye_pose=torch.zeros(batch, 3),
        transl=torch.zeros(batch, 3),
    )
    assert out.vertices.shape == (batch, 5023, 3)
    assert out.joints.shape == (batch, 5 + 51 + 17, 3)
    assert torch.isfinite(out.vertices).all()


def test_file_contents_match_flame_layout(flame_dir):
    with open(flame_dir / "FLAME_NEUTRAL.pkl", "rb") as fh:
        d = pickle.load(fh, encoding="latin1")
    assert d["shapedirs"].shape == (5023, 3, 400) and d["posedirs"].shape == (5023, 3, 36)
    assert d["J_regressor"].shape == (5, 5023) and d["weights"].shape == (5023, 5)
    assert d["kintree_table"][0].tolist() == [4294967295, 0, 1, 1, 1]
    np.testing.assert_allclose(d["weights"].sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(d["J_regressor"].sum(1), 1.0, atol=1e-12)
    with open(flame_dir / "flame_static_embedding.pkl", "rb") as fh:
        s = pickle.load(fh, encoding="latin1")
    assert s["lmk_face_idx"].shape == (51,) and s["lmk_face_idx"].dtype == np.uint32
    assert s["lmk_b_coords"].shape == (51, 3) and s["lmk_b_coords"].dtype == np.float64
    dyn = np.load(flame_dir / "flame_dynamic_embedding.npy", allow_pickle=True)[()]
    assert dyn["lmk_face_idx"].shape == (79, 17) and dyn["lmk_b_coords"].shape == (79, 17, 3)
    for b in (s["lmk_b_coords"], dyn["lmk_b_coords"]):
        assert b.min() >= -1e-9 and np.allclose(b.sum(-1), 1.0)


def test_landmarks_at_anatomical_places(world, flame_dir):
    m = smplx.FLAME(
        model_path=str(flame_dir), num_betas=10, num_expression_coeffs=10, use_face_contour=True
    )
    j = m().joints[0].detach().double().numpy()
    lmk = np.concatenate([j[5 + 51 :], j[5 : 5 + 51]])  # iBUG order
    np.testing.assert_allclose(lmk, world.landmarks68, atol=1e-6)
    guide = A.landmark_guides()
    # (x, y) as defined anatomically (front view), within 1.5 mm (flat triangles on a curved
    # surface); z within 1 mm of the guides, 2.5 mm for the eyelids (steep socket walls)
    assert np.abs(lmk[:, :2] - guide[:, :2]).max() < 1.5e-3
    dz = np.abs(lmk[:, 2] - guide[:, 2])
    eyes = np.arange(36, 48)
    assert np.nanmax(np.delete(dz, eyes)) < 1e-3 and dz[eyes].max() < 2.5e-3


def test_dynamic_rows_follow_smplx_lookup(flame_dir, world):
    """smplx picks row round(yaw)+... as documented in embedding.py; check at several yaws that
    the contour it returns is the row's contour rotated with the head."""
    m = smplx.FLAME(
        model_path=str(flame_dir), num_betas=10, num_expression_coeffs=10, use_face_contour=True
    )
    dyn = np.load(flame_dir / "flame_dynamic_embedding.npy", allow_pickle=True)[()]
    v, f = world.v_template, world.faces
    for yaw_deg in (-39, -20, -1, 0, 7, 25, 39, 60):
        row = int(np.round(np.clip(-yaw_deg, None, 39)))
        row = row if row >= 0 else (78 if row < -39 else 39 - row)
        assert row_yaw_deg(row) == float(np.clip(yaw_deg, -39, 39))
        expected = (v[f[dyn["lmk_face_idx"][row]]] * dyn["lmk_b_coords"][row][..., None]).sum(1)
        yaw = np.deg2rad(yaw_deg)
        out = m(global_orient=torch.tensor([[0.0, yaw, 0.0]], dtype=torch.float32))
        got = out.joints[0, 5 + 51 :].detach().double().numpy()
        Ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        j0 = world.J_regressor[0] @ v  # global_orient rotates about the root joint
        np.testing.assert_allclose(got, (expected - j0) @ Ry.T + j0, atol=1e-5)


@pytest.mark.parametrize(("yaw_deg", "min_moved"), [(-30, 3), (20, 0), (39, 3)])
def test_contour_slides_to_the_silhouette(world, yaw_deg, min_moved):
    row = -yaw_deg if yaw_deg < 0 else yaw_deg + 39
    v, f = world.v_template, world.faces
    c = (v[f[world.dynamic_faces[row]]] * world.dynamic_bary[row][..., None]).sum(1)  # (17, 3)
    c0 = world.landmarks68[:17]
    yaw = np.deg2rad(yaw_deg)
    xs = lambda p: p[..., 0] * np.cos(yaw) + p[..., 2] * np.sin(yaw)  # noqa: E731
    face = v[world.masks["face"]]
    s = np.sign(yaw_deg)
    away = np.flatnonzero(np.sign(c0[:, 0]) == s)
    near = np.flatnonzero(np.sign(c0[:, 0]) == -s)
    np.testing.assert_allclose(c[near], c0[near])  # the side turning towards the camera stays
    moved = 0
    for i in away:
        if 6 <= i <= 10:  # near the chin bottom the horizontal band cuts the under-chin surface
            continue
        band = face[(np.abs(face[:, 1] - c0[i, 1]) < 0.003) & (np.sign(face[:, 0]) == s)]
        if len(band) == 0:
            continue
        # nothing on the face at this height sticks out beyond the landmark (2 mm slack)
        assert s * xs(c[i]) >= (s * xs(band)).max() - 0.002
        moved += int(np.abs(c[i, 0]) < np.abs(c0[i, 0]) - 1e-3)
    assert (
        moved >= min_moved
    )  # the landmarks on the side turning away slide towards the face centre


def test_row_zero_is_the_anatomical_jaw(world):
    v, f = world.v_template, world.faces
    c = (v[f[world.dynamic_faces[0]]] * world.dynamic_bary[0][..., None]).sum(1)
    np.testing.assert_allclose(c, world.landmarks68[:17], atol=1e-12)


def test_masks(world, flame_dir):
    from facemodels.flame_files import face_region_indices, flame_masks, head_without_neck_indices

    m = flame_masks(flame_dir)
    for key in (
        "face",
        "neck",
        "left_eyeball",
        "right_eyeball",
        "lips",
        "nose",
        "forehead",
        "scalp",
        "eye_region",
        "left_ear",
        "right_ear",
        "boundary",
    ):
        assert key in m and len(m[key]) > 0, key
    assert len(face_region_indices(flame_dir)) == 1609
    hwn = head_without_neck_indices(flame_dir)
    assert len(hwn) == 5023 - len(m["neck"]) and np.intersect1d(hwn, m["neck"]).size == 0
    mir = mirror_index()
    np.testing.assert_allclose(world.v_template[mir] * [-1, 1, 1], world.v_template, atol=1e-9)
    for key in ("face", "neck", "lips", "nose", "forehead", "scalp", "eye_region", "boundary"):
        assert set(mir[m[key]].tolist()) == set(m[key].tolist()), key
    np.testing.assert_array_equal(np.sort(mir[m["left_ear"]]), np.sort(m["right_ear"]))
    np.testing.assert_array_equal(m["left_eyeball"], np.arange(4681, 4852))
    assert (world.v_template[m["left_eyeball"], 0] > 0).all()
    # the face region spans brows to chin and cheek to cheek
    fv = world.v_template[m["face"]]
    lm = world.landmarks68
    assert fv[:, 1].max() > lm[17:27, 1].max() and fv[:, 1].min() < lm[8, 1] + 0.003
    assert fv[:, 0].max() > 0.055 and fv[:, 0].min() < -0.055
    assert np.isin(m["lips"], m["face"]).all() and np.isin(m["nose"], m["face"]).all()


def test_vertex_regions_partition(flame_dir):
    from facemodels.flame_files import flame_masks
    from facemodels.flame_regions import vertex_regions

    r = vertex_regions(flame_dir)
    assert set(r) == {"skin", "brows", "lips", "eyes", "scalp"}
    allv = np.concatenate(list(r.values()))
    assert len(allv) == 5023 and len(np.unique(allv)) == 5023
    m = flame_masks(flame_dir)
    np.testing.assert_array_equal(
        np.sort(r["eyes"]), np.concatenate([m["left_eyeball"], m["right_eyeball"]])
    )
    assert len(r["brows"]) > 30 and len(r["lips"]) > 30 and len(r["scalp"]) > 300


def test_cli_mean_landmarks(world, tmp_path):
    from experiments.world import main

    assert main(["mean-landmarks", "--out", str(tmp_path / "m.npy")]) == 0
    lm = np.load(tmp_path / "m.npy")
    assert lm.shape == (68, 3)
    np.testing.assert_allclose(lm, world.landmarks68)


def test_world_default_dirs_build_once_and_honour_env(tmp_path, monkeypatch, flame_dir):
    from facemodels import world as W
    from facemodels.procedural.builder import VERSION_FILE

    monkeypatch.delenv("FACESUITE_FLAME_DIR", raising=False)
    monkeypatch.setenv("FACESUITE_DATA_ROOT", str(tmp_path / "data"))
    d = W.default_flame_dir()
    assert d == tmp_path / "data" / "facemodels" / "flame_procedural_seed0"
    assert _hashes(d) == _hashes(flame_dir)  # the same bytes as a direct build
    stamp = (d / "FLAME_NEUTRAL.pkl").stat().st_mtime_ns
    assert W.default_flame_dir() == d and (d / "FLAME_NEUTRAL.pkl").stat().st_mtime_ns == stamp
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".flame")]  # no temp leftovers
    # a folder from an older builder version is rebuilt
    (d / VERSION_FILE).write_text("0 seed=0\n")
    assert W.default_flame_dir() == d and (d / VERSION_FILE).read_text().split()[0] != "0"
    # real files via the environment, used as they are
    monkeypatch.setenv("FACESUITE_FLAME_DIR", str(flame_dir))
    assert W.default_flame_dir() == flame_dir
    monkeypatch.setenv("FACESUITE_FLAME_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="FACESUITE_FLAME_DIR"):
        W.default_flame_dir()
