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
