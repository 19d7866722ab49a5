"""experiments/experiment_files.py: the three kinds of experiment file are discovered from their folders,
every recipe and sweep validates, and a malformed file fails naming the file and the key."""

from __future__ import annotations

import pytest
import yaml

from experiments import experiment_files, reproduce, sweep
from tests.harness.compose import group_options


def test_names_are_discovered_from_the_folders():
    assert experiment_files.names("experiment") == group_options("experiment")
    assert experiment_files.names("recipe") == reproduce.available()
    assert "thesis_t41" in experiment_files.names("recipe")
    assert "thesis_t41_losses" in experiment_files.names("sweep")
    with pytest.raises(ValueError, match="unknown experiment file kind 'recepe'"):
        experiment_files.names("recepe")


@pytest.mark.parametrize("kind,name", [(k, n) for k in experiment_files.SCHEMA for n in experiment_files.names(k)])
def test_every_recipe_and_sweep_validates(kind, name):
    data = experiment_files.load(kind, name)
    for key in experiment_files.SCHEMA[kind]:
        assert key in data
    loader = reproduce.load_recipe if kind == "recipe" else sweep.load_sweep
    assert loader(name) == data  # reproduce.py and sweep.py read them through the same loader


@pytest.mark.parametrize("kind,bad,message", [
    ("recipe", {"title": "t", "runs": [], "metrics": {}}, "missing key 'scales'"),
    ("recipe", {"title": "t", "runs": [{"name": "a"}], "metrics": {}, "scales": {}}, r"runs\[0\]: missing key 'overrides'"),
    ("recipe", {"title": "t", "runs": {}, "metrics": {}, "scales": {}}, "'runs' must be a list, got dict"),
    ("sweep", {"method": "bayes", "parameters": {}, "command": []}, "method 'bayes'"),
    ("sweep", {"method": "grid", "parameters": {"lr": {"min": 1}}, "command": []}, "parameter 'lr' needs 'values'"),
])
def test_malformed_files_name_the_file_and_key(tmp_path, kind, bad, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=message) as err:
        experiment_files.load(kind, path)
    assert str(path) in str(err.value)


def test_unknown_names_list_the_available_ones():
    with pytest.raises(FileNotFoundError, match="available: .*thesis_t41"):
        experiment_files.load("recipe", "no_such_recipe")
    with pytest.raises(ValueError, match="experiments are Hydra configs"):
        experiment_files.load("experiment", "thesis_full")
