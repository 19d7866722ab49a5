"""facemodels.flame: loader validation and file variants (sparse J_regressor, .npz, chumpy
pickles), error messages, FlameModel at any batch size."""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from facemodels.flame import FlameModel
from facemodels.flame_files import FlameFormatError, load_flame_arrays

smplx = pytest.importorskip("smplx")
scipy_sparse = pytest.importorskip("scipy.sparse")


def _copy(src: Path, dst: Path) -> Path:
    """A folder of symlinks to src's files (cheap); replace a file with _fresh() before writing."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f)
    return dst


def _fresh(path: Path) -> Path:
    path.unlink()
    return path


def _model_dict(folder: Path) -> dict:
    with open(folder / "FLAME_NEUTRAL.pkl", "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _write_model(folder: Path, d: dict) -> None:
    with open(_fresh(folder / "FLAME_NEUTRAL.pkl"), "wb") as fh:
        pickle.dump(d, fh, protocol=2)


def test_load_arrays(flame_dir):
    a = load_flame_arrays(flame_dir)
    assert (
        a.v_template.shape == (5023, 3) and a.faces.shape == (9976, 3) and a.faces.dtype == np.int64
    )
    assert a.shapedirs.shape == (5023, 3, 400) and a.n_shape == 300 and a.n_expression == 100
    assert a.J_regressor.shape == (5, 5023) and a.weights.shape == (5023, 5)
    assert a.parents.tolist() == [-1, 0, 1, 1, 1]
    assert a.static_lmk_faces.shape == (51,) and a.dynamic_lmk_bary.shape == (79, 17, 3)


def test_sparse_j_regressor_variant(flame_dir, tmp_path):
    d = _copy(flame_dir, tmp_path / "sparse")
    m = _model_dict(d)
    m["J_regressor"] = scipy_sparse.csc_matrix(m["J_regressor"])
    _write_model(d, m)
    a = load_flame_arrays(d)
    np.testing.assert_array_equal(a.J_regressor, load_flame_arrays(flame_dir).J_regressor)
    with torch.no_grad():
        v_sparse = FlameModel(d, n_shape=10, n_exp=10)(
            jaw_pose=torch.tensor([[0.2, 0, 0]])
        ).vertices
        v_dense = FlameModel(flame_dir, n_shape=10, n_exp=10)(
            jaw_pose=torch.tensor([[0.2, 0, 0]])
        ).vertices
    torch.testing.assert_close(v_sparse, v_dense)


def test_npz_variant(flame_dir, tmp_path):
    d = _copy(flame_dir, tmp_path / "npz")
    m = _model_dict(d)
    (d / "FLAME_NEUTRAL.pkl").unlink()
    np.savez(d / "FLAME_NEUTRAL.npz", **m)
    a = load_flame_arrays(d)
    assert a.model_file.name == "FLAME_NEUTRAL.npz"
    np.testing.assert_array_equal(a.shapedirs, m["shapedirs"])
    with torch.no_grad():
        out = FlameModel(d, n_shape=20, n_exp=5)(shape=torch.ones(2, 20))
    ref = FlameModel(flame_dir, n_shape=20, n_exp=5)(shape=torch.ones(2, 20))
    torch.testing.assert_close(out.vertices, ref.vertices.detach())


def test_chumpy_pickle_loads_without_chumpy(flame_dir, tmp_path, monkeypatch):
    """A pickle whose shapedirs is a chumpy object (as in the real FLAME file) loads as numpy."""
    ch = types.ModuleType("chumpy.ch")

    class Ch:  # stands in for chumpy.ch.Ch when writing the file
        def __init__(self, x: np.ndarray) -> None:
            self.x = x

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    ch.Ch = Ch
    pkg = types.ModuleType("chumpy")
    pkg.ch = ch
    d = _copy(flame_dir, tmp_path / "chumpy")
    m = _model_dict(d)
    shapedirs = m["shapedirs"]
    m["shapedirs"] = Ch(shapedirs)
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    _write_model(d, m)
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    with pytest.raises(ModuleNotFoundError):  # plain pickle really needs chumpy
        _model_dict(d)
    np.testing.assert_array_equal(load_flame_arrays(d).shapedirs, shapedirs)
    with torch.no_grad():
        out = FlameModel(d, n_shape=5, n_exp=5)(shape=torch.ones(1, 5))
        ref = FlameModel(flame_dir, n_shape=5, n_exp=5)(shape=torch.ones(1, 5))
    torch.testing.assert_close(out.vertices, ref.vertices)


def test_missing_folder_and_files(flame_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_flame_arrays(tmp_path / "nope")
    d = _copy(flame_dir, tmp_path / "nostatic")
    (d / "flame_static_embedding.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="flame_static_embedding.pkl"):
        load_flame_arrays(d)
    d = _copy(flame_dir, tmp_path / "nomodel")
    (d / "FLAME_NEUTRAL.pkl").unlink()
    with pytest.raises(FileNotFoundError, match="FLAME_NEUTRAL"):
        load_flame_arrays(d)


def test_corrupt_pickle_names_the_file(flame_dir, tmp_path):
    d = _copy(flame_dir, tmp_path / "corrupt")
    _fresh(d / "FLAME_NEUTRAL.pkl").write_bytes(b"\x80\x02not a pickle at all")
    with pytest.raises(FlameFormatError, match="FLAME_NEUTRAL.pkl"):
        load_flame_arrays(d)
    d = _copy(flame_dir, tmp_path / "corrupt_dyn")
    _fresh(d / "flame_dynamic_embedding.npy").write_bytes(b"garbage")
    with pytest.raises(FlameFormatError, match="flame_dynamic_embedding.npy"):
        load_flame_arrays(d)


@pytest.mark.parametrize(
    ("key", "bad", "pattern"),
    [
        (
            "shapedirs",
            lambda a: a[:, :, :, None],
            r"'shapedirs' has shape .*expected \(5023, 3, N\)",
        ),
        (
            "posedirs",
            lambda a: a[:, :, :30],
            r"'posedirs' has shape \(5023, 3, 30\), expected \(5023, 3, 36\)",
        ),
        ("weights", lambda a: a[:, :4], r"'weights' has shape \(5023, 4\), expected \(5023, 5\)"),
        ("f", lambda a: a[:100], r"'f' has shape \(100, 3\), expected \(9976, 3\)"),
        ("v_template", lambda a: a[:5000], r"'v_template' has 5000 vertices, expected 5023"),
    ],
)
def test_wrong_shapes_name_key_and_expected(flame_dir, tmp_path, key, bad, pattern):
    d = _copy(flame_dir, tmp_path / key)
    m = _model_dict(d)
    m[key] = bad(m[key])
    _write_model(d, m)
    with pytest.raises(FlameFormatError, match=pattern) as err:
        load_flame_arrays(d)
    assert "FLAME_NEUTRAL.pkl" in str(err.value)


def test_missing_key_is_named(flame_dir, tmp_path):
    d = _copy(flame_dir, tmp_path / "nokey")
    m = _model_dict(d)
    del m["J_regressor"]
    _write_model(d, m)
    with pytest.raises(
        FlameFormatError,
        match=r"FLAME_NEUTRAL.pkl: missing key 'J_regressor' \(expected shape \(5, 5023\)\)",
    ):
        load_flame_arrays(d)
    d = _copy(flame_dir, tmp_path / "nokey_static")
    with open(_fresh(d / "flame_static_embedding.pkl"), "wb") as fh:
        pickle.dump({"lmk_face_idx": np.zeros(51, np.uint32)}, fh)
    with pytest.raises(
        FlameFormatError, match=r"flame_static_embedding.pkl: missing key 'lmk_b_coords'"
    ):
        load_flame_arrays(d)


@pytest.mark.parametrize("batch", [1, 64])
def test_flame_model_any_batch(flame_dir, batch):
    model = FlameModel(flame_dir, n_shape=50, n_exp=20)
    g = torch.Generator().manual_seed(batch)
    args = dict(
        shape=torch.randn(batch, 50, generator=g),
        expression=torch.randn(batch, 20, generator=g),
        global_orient=0.3 * torch.randn(batch, 3, generator=g),
        neck_pose=0.1 * torch.randn(batch, 3, generator=g),
        jaw_pose=0.1 * torch.rand(batch, 3, generator=g),
        eye_pose=0.1 * torch.randn(batch, 6, generator=g),
        transl=torch.randn(batch, 3, generator=g),
    )
    with torch.no_grad():
        out = model(**args)
    assert out.vertices.shape == (batch, 5023, 3)
    assert out.landmarks68.shape == (batch, 68, 3) and out.joints.shape == (batch, 5, 3)
    # matches smplx called directly with the same inputs
    ref = smplx.FLAME(
        model_path=str(flame_dir),
        num_betas=50,
        num_expression_coeffs=20,
        use_face_contour=True,
        batch_size=batch,
    )
    with torch.no_grad():
        r = ref(
            betas=args["shape"],
            expression=args["expression"],
            global_orient=args["global_orient"],
            neck_pose=args["neck_pose"],
            jaw_pose=args["jaw_pose"],
            leye_pose=args["eye_pose"][:, :3],
            reye_pose=args["eye_pose"][:, 3:],
            transl=args["transl"],
        )
    torch.testing.assert_close(out.vertices, r.vertices)
    torch.testing.assert_close(out.landmarks68, torch.cat([r.joints[:, 56:], r.joints[:, 5:56]], 1))
    # the translation is applied to everything
    torch.testing.assert_close(
        out.vertices.mean(1) - args["transl"], r.vertices.mean(1) - args["transl"]
    )


def test_flame_model_defaults_and_errors(flame_dir):
    model = FlameModel(flame_dir, n_shape=10, n_exp=10)
    with torch.no_grad():
        out = model()
        out3 = model(jaw_pose=torch.zeros(3, 3))
    assert out.vertices.shape == (1, 5023, 3) and out3.vertices.shape == (3, 5023, 3)
    np.testing.assert_allclose(
        out.vertices[0].numpy(), load_flame_arrays(flame_dir).v_template, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"shape has shape \(2, 11\), expected \(2, 10\)"):
        model(shape=torch.zeros(2, 11))
    with pytest.raises(ValueError, match="expression"):
        model(shape=torch.zeros(2, 10), expression=torch.zeros(3, 10))


# ------------------------------------------------------------------ the one reader (flame_files)
def _chumpy_module(monkeypatch):
    """A stand-in ``chumpy.ch.Ch`` class registered while the test writes its pickle."""
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x: np.ndarray) -> None:
            self.x = x

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    pkg = types.ModuleType("chumpy")
    pkg.ch = ch
    monkeypatch.setitem(sys.modules, "chumpy", pkg)
    monkeypatch.setitem(sys.modules, "chumpy.ch", ch)
    return Ch


def test_masks_and_embedding_with_chumpy_objects_read_through_the_same_reader(
    flame_dir, tmp_path, monkeypatch
):
    from facemodels.flame_files import flame_mask, ibug68_embedding, read_pickle

    Ch = _chumpy_module(monkeypatch)
    d = _copy(flame_dir, tmp_path / "chumpy_masks")
    masks = read_pickle(flame_dir / "FLAME_masks.pkl")
    emb = read_pickle(flame_dir / "flame_static_embedding.pkl")
    with open(_fresh(d / "FLAME_masks.pkl"), "wb") as fh:
        pickle.dump({**masks, "face": Ch(np.asarray(masks["face"]))}, fh, protocol=2)
    with open(_fresh(d / "flame_static_embedding.pkl"), "wb") as fh:
        pickle.dump({**emb, "lmk_b_coords": Ch(np.asarray(emb["lmk_b_coords"]))}, fh, protocol=2)
    monkeypatch.delitem(sys.modules, "chumpy")
    monkeypatch.delitem(sys.modules, "chumpy.ch")
    np.testing.assert_array_equal(flame_mask(d, "face"), masks["face"])
    faces, bary = ibug68_embedding(d)
    ref_faces, ref_bary = ibug68_embedding(flame_dir)
    np.testing.assert_array_equal(faces, ref_faces)
    np.testing.assert_array_equal(bary, ref_bary)
    assert faces.shape == (68,) and bary.shape == (68, 3)


def test_reader_errors_name_file_key_and_expectation(flame_dir, tmp_path):
    from facemodels.flame_files import flame_mask, read_flame_template, read_pickle

    d = _copy(flame_dir, tmp_path / "errors")
    with pytest.raises(FlameFormatError, match=r"FLAME_masks.pkl: missing key 'chin'.*found \["):
        flame_mask(d, "chin")
    m = _model_dict(d)
    del m["v_template"]
    _write_model(d, m)
    with pytest.raises(
        FlameFormatError,
        match=r"FLAME_NEUTRAL.pkl: missing key 'v_template' \(expected shape \(N, 3\)\)",
    ):
        read_flame_template(d)
    good = (flame_dir / "FLAME_masks.pkl").read_bytes()
    _fresh(d / "FLAME_masks.pkl").write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(FlameFormatError, match=r"FLAME_masks.pkl: cannot read the pickle"):
        flame_mask(d, "face")
    with open(tmp_path / "list.pkl", "wb") as fh:
        pickle.dump([1, 2], fh)
    with pytest.raises(FlameFormatError, match=r"list.pkl: expected a pickled dict, got list"):
        read_pickle(tmp_path / "list.pkl")
    with pytest.raises(FileNotFoundError, match=r"absent.pkl: not found"):
        read_pickle(tmp_path / "absent.pkl")
