"""`make help` lists every target with one line; `make models` (list_configs) lists the model configs."""

from __future__ import annotations

import re
import subprocess
import sys

from experiments.harness.resolvers import REPO_ROOT


def test_make_help_lists_every_target():
    out = subprocess.run(["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    makefile = (REPO_ROOT / "Makefile").read_text()
    targets = re.findall(r"^([a-z][a-z-]*):.*## ", makefile, flags=re.M)
    assert {"install", "test", "train", "eval", "fit", "predict", "sweep", "reproduce", "bench"} <= set(targets)
    for t in targets:
        assert re.search(rf"make {t}\s+\S", out), t


def test_list_model_configs_shows_headline_model_with_description():
    out = subprocess.run([sys.executable, "-m", "experiments.list_configs", "model"], cwd=REPO_ROOT,
                         capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("resll_convnext "))
    assert "ResLL Exp" in line or "ConvNeXt" in line


def _make(*args: str) -> subprocess.CompletedProcess:
    """`make -s ARGS` with this interpreter and without the install stamp (never installs)."""
    return subprocess.run(["make", "-s", *args, "STAMP=", f"PY={sys.executable}"], cwd=REPO_ROOT,
                          capture_output=True, text=True)


def test_make_data_usage_lists_the_registered_writers():
    from datamodules.registry import dataset_names

    proc = _make("data")
    assert proc.returncode == 2
    assert f"usage: make data DATASET={'|'.join(dataset_names('write'))} OUT=dir" in proc.stdout
    assert "dad3dheads|w300lp|aflw2000|coma|bfm" in proc.stdout


def test_make_data_then_check_data(tmp_path):
    proc = _make("data", "DATASET=bfm", f"OUT={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.glob("*.mat")) == ["01_MorphableModel.mat", "Model_Expression.mat",
                                                               "model_info.mat"]
    proc = _make("check-data", "DATASET=bfm", f"DIR={tmp_path}")
    assert proc.returncode == 0 and "checked 3 files, 0 problem(s)" in proc.stdout, proc.stdout + proc.stderr
    (tmp_path / "model_info.mat").write_bytes(b"not a mat file")
    proc = _make("check-data", "DATASET=bfm", f"DIR={tmp_path}")
    assert proc.returncode != 0 and "1 problem(s)" in proc.stdout, proc.stdout + proc.stderr
