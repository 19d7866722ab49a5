"""Scale and fault tolerance: 2-process DDP on CPU (gloo) agrees with one process; a SIGKILLed run
resumes from its last checkpoint and ends with the same number of optimizer steps."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import torch

from experiments.harness.resolvers import REPO_ROOT
from tests.harness.run_cli import csv_metrics, env_for_tests, run_train, train_cmd

TINY = ["model=tiny", "data=synthetic", "logger=csv", "callbacks=default", "trainer.accelerator=cpu",
        "trainer.precision=32-true", "data.num_train=8", "data.num_val=8", "data.num_test=8"]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    # One optimizer step over the same 8 samples: 2 processes x batch 4 (gradients averaged) equals
    # 1 process x batch 8; the test metrics are reduced over both processes. A LayerNorm backbone (timm's
    # test_convnext) keeps the forward pass independent of the per-process batch (SyncBatchNorm needs GPUs).
    common = [*TINY, "trainer.max_epochs=1", "model.optimizer.lr=0.01", "model.net.backbone.name=test_convnext"]
    run_train([*common, "trainer=ddp_sim", "data.batch_size=4"], tmp_path / "ddp", tmp_path)
    run_train([*common, "trainer=cpu", "data.batch_size=8"], tmp_path / "single", tmp_path)
    ddp, single = csv_metrics(tmp_path / "ddp"), csv_metrics(tmp_path / "single")
    keys = [k for k in single if k.startswith("test/")]
    assert keys
    for k in keys:
        assert ddp[k] == pytest.approx(single[k], rel=1e-3, abs=1e-4), (k, ddp[k], single[k])


def _last_step(run_dir) -> int:
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return int(ckpt["global_step"])


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_finishes_with_same_steps(tmp_path):
    overrides = [*TINY, "trainer=cpu", "trainer.max_epochs=4", "data.num_train=64", "data.batch_size=4",
                 "model.image_size=96", "test=false"]
    reference = tmp_path / "uninterrupted"
    run_train(overrides, reference, tmp_path)
    expected = _last_step(reference)
    assert expected == 4 * 16

    run_dir = tmp_path / "killed"
    last = run_dir / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(train_cmd(overrides, run_dir), cwd=REPO_ROOT, env=env_for_tests(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert last.exists(), "the run never wrote last.ckpt"
    time.sleep(0.5)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _last_step(run_dir)
    assert killed_at < expected, "the run finished before it could be killed"

    rerun = run_train(overrides, run_dir, tmp_path)
    assert "Resuming from" in rerun.stdout + rerun.stderr
    assert _last_step(run_dir) == expected
