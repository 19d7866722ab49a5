"""Round trips of the format readers / writers and their errors on bad files."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

import datamodules.cache as cache
from datamodules.cache import cached_dataset
from datamodules.formats import dad, matfiles
from datamodules.formats.coma import coma_path, list_coma
from facemodels.world import data_root
from fitting.mesh_io import write_ply


def test_coma_listing(tmp_path):
    for s, e, fr in [("FaceTalk_170725_00137_TA", "bareteeth", 1), ("FaceTalk_170725_00137_TA", "eyebrow", 3)]:
        p = coma_path(tmp_path, s, e, fr)
        p.parent.mkdir(parents=True, exist_ok=True)
        write_ply(p, np.zeros((3, 3)))
    (tmp_path / "notes.txt").write_text("x")
    items = list_coma(tmp_path)
    assert [(i.expression, i.frame) for i in items] == [("bareteeth", 1), ("eyebrow", 3)]
    assert items[0].path.name == "bareteeth.000001.ply"
    with pytest.raises(FileNotFoundError, match="FaceTalk_<date>_<id>_TA"):
        list_coma(tmp_path / "nope")


def test_dad_annotation_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(1)
    v = rng.normal(0, 0.1, (5023, 3))
    mv, p = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    vis = rng.integers(0, 2, 5023)
    dad.write_annotation(tmp_path / "a.json", v, mv, p, vis)
    a = dad.read_annotation(tmp_path / "a.json")
    np.testing.assert_allclose(a["vertices"], v, atol=1e-6)
    np.testing.assert_array_equal(a["model_view"], mv)
    np.testing.assert_array_equal(a["visibility"], vis)
    assert a["vertices"].dtype == np.float32
    assert set(json.loads((tmp_path / "a.json").read_text())) == {
        "vertices", "model_view_matrix", "projection_matrix", "suite_visibility"}
    dad.write_annotation(tmp_path / "b.json", v[:5000], mv, p)
    with pytest.raises(dad.DadFormatError, match=r"b.json.*'vertices'.*5023"):
        dad.read_annotation(tmp_path / "b.json")
    (tmp_path / "c.json").write_text('{"vertices": [[1, 2')
    with pytest.raises(dad.DadFormatError, match="c.json.*corrupt"):
        dad.read_annotation(tmp_path / "c.json")
    d = json.loads((tmp_path / "a.json").read_text())
    del d["projection_matrix"]
    (tmp_path / "d.json").write_text(json.dumps(d))
    with pytest.raises(dad.DadFormatError, match="d.json.*projection_matrix"):
        dad.read_annotation(tmp_path / "d.json")


def test_dad_index_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"\{train,val\}/images/<ID>.png"):
        dad.read_index(tmp_path / "missing", "train")
    dad.write_index(tmp_path, "val", [{"item_id": "a", "img_path": "x", "bbox": [1, 2, 3]}])
    with pytest.raises(dad.DadFormatError, match="annotation_path"):
        dad.read_index(tmp_path, "val")


def test_project_dad_hand_value():
    # P maps camera (x, y, z_gl) to pixel*w with f = 100, c = (50, 40); MV identity; H = 80.
    P = np.array([[100.0, 0, -50, 0], [0, 100, -(80 - 40), 0], [0, 0, -1, 0], [0, 0, -1, 0]])
    xy, w = dad.project_dad(np.array([[0.1, 0.2, -2.0]]), np.eye(4), P, 80)
    # depth 2: x = 100*0.1/2 + 50 = 55; y_up = 100*0.2/2 + 40 = 50 -> y = 80 - 50 = 30
    np.testing.assert_allclose(xy, [[55.0, 30.0]])
    np.testing.assert_allclose(w, [2.0])


def _w300lp_fields(rng):
    return {
        "pt2d": rng.uniform(0, 450, (2, 68)), "roi": np.array([[10, 20, 300, 310]]),
        "Pose_Para": rng.normal(size=(1, 7)), "Shape_Para": rng.normal(0, 1e5, (199, 1)),
        "Exp_Para": rng.normal(size=(29, 1)), "Illum_Para": rng.normal(size=(1, 10)),
        "Color_Para": rng.normal(size=(1, 7)), "Tex_Para": rng.normal(size=(199, 1)),
    }


def test_mat_round_trip_keys_shapes_dtypes(tmp_path):
    fields = _w300lp_fields(np.random.default_rng(2))
    matfiles.write_mat(tmp_path / "a.mat", fields, matfiles.W300LP_SPEC)
    out = matfiles.read_mat(tmp_path / "a.mat", matfiles.W300LP_SPEC, check_dtype=True)
    for k, (shape, dtype) in matfiles.W300LP_SPEC.items():
        assert out[k].shape == shape and out[k].dtype == np.dtype(dtype), k
    np.testing.assert_array_equal(out["pt2d"], fields["pt2d"])
    np.testing.assert_array_equal(out["Pose_Para"], fields["Pose_Para"].astype(np.float32))


def test_mat_errors_name_file_and_key(tmp_path):
    fields = _w300lp_fields(np.random.default_rng(3))
    fields["Exp_Para"] = np.zeros((1, 29))
    with pytest.raises(ValueError, match="Exp_Para"):
        matfiles.write_mat(tmp_path / "b.mat", fields, matfiles.W300LP_SPEC)
    import scipy.io as sio
    sio.savemat(str(tmp_path / "c.mat"), {**_w300lp_fields(np.random.default_rng(3)), "pt2d": np.zeros((68, 2))})
    with pytest.raises(matfiles.MatFormatError, match=r"c.mat.*'pt2d'.*\(2, 68\)"):
        matfiles.read_mat(tmp_path / "c.mat", matfiles.W300LP_SPEC)
    (tmp_path / "d.mat").write_bytes(b"MATLAB 5.0 garbage" * 3)
    with pytest.raises(matfiles.MatFormatError, match="d.mat.*corrupt"):
        matfiles.read_mat(tmp_path / "d.mat", matfiles.W300LP_SPEC)


def test_cache_writes_once_under_concurrency(tmp_path):
    calls = []

    def write(out, n):
        calls.append(n)
        (out / "data.txt").write_text(str(n))

    paths = []
    threads = [threading.Thread(target=lambda: paths.append(cached_dataset("toy", {"n": 3}, write, tmp_path)))
               for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert calls == [3] and len(set(paths)) == 1
    assert (paths[0] / "data.txt").read_text() == "3"
    assert cached_dataset("toy", {"n": 4}, write, tmp_path) != paths[0]
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_cache_failed_write_leaves_nothing(tmp_path):
    def boom(out):
        (out / "partial").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        cached_dataset("bad", {}, boom, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_cache_keys_on_the_world_build_version(tmp_path, monkeypatch):
    """A dataset drawn from an older procedural world (facemodels.procedural BUILD_VERSION) is not reused."""
    calls = []

    def write(out, n):
        calls.append(n)

    first = cache.cached_dataset("toy", {"n": 3}, write, tmp_path)
    assert cache.cached_dataset("toy", {"n": 3}, write, tmp_path) == first and calls == [3]
    monkeypatch.setattr(cache, "BUILD_VERSION", cache.BUILD_VERSION + "-next")
    second = cache.cached_dataset("toy", {"n": 3}, write, tmp_path)
    assert second != first and calls == [3, 3]
    assert '"world_build_version"' in (second / "params.json").read_text()


def test_one_data_root_holds_the_world_the_datasets_and_the_split_caches(tmp_path, monkeypatch):
    """$FACESUITE_DATA_ROOT moves every write-once folder of the suite together: the procedural datasets
    (<root>/procedural) beside the face-model world (facemodels.world.data_root)."""
    monkeypatch.setenv("FACESUITE_DATA_ROOT", str(tmp_path / "elsewhere"))
    assert data_root() == tmp_path / "elsewhere"
    assert cache.default_cache_root() == tmp_path / "elsewhere" / "procedural"
    monkeypatch.delenv("FACESUITE_DATA_ROOT")
    assert cache.default_cache_root() == data_root() / "procedural" and data_root().name == "data"
