"""The harness end to end: the real entry point and the real configs on tiny synthetic batches."""

from __future__ import annotations

import torch

from experiments.train import train
from tests.harness.compose import compose_config
from tests.harness.run_cli import run_train

TINY = ["model=tiny", "data=synthetic", "logger=csv"]


def test_fast_dev_run_through_the_real_entry_point(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_train([*TINY, "debug=fast_dev_run"], run_dir, tmp_path)
    assert "Final metrics" in proc.stdout
    assert "Run directory" in proc.stdout
    # fast_dev_run replaces loggers by a dummy (Lightning), so the printed table is the record
    table = proc.stdout.split("Final metrics", 1)[1]
    assert "test/" in table, proc.stdout[-2000:]


def test_train_function_fits_checkpoints_and_tests_best(tmp_path):
    cfg = compose_config("train", [*TINY, "trainer.max_epochs=2", "trainer.accelerator=cpu"], tmp_path)
    result = train(cfg)
    assert result["best_ckpt"].endswith(".ckpt")
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert result["global_step"] == 2 * 4  # 16 samples / batch 4 per epoch
    assert all(torch.isfinite(torch.tensor(v)) for v in result["metrics"].values())
    assert any(k.startswith("test/") for k in result["metrics"])


def test_rerun_resumes_from_last_checkpoint(tmp_path):
    cfg = compose_config("train", [*TINY, "trainer.max_epochs=1", "trainer.accelerator=cpu"], tmp_path)
    first = train(cfg)
    cfg = compose_config("train", [*TINY, "trainer.max_epochs=2", "trainer.accelerator=cpu"], tmp_path)
    second = train(cfg)  # same run dir: continues from last.ckpt instead of starting over
    assert first["global_step"] == 4 and second["global_step"] == 8


def test_same_seed_deterministic_mode_gives_identical_metrics(tmp_path):
    results = []
    for run in ("a", "b"):
        cfg = compose_config("train", [*TINY, "trainer.max_epochs=1", "trainer.accelerator=cpu", "deterministic=true",
                                       "seed=7"], tmp_path / run)
        results.append(train(cfg)["metrics"])
    assert results[0].keys() == results[1].keys()
    for key in results[0]:
        assert results[0][key] == results[1][key], key
