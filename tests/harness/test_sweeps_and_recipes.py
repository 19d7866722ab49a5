"""Every sweep file parses and every command line an agent would issue composes a valid run; every
reproduce recipe's runs compose at both scales."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from experiments import reproduce, sweep
from tests.harness.compose import compose_config

SWEEPS = sorted(p.stem for p in sweep.SWEEPS.glob("*.yaml"))


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
