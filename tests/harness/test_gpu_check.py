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

STEPS = ["env", "data", "fitting", "train", "inference", "train_compile", "pytest_gpu", "loader", "train_run",
         "fit", "train_ddp", "predict"]


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
    assert status["loader"].startswith("skipped: smoke") and status["data"].startswith("skipped: smoke")
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


def test_run_steps_waits_for_background_steps_and_keeps_inside_the_budget(tmp_path):
    py = [sys.executable, "-c"]
    todo = [gpu_check.Step("bg", [*py, "import time; time.sleep(0.5); print('{\"x\": 1}')"], 30, background=True),
            gpu_check.Step("a", [*py, "print('a')"], 30, after="bg"),
            gpu_check.Step("long", [*py, "import time; time.sleep(60)"], 600),
            gpu_check.Step("late", [*py, "print(1)"], 30)]
    seen = []
    gpu_check.run_steps(todo, tmp_path, budget=4, report=lambda n, e: seen.append((n, e)), min_step=1, margin=0)
    assert [n for n, _ in seen] == ["bg", "a", "long", "late"]  # bg collected before the step after it
    e = dict(seen)
    assert e["bg"]["status"] == "ok" and e["bg"]["seconds"] >= 0.5
    assert e["a"]["status"] == "ok"
    assert e["long"]["status"] == "timeout" and e["long"]["timeout_s"] <= 4  # cut from 600 to what was left
    assert e["late"]["status"] == "skipped: out of time"
    assert json.loads((tmp_path / "bg.json").read_text()) == {"x": 1}
    assert (tmp_path / "a.log").read_text().splitlines()[-1] == "a"  # the output streams into the log


def test_max_time_is_lightnings_format():
    assert gpu_check.max_time(1.5) == "00:00:01:30" and gpu_check.max_time(2) == "00:00:02:00"
    assert gpu_check.max_time(75) == "00:01:15:00"


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
