"""Every sweep file parses and every command line an agent would issue composes a valid run; every
reproduce recipe's runs compose at both scales."""

from __future__ import annotations

import hydra
import pytest
from omegaconf import OmegaConf

from experiments import experiment_files, reproduce, sweep
from tests.harness.compose import compose_config

SWEEPS = experiment_files.names("sweep")


@pytest.mark.parametrize("name", SWEEPS)
def test_sweep_grid_points_compose(name, tmp_path):
    spec = sweep.load_sweep(name)
    assert spec["command"][-1] == "${args_no_hyphens}"  # key=value, the form Hydra parses
    points = sweep.grid_points(spec)
    assert points
    for args in points:
        cfg = compose_config("train", args, tmp_path)
        OmegaConf.resolve(cfg)
    # the offline fallback is the same grid as one Hydra multirun
    multirun = sweep.multirun_args(spec)
    assert len(multirun) == len(spec["parameters"])


def test_grid_points_enumerate_the_product():
    spec = {"method": "grid", "command": [], "parameters": {"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]},
                                                           "c": {"value": 0}}}
    points = sweep.grid_points(spec)
    assert len(points) == 6 and ["a=1", "b=x", "c=0"] in points
    assert sweep.multirun_args(spec) == ["a=1,2", "b=x,y,z", "c=0"]


@pytest.mark.parametrize("name", reproduce.available())
def test_recipe_runs_compose(name, tmp_path):
    recipe = reproduce.load_recipe(name)
    for scale in ("quick", "full"):
        for run in recipe["runs"]:
            cmd = reproduce.train_command(name, scale, recipe, run)
            overrides = [a for a in cmd[3:] if not a.startswith("hydra.")]
            cfg = compose_config("train", overrides, tmp_path)
            OmegaConf.resolve(cfg)
            # the DataModule accepts the model's landmark set (each one checks its topology on construction)
            hydra.utils.instantiate(cfg.data)


def test_a_runs_override_wins_over_its_scales(tmp_path):
    recipe = {"runs": [{"name": "r", "overrides": ["model=tiny", "data=synthetic", "trainer.max_epochs=1"]}],
              "scales": {"quick": ["trainer.max_epochs=12", "model.optimizer.lr=0.5"]}}
    cmd = reproduce.train_command("t", "quick", recipe, recipe["runs"][0])
    cfg = compose_config("train", [a for a in cmd[3:] if not a.startswith("hydra.")], tmp_path)
    assert cfg.trainer.max_epochs == 1 and cfg.model.optimizer.lr == 0.5


# ---------------------------------------------------------------------------------- the fitting stage
FIT_RECIPES = [n for n in reproduce.available() if reproduce.load_recipe(n).get("fit")]


def test_some_recipes_have_a_fitting_stage():
    assert {"thesis_t44", "thesis_t46"} <= set(FIT_RECIPES)


@pytest.mark.parametrize("name", FIT_RECIPES)
def test_recipe_fit_commands_compose(name, tmp_path):
    """Every (scale, run, variant) fit command composes configs/fit.yaml, and the fitted landmark set
    is the network's own set or a subset of it."""
    from facemodels.world import default_flame_dir
    from fitting.fit_loop import subset_columns

    recipe = reproduce.load_recipe(name)
    variants = reproduce.fit_variants(recipe)
    assert variants and len({v["name"] for v in variants}) == len(variants)
    for scale in ("quick", "full"):
        for variant in variants:  # the runs differ only in the checkpoint and the run dir: compose once
            run = recipe["runs"][0]
            cmd = reproduce.fit_command(name, scale, recipe, run, variant, tmp_path / "best.ckpt")
            assert cmd[1:3] == ["-m", "experiments.fit"]
            assert cmd[-1] == f"hydra.run.dir={reproduce.fit_dir(name, scale, run, variant)}"
            cfg = compose_config("fit", [a for a in cmd[3:] if not a.startswith("hydra.")], tmp_path)
            assert cfg.ckpt_path == str(tmp_path / "best.ckpt") and cfg.split == "test" and cfg.data_from_run
    subsets = {v["name"]: o.split("=", 1)[1] for v in variants for o in v.get("overrides", [])
               if o.startswith("fitting.landmark_set=")}
    for run in recipe["runs"] if subsets else []:  # a fitted subset must be within the network's set
        train_cmd = reproduce.train_command(name, "quick", recipe, run)
        train_cfg = compose_config("train", [a for a in train_cmd[3:] if not a.startswith("hydra.")], tmp_path)
        for fit_set in subsets.values():
            cols = subset_columns(train_cfg.model.landmark_set, fit_set, default_flame_dir())
            assert cols is None or len(cols) < 1609


def _fake_run(directory, csv_rows: list[dict]):
    import csv

    (directory / "csv").mkdir(parents=True)
    with open(directory / "csv" / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=sorted({k for r in csv_rows for k in r}))
        w.writeheader()
        w.writerows(csv_rows)


def test_report_rows_merge_training_and_fit_metrics(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(reproduce, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(reproduce, "DOCS", tmp_path / "docs")
    recipe = {"title": "T", "metrics": {"test/mlme": "MLME", "test/mve_face_mm": "MVE face", "test/n_valid": "valid"},
              "scales": {"quick": []},
              "runs": [{"name": "a", "label": "A", "overrides": [], "paper": {"MLME": 2.1}}],
              "fit": {"variants": [{"name": "v1", "label": "1609", "paper": {"MVE face": 7.8}},
                                   {"name": "v2", "label": "805"}]},
              "reference_rows": [{"label": "DECA", "paper": {"MVE face": 11.3}}]}
    run = recipe["runs"][0]
    _fake_run(reproduce.run_dir("t", "quick", run), [{"epoch": 0, "test/mlme": ""}, {"epoch": 1, "test/mlme": 3.5}])
    v1 = reproduce.fit_dir("t", "quick", run, recipe["fit"]["variants"][0])
    v1.mkdir(parents=True)
    (v1 / "fit_metrics.json").write_text(json.dumps({"test/mve_face_mm": 9.25}))
    rows = reproduce.report_rows("t", "quick", recipe)
    assert [(r["label"], r["paper"]) for r, _ in rows] == [
        ("1609", {"MLME": 2.1, "MVE face": 7.8}), ("805", {"MLME": 2.1}), ("DECA", {"MVE face": 11.3})]
    assert rows[0][1]["test/mlme"] == 3.5 and rows[0][1]["test/mve_face_mm"] == 9.25
    assert "test/mve_face_mm" not in rows[1][1] and rows[2][1] == {}
    report = reproduce.write_report("t", "quick", recipe, {"a": 120.0}, "cmd").read_text()
    assert "| 1609 | 3.5 | 9.25 | - | 2.1 | 7.8 | 2.0 |" in report
    assert "| 805 | 3.5 | - | - | 2.1 | - | 2.0 |" in report and "| DECA | - | - | - | - | 11.3 | - |" in report
    assert "| valid (ours) | MLME (paper) |" in report  # no paper column where the paper gives no number
    # one variant: the fit's metrics join the run's own row
    recipe["fit"] = {"variants": [recipe["fit"]["variants"][0]]}
    rows = reproduce.report_rows("t", "quick", recipe)
    assert rows[0][0]["label"] == "A" and rows[0][1]["test/mve_face_mm"] == 9.25


def test_best_checkpoint_and_finished_fits(tmp_path):
    import os

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    assert reproduce.best_checkpoint(tmp_path) is None
    (ckpts / "last.ckpt").write_text("x")
    assert reproduce.best_checkpoint(tmp_path) == ckpts / "last.ckpt"
    for i, name in enumerate(("best-epoch003.ckpt", "best-epoch001.ckpt")):  # the newer file wins
        (ckpts / name).write_text("x")
        os.utime(ckpts / name, (1000 + i, 1000 + i))
    assert reproduce.best_checkpoint(tmp_path) == ckpts / "best-epoch001.ckpt"
    out = tmp_path / "fit"
    out.mkdir()
    assert not reproduce.fit_is_done(out, ckpts / "best-epoch001.ckpt")
    (out / "fit_metrics.json").write_text("{}")
    os.utime(out / "fit_metrics.json", (1002, 1002))
    assert reproduce.fit_is_done(out, ckpts / "best-epoch001.ckpt")
    os.utime(ckpts / "best-epoch001.ckpt", (2000, 2000))  # retrained after the fit: fit again
    assert not reproduce.fit_is_done(out, ckpts / "best-epoch001.ckpt")


@pytest.mark.slow
def test_tiny_recipe_trains_fits_reports_and_skips_finished_fits(tmp_path, monkeypatch):
    """reproduce.run_recipe end to end: a tiny network on tiny DAD-format data, then two fits (its own
    202 landmarks and the 101 subset, 2 + 2 LM iterations); a rerun skips both fits."""
    from tests.harness.run_cli import env_for_tests

    for k, v in env_for_tests(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(reproduce, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(reproduce, "DOCS", tmp_path / "docs")
    data = ["data.n_train=8", "data.n_val=4", "data.n_test=4", "data.frame_size=160", "data.batch_size=2",
            "data.num_workers=0", "data.persistent_workers=false"]
    recipe = {
        "title": "tiny", "metrics": {"test/mlme": "MLME", "test/mve_face_mm": "MVE face", "test/mrle_px": "MRLE"},
        "scales": {"quick": ["model=tiny", "model.landmark_set=face202", "trainer.max_epochs=1",
                             "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", *data]},
        "runs": [{"name": "r", "overrides": []}],
        "fit": {"overrides": ["write_meshes=1", "fitting.config.rigid_iterations=2",
                              "fitting.config.nonrigid_iterations=2"],
                "scales": {"quick": ["limit_batches=1"]},
                "variants": [{"name": "own", "overrides": []},
                             {"name": "sub", "overrides": ["fitting.landmark_set=face101",
                                                           "fitting.use_confidences=false"]}]},
    }
    timings: dict[str, float] = {}
    assert reproduce.run_recipe("tiny", "quick", recipe, timings) == 0
    run = recipe["runs"][0]
    dirs = [reproduce.fit_dir("tiny", "quick", run, v) for v in recipe["fit"]["variants"]]
    for d in dirs:
        m = reproduce.fit_metrics(d)
        assert m["test/n_images"] == 2 and m["test/mve_face_mm"] > 0 and m["test/time_fit_s_per_image"] > 0
        assert len(list((d / "meshes").glob("*.obj"))) == 1
    assert set(timings) == {"r", "r/fit/own", "r/fit/sub"}
    stamps = [(d / "fit_metrics.json").stat().st_mtime for d in dirs]
    again: dict[str, float] = {}
    assert reproduce.run_recipe("tiny", "quick", recipe, again) == 0
    assert [(d / "fit_metrics.json").stat().st_mtime for d in dirs] == stamps and set(again) == set()
    report = reproduce.write_report("tiny", "quick", recipe, reproduce.saved_timings("tiny", "quick", recipe, timings),
                                    "cmd").read_text()
    assert "| own | " in report and "| sub | " in report  # one run: a row per fit variant


def test_thesis_fitting_report_pairs_images_valid_in_both_fits(tmp_path, monkeypatch):
    import json

    from experiments.reports import thesis_fitting

    monkeypatch.setattr(reproduce, "LOGS", tmp_path / "logs")
    monkeypatch.setattr(reproduce, "DOCS", tmp_path / "docs")
    recipe = {"title": "T", "metrics": {"test/mve_face_mm": "MVE face"}, "scales": {"quick": []},
              "runs": [{"name": "a", "label": "A", "overrides": []}],
              "fit": {"variants": [{"name": "f805", "label": "805"}, {"name": "f805_noconf", "label": "805, C = 1"}]}}
    run = recipe["runs"][0]
    _fake_run(reproduce.run_dir("t", "quick", run), [{"test/mlme": 4.0, "test/sigma_px": 3.0,
                                                     "test/sigma_error_corr": 0.25}])
    per_image = {"f805": [(0, "true", 6.0, 9.0), (1, "true", 8.0, 11.0), (2, "false", 99.0, 99.0)],
                 "f805_noconf": [(0, "true", 7.0, 10.0), (1, "false", 1.0, 1.0), (2, "true", 5.0, 5.0)]}
    for v, rows in per_image.items():
        d = reproduce.fit_dir("t", "quick", run, {"name": v})
        d.mkdir(parents=True)
        (d / "per_image.csv").write_text("index,valid,mve_face_mm,mve_head_mm\n"
                                         + "".join(f"{i},{ok},{f},{h}\n" for i, ok, f, h in rows))
        valid = [r for r in rows if r[1] == "true"]
        (d / "fit_metrics.json").write_text(json.dumps({
            "test/mve_face_mm": sum(r[2] for r in valid) / len(valid), "test/confidence_mean": 0.5}))
    a = thesis_fitting.per_image(reproduce.fit_dir("t", "quick", run, {"name": "f805"}))
    assert sorted(a) == [0, 1] and a[1]["mve_face_mm"] == 8.0
    report = thesis_fitting.write("t", "quick", recipe, {}, "cmd").read_text()
    assert "| A | 805 | 6.00 | 7.00 | 9.00 | 10.00 | 1 |" in report  # only image 0 is valid in both
    assert "| A | 4 | 3 | 0.25 | 0.5 |" in report  # MLME, sigma, corr, mean C of the fits with C
    assert "Ranking by MVE face (lower is better): 805, C = 1 (6.00), 805 (7.00)." in report


def test_full_scale_only_runs_are_not_made_at_the_quick_scale_but_keep_their_row(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "LOGS", tmp_path / "logs")
    recipe = {"title": "T", "metrics": {"test/mlme": "MLME"}, "scales": {"quick": [], "full": []},
              "runs": [{"name": "a", "overrides": []},
                       {"name": "b", "label": "B", "overrides": [], "scales": ["full"], "paper": {"MLME": 2.0}}]}
    assert [r["name"] for r in reproduce.runs_at(recipe, "quick")] == ["a"]
    assert [r["name"] for r in reproduce.runs_at(recipe, "full")] == ["a", "b"]
    rows = reproduce.report_rows("t", "quick", recipe)
    assert rows[1] == ({"name": "b", "label": "B (not run at quick scale)", "paper": {"MLME": 2.0}}, {})
    assert reproduce.report_rows("t", "full", recipe)[1][0]["label"] == "B"
