"""benchmarks/host_syncs.py counts exactly the operations that wait for a GPU, attributes them to
their line, and the FLAME fit's own code (fitting/) causes at most one host sync per LM
iteration on the GPU path (``reject.all()``, which Theseus' loop needs as a Python bool) plus
one per chunk compaction; the rest are inside Theseus."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.bench_fitting import fit_host_syncs
from benchmarks.host_syncs import HostSyncCounter
from fitting.builder import build_flame_fitter
from fitting.fit_problems import make_problems
from fitting.flame_fit import FitterConfig


class _Loop:
    def iteration(self) -> None:
        pass


def test_counter_counts_syncing_ops_only_and_names_their_line():
    x = torch.arange(6.0)
    mask = x > 2
    loop = _Loop()
    with HostSyncCounter("ops", iteration_hook=(_Loop, "iteration")) as c:
        for _ in range(2):
            loop.iteration()
            y = x * 2 + 1  # not a sync
            y = y[torch.tensor([0, 2])]  # integer index: gather, not a sync
            torch.where(mask, x, y.sum())  # not a sync
            line = _line() + 1
            if mask.any():  # __bool__: 1
                x[mask].sum().item()  # boolean mask: 1, .item(): 1
            x[[0, 2]] + torch.tensor([1.0, 2.0], device=x.device)  # host -> device copies: 2
            torch.tensor([1.0, 2.0])  # a host tensor: not a sync
    loop.iteration()  # the hook is gone after the block
    s = c.summary()
    assert s["total"] == 10 and s["iterations"] == 2 and s["per_iteration"] == 5.0
    assert s["by_owner"] == {"suite": 10}
    here = "tests/harness/test_host_syncs.py"
    assert s["sites"] == {
        f"{here}:{line} test_counter_counts_syncing_ops_only_and_names_their_line (__bool__)": 2,
        f"{here}:{line + 1} test_counter_counts_syncing_ops_only_and_names_their_line (__getitem__)": 2,
        f"{here}:{line + 1} test_counter_counts_syncing_ops_only_and_names_their_line (item)": 2,
        f"{here}:{line + 2} test_counter_counts_syncing_ops_only_and_names_their_line (__getitem__)": 2,
        f"{here}:{line + 2} test_counter_counts_syncing_ops_only_and_names_their_line (tensor)": 2,
    }


def _line() -> int:
    import sys

    return sys._getframe(1).f_lineno


def test_fit_suite_syncs_per_lm_iteration_on_the_gpu_path():
    cfg = FitterConfig(rigid_iterations=4, nonrigid_iterations=6, chunk_iterations=3)
    fitter = build_flame_fitter(landmark_set=np.arange(0, 5000, 25), config=cfg)
    lm = make_problems(fitter, 3, seed=0, noise_px=1.0).landmarks.float()
    s = fit_host_syncs(fitter, lm, device_path=True)
    assert s["mode"] == "ops" and s["iterations"] > 0
    suite = {k: v for k, v in s["sites"].items() if k.startswith("fitting/")}
    assert sum(suite.values()) == s["by_owner"].get("suite", 0), s["sites"]
    steps = sum(v for k, v in suite.items() if "_step (__bool__)" in k)
    compactions = sum(v for k, v in suite.items() if "_solve (nonzero)" in k)
    # reject.all() once per LM iteration, nonzero once per chunk after a stage's first
    assert steps == s["iterations"], s["sites"]
    assert compactions <= 2, s["sites"]  # one per stage here: (4 / 3) and (6 / 3) chunks
    assert set(suite) == {k for k in suite if "_step (__bool__)" in k or "_solve (nonzero)" in k}
    # on the CPU path the robust solve asks once per iteration whether a retry is needed
    cpu = fit_host_syncs(fitter, lm, device_path=False)
    asks = sum(v for k, v in cpu["sites"].items() if "_robust_solve (__bool__)" in k)
    assert asks == cpu["iterations"]
