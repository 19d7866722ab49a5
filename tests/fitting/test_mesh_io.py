"""fitting.mesh_io: PLY / OBJ round trips, hand-written files, and files written by plyfile."""

from __future__ import annotations

import numpy as np
import pytest
from plyfile import PlyData, PlyElement

from fitting.mesh_io import (
    PlyError,
    read_mesh,
    read_obj,
    read_ply,
    write_mesh,
    write_obj,
    write_ply,
)


@pytest.mark.parametrize("ascii", [False, True])
def test_ply_round_trip(tmp_path, ascii):
    rng = np.random.default_rng(0)
    v = rng.normal(0, 0.1, (50, 3)) + [0, 1.5, 0]
    f = rng.integers(0, 50, (40, 3))
    write_ply(tmp_path / "m.ply", v, f, ascii=ascii)
    v2, f2 = read_ply(tmp_path / "m.ply")
    np.testing.assert_allclose(v2, v.astype(np.float32), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(f2, f)
    head = (tmp_path / "m.ply").read_bytes()[:40]
    assert head.startswith(b"ply\nformat " + (b"ascii" if ascii else b"binary_little_endian"))


def test_ply_big_endian_double_with_extra_props(tmp_path):
    v = np.array([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.5]])
    head = (b"ply\nformat binary_big_endian 1.0\ncomment x\nelement vertex 3\n"
            b"property double x\nproperty double y\nproperty double z\nproperty uchar red\n"
            b"element face 1\nproperty list uchar uint vertex_indices\nend_header\n")
    dt = np.dtype([("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("r", "u1")])
    rec = np.zeros(3, dt)
    rec["x"], rec["y"], rec["z"], rec["r"] = v[:, 0], v[:, 1], v[:, 2], 7
    face = np.zeros(1, [("n", "u1"), ("i", ">u4", (3,))])
    face["n"], face["i"] = 3, [2, 1, 0]
    (tmp_path / "b.ply").write_bytes(head + rec.tobytes() + face.tobytes())
    v2, f2 = read_ply(tmp_path / "b.ply")
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(f2, [[2, 1, 0]])


def test_ply_truncated_and_garbage_name_the_file(tmp_path):
    write_ply(tmp_path / "t.ply", np.zeros((10, 3)), np.zeros((4, 3), int))
    raw = (tmp_path / "t.ply").read_bytes()
    (tmp_path / "t.ply").write_bytes(raw[:-20])
    with pytest.raises(PlyError, match="t.ply.*truncated"):
        read_ply(tmp_path / "t.ply")
    (tmp_path / "g.ply").write_bytes(b"\x00garbage")
    with pytest.raises(PlyError, match="g.ply"):
        read_ply(tmp_path / "g.ply")


def test_write_mesh_obj_and_ply(tmp_path):
    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    f = np.array([[0, 1, 2]])
    obj = write_mesh(tmp_path / "t.obj", v, f).read_text().splitlines()
    assert obj[1] == "v 1.000000 0.000000 0.000000" and obj[-1] == "f 1 2 3"
    ply = write_mesh(tmp_path / "t.ply", v, f).read_text().splitlines()
    assert ply[1] == "format ascii 1.0" and ply[2] == "element vertex 3" and ply[-1] == "3 0 1 2"
    for name in ("t.obj", "t.ply"):
        v2, f2 = read_mesh(tmp_path / name)
        np.testing.assert_array_equal(v2, v)
        np.testing.assert_array_equal(f2, f)


def _plyfile_mesh(v: np.ndarray, f: np.ndarray, coord: str = "f4", extra: bool = False) -> PlyData:
    props = [("x", coord), ("y", coord), ("z", coord)] + ([("red", "u1"), ("nx", "f4")] if extra else [])
    vert = np.zeros(len(v), dtype=props)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    if extra:
        vert["red"], vert["nx"] = 200, 0.5
    face = np.zeros(len(f), dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"] = f
    return [PlyElement.describe(vert, "vertex"), PlyElement.describe(face, "face")]


@pytest.mark.parametrize("encoding", ["binary_little_endian", "ascii", "binary_big_endian"])
@pytest.mark.parametrize("coord,extra", [("f4", False), ("f8", True)])
def test_reads_files_written_by_plyfile(tmp_path, encoding, coord, extra):
    rng = np.random.default_rng(1)
    v = rng.normal(0, 0.1, (30, 3)).astype(coord)
    f = rng.integers(0, 30, (20, 3))
    byte_order = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "="}[encoding]
    PlyData(_plyfile_mesh(v, f, coord, extra), text=encoding == "ascii", byte_order=byte_order).write(
        str(tmp_path / "p.ply")
    )
    v2, f2 = read_ply(tmp_path / "p.ply")
    np.testing.assert_array_equal(v2, v.astype(np.float64))
    np.testing.assert_array_equal(f2, f)


@pytest.mark.parametrize("ascii", [False, True])
def test_plyfile_reads_ours(tmp_path, ascii):
    rng = np.random.default_rng(2)
    v = rng.normal(0, 0.1, (25, 3))
    f = rng.integers(0, 25, (12, 3))
    write_ply(tmp_path / "o.ply", v, f, ascii=ascii)
    ply = PlyData.read(str(tmp_path / "o.ply"))
    assert ply.text == ascii and (ascii or ply.byte_order == "<")
    got = np.stack([ply["vertex"][k] for k in "xyz"], 1)
    assert ply["vertex"]["x"].dtype == np.float32
    np.testing.assert_array_equal(got, v.astype(np.float32))
    np.testing.assert_array_equal(np.stack(ply["face"]["vertex_indices"]), f)


def test_obj_hand_written_file_and_round_trip(tmp_path):
    # a unit square as one quad with texture / normal indices and a triangle with negative
    # (relative) indices; by hand: the quad fans into (0, 1, 2), (0, 2, 3), the triangle is (1, 2, 3)
    (tmp_path / "h.obj").write_text(
        "# comment\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0.5\nvt 0 0\nvn 0 0 1\n"
        "f 1/1/1 2/1/1 3/1/1 4/1/1\nf -3 -2 -1\n"
    )
    v, f = read_obj(tmp_path / "h.obj")
    np.testing.assert_array_equal(v, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0.5]])
    np.testing.assert_array_equal(f, [[0, 1, 2], [0, 2, 3], [1, 2, 3]])
    write_obj(tmp_path / "r.obj", v, f)
    v2, f2 = read_mesh(tmp_path / "r.obj")
    np.testing.assert_array_equal(v2, v)
    np.testing.assert_array_equal(f2, f)
    (tmp_path / "bad.obj").write_text("v 0 0 0\nf 1 2 x\n")
    with pytest.raises(ValueError, match=r"bad.obj:2"):
        read_obj(tmp_path / "bad.obj")


def test_write_mesh_checks_shapes_indices_and_suffix(tmp_path):
    v = np.zeros((3, 3))
    with pytest.raises(ValueError, match="face indices"):
        write_mesh(tmp_path / "a.ply", v, np.array([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"faces must be \(F, 3\)"):
        write_mesh(tmp_path / "a.obj", v, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="suffix"):
        write_mesh(tmp_path / "a.stl", v, np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match="suffix"):
        read_mesh(tmp_path / "a.stl")
