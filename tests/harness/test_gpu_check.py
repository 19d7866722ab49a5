"""The prepared device check (benchmarks/gpu_check.py, `make gpu-check`) in its CPU smoke mode:
every step is in the summary with a status, the CUDA-only ones say why they were skipped, the
benchmarks that ran give positive finite figures, and each step left its log / JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

from benchmarks import gpu_check
from experiments.harness.resolvers import REPO_ROOT

STEPS = ["env", "pytest_gpu", "fitting", "train", "train_compile", "loader", "inference", "predict",
         "train_run", "train_ddp", "fit"]


def test_smoke_mode_summary_has_every_step_with_a_status(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="",
               GPU_CHECK_WORK=str(tmp_path / "work"))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path / "out"),
                           "--smoke"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary == json.loads((tmp_path / "out" / "summary.json").read_text())
    assert list(summary["steps"]) == STEPS and summary["smoke"] is True
    status = {k: v["status"] for k, v in summary["steps"].items()}
    for name in ("pytest_gpu", "train_compile", "train_run", "train_ddp", "fit"):
        assert status[name] == "skipped: no CUDA", status
    assert status["loader"].startswith("skipped: smoke")
    for name in ("env", "fitting", "train", "inference", "predict"):
        assert status[name] == "ok", summary["steps"][name]
        assert (tmp_path / "out" / "steps" / f"{name}.log").stat().st_size > 0
        assert json.loads((tmp_path / "out" / "steps" / f"{name}.json").read_text())
    figs = {k: v["figures"] for k, v in summary["steps"].items()}
    assert figs["env"]["torch"] and figs["env"]["cuda_available"] is False
    numbers = [*figs["fitting"]["faces_per_s"].values(), figs["fitting"]["host_syncs_per_lm_iteration"],
               *[f["median"] for f in figs["train"]["images_per_s"].values()],
               *[f["median"] for f in figs["inference"]["images_per_s"].values()],
               figs["predict"]["photos_per_s"]["median"]]
    assert len(numbers) == 6 and all(math.isfinite(x) and x > 0 for x in numbers), numbers
    # the suite's own host syncs per LM iteration on the CPU path (tests/harness/test_host_syncs.py)
    assert figs["fitting"]["host_syncs_per_lm_iteration_by_owner"]["theseus"] > 0


def test_check_figures_flags_missing_and_non_positive_numbers():
    ok = {"images_per_s": {"a": {"median": 3.0}, "b": {"median": 1.5}}}
    assert gpu_check.check_figures("train", ok) == []
    bad = {"images_per_s": {"a": {"median": 0.0}, "b": {"median": float("nan")}}}
    assert len(gpu_check.check_figures("train", bad)) == 2
    assert gpu_check.check_figures("loader", {}) == ["samples_per_s: missing"]


def test_fit_module_prefers_the_environment_then_experiments_fit(monkeypatch):
    monkeypatch.setenv("FIT_MODULE", "some.module")
    assert gpu_check.fit_module() == "some.module"
    monkeypatch.delenv("FIT_MODULE")
    assert gpu_check.fit_module() == "experiments.fit"
