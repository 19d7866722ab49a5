"""Every benchmarks/bench_*.py runs in a tiny mode and prints one valid JSON line last with its
expected keys (timings are never asserted); the runner's markdown sections (loader vs step,
profile table, no-GPU note) are checked on hand-made results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import run as runner
from experiments.harness.resolvers import REPO_ROOT

# Tiny settings per benchmark and the keys its JSON must hold. A new bench_*.py must be added here.
SMOKE: dict[str, tuple[list[str], set[str]]] = {
    "train": (["--smoke", "--threads", "1"],
              {"images_per_s", "image_size", "batch_size", "device", "precision", "profile_top_ops",
               "profile_phase_pct", "compare_with"}),
    "inference": (["--smoke", "--threads", "1"],
                  {"images_per_s", "model", "image_size", "device", "precision", "memory_format", "compiled"}),
    "nmds": (["--smoke", "--threads", "1"],
             {"ours_ms_per_face", "sklearn_ms_per_face", "speedup", "stress_ratio_median", "stress_ratio_max"}),
    "render": (["--n", "2", "--rounds", "1", "--size", "32"], {"images_per_s", "spread"}),
    "fitting": (["--batches", "1", "--scipy-n", "1", "--repeats", "1", "--threads", "1"],
                {"faces_per_s", "scipy_faces_per_s", "speedup_vs_scipy"}),
    "predict": (["--smoke", "--threads", "1"], {"photos_per_s", "seconds_per_photo", "photos", "device"}),
    "loader": (["--workers", "0", "--batch-size", "2", "--batches", "1", "--repeats", "1"],
               {"samples_per_s", "spread", "workers", "image_size"}),
}


def test_every_benchmark_has_smoke_settings():
    assert sorted(SMOKE) == runner.available()


def _params():
    for name in sorted(SMOKE):
        # the loader writes the procedural DAD-3DHeads data on a fresh checkout (minutes)
        marks = [pytest.mark.slow] if name == "loader" else []
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", _params())
def test_benchmark_smoke_prints_json_last(name, tmp_path):
    args, keys = SMOKE[name]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["bench"] == name
    assert keys <= set(result), sorted(keys - set(result))
    if name in ("train", "inference"):
        for fig in result["images_per_s"].values():
            assert set(fig) == {"median", "p10_p90"} and fig["median"] > 0
            assert fig["p10_p90"][0] <= fig["median"] <= fig["p10_p90"][1]
    if name == "train":
        assert set(result["images_per_s"]) == {"tiny", "kp520_mobilenetv2"}
        assert result["profile_top_ops"] and all(o["self_ms_per_step"] >= 0 for o in result["profile_top_ops"])
        assert set(result["profile_phase_pct"]) == {"forward", "backward", "optimizer"}
        assert abs(sum(result["profile_phase_pct"].values()) - 100) < 0.5
    if name == "nmds":
        assert result["stress_ratio_median"] > 0


def test_runner_writes_loader_vs_step_and_profile(tmp_path, monkeypatch):
    results = [
        {"bench": "loader", "samples_per_s": 120.0, "workers": 2, "image_size": 256, "command": "c"},
        {"bench": "train", "image_size": 64, "batch_size": 8, "device": "cpu",
         "images_per_s": {"a": {"median": 60.0, "p10_p90": [50.0, 70.0]},
                          "b": {"median": 240.0, "p10_p90": [200.0, 250.0]}},
         "profile_model": "a", "profile_top_ops": [{"op": "aten::mm", "self_ms_per_step": 3.5, "share_pct": 40.0}],
         "profile_phase_pct": {"backward": 50.0, "forward": 30.0, "optimizer": 20.0},
         "command": "c"},
    ]
    out = tmp_path / "B.md"
    runner.write_markdown(results, out, ["- note line", ""])
    text = out.read_text()
    assert "- note line" in text
    assert "`loader.samples_per_s` = 120.0" in text
    assert "| a | 60.0 | 2.00 | yes |" in text  # 120 / 60
    assert "| b | 240.0 | 0.50 | no |" in text  # 120 / 240
    assert "only indicative" in text  # 256 px loader vs 64 px step
    assert "| `aten::mm` | 3.5 | 40.0 % |" in text
    assert "backward 50.0 %, forward 30.0 %, optimizer 20.0 %" in text
    assert runner.loader_vs_step(results[1:]) == []  # no loader result: no section


def test_runner_uses_a_benchmarks_own_section_writer(tmp_path):
    stages = {"warp": 1.0, "decode": 2.0}
    loader = {"bench": "loader", "samples_per_s": 500.0, "cpu_ms_per_sample": 3.0, "stage_ms": stages,
              "decode_per_sample": {"cpu_ms_per_sample": 4.0, "stage_ms": stages},
              "reference": {"cpu_ms_per_sample": 5.0, "stage_ms": stages},
              "verdict": "VERDICT LINE", "command": "cmd"}
    out = tmp_path / "B.md"
    runner.write_markdown([loader], out)
    text = out.read_text()
    assert "### What bounds the loader" in text and "| **total (cpu_ms_per_sample)** | 5.0 | 4.0 | 3.0 |" in text
    assert "VERDICT LINE" in text and "`cmd`" in text


def test_runner_names_unmeasured_cuda_targets_without_a_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    notes = runner.run_notes(1)
    assert "OMP_NUM_THREADS=1" in notes[0]
    assert any("No GPU" in n for n in notes) and any("batch 256" in n for n in notes)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not any("No GPU" in n for n in runner.run_notes(0))


def test_replace_section_replaces_appends_or_leaves(tmp_path):
    from benchmarks.common import replace_section

    md = tmp_path / "B.md"
    md.write_text("# Benchmarks\n\n## a\n\nold a\n\n## b\n\nkeep b\n")
    replace_section(md, "a", ["## a", "", "new a", ""])
    assert md.read_text() == "# Benchmarks\n\n## a\n\nnew a\n\n## b\n\nkeep b\n"
    replace_section(md, "c", ["## c", "", "only if present"], append=False)
    assert "## c" not in md.read_text()
    replace_section(md, "c", ["## c", "", "appended"])
    assert md.read_text().endswith("keep b\n## c\n\nappended\n")
