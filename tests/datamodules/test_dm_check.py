"""experiments.data check: one line per problem naming the path, exit code 1."""

from __future__ import annotations

import numpy as np
from PIL import Image

from datamodules.formats import dad
from datamodules.formats.coma import coma_path
from experiments.data import main
from fitting.mesh_io import write_ply


def _dad_folder(root, n=3):
    rng = np.random.default_rng(0)
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "annotations").mkdir(parents=True)
    entries = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(root / "val" / "images" / f"{i}.png")
        dad.write_annotation(root / "val" / "annotations" / f"{i}.json", rng.normal(size=(5023, 3)), np.eye(4), np.eye(4))
        entries.append({"item_id": str(i), "img_path": f"val/images/{i}.png",
                        "annotation_path": f"val/annotations/{i}.json", "bbox": [1, 1, 10, 10]})
    dad.write_index(root, "val", entries)


def test_check_clean_dad_folder(tmp_path, capsys):
    _dad_folder(tmp_path)
    assert main(["check", "--dataset", "dad3dheads", "--dir", str(tmp_path)]) == 0
    assert "checked 6 files, 0 problem(s)" in capsys.readouterr().out


def test_check_reports_each_problem(tmp_path, capsys):
    _dad_folder(tmp_path)
    (tmp_path / "val" / "images" / "0.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "val" / "annotations" / "1.json").unlink()
    dad.write_annotation(tmp_path / "val" / "annotations" / "2.json", np.full((5023, 3), np.nan), np.eye(4), np.eye(4))
    assert main(["check", "--dataset", "dad3dheads", "--dir", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    assert "0.png: corrupt image" in lines[0]
    assert "1.json" in lines[1] and "missing" in lines[1]
    assert "2.json" in lines[2] and "NaN" in lines[2]
    assert "3 problem(s)" in lines[3]


def test_check_coma_vertex_count(tmp_path, capsys):
    p = coma_path(tmp_path, "FaceTalk_170725_00137_TA", "bareteeth", 0)
    p.parent.mkdir(parents=True)
    write_ply(p, np.zeros((5000, 3)))
    assert main(["check", "--dataset", "coma", "--dir", str(tmp_path)]) == 1
    assert "5000 vertices, expected 5023" in capsys.readouterr().out
