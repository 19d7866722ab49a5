"""The three kinds of experiment file, where they live, and their one loader / validator.

- `experiment`: configs/experiment/<name>.yaml, a Hydra `# @package _global_` config selected with
  `experiment=<name>` (what changes from configs/train.yaml for one run); validated by composing it.
- `recipe`: experiments/recipes/<name>.yaml, read by experiments/reproduce.py: a paper table as a list
  of runs (Hydra overrides of configs/train.yaml, usually `model=...`), per-scale overrides, the metric
  columns and, optionally, a fitting stage.
- `sweep`: experiments/sweeps/<name>.yaml, read by experiments/sweep.py: a W&B grid sweep whose
  parameters are Hydra overrides of configs/train.yaml (offline: the same grid as a Hydra multirun).

Every kind's names are discovered from its folder (`names(kind)`); `load(kind, name)` reads a recipe or
a sweep and checks it against SCHEMA, naming the file, the key and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from experiments.harness.resolvers import REPO_ROOT

FOLDERS = {
    "experiment": REPO_ROOT / "configs" / "experiment",
    "recipe": REPO_ROOT / "experiments" / "recipes",
    "sweep": REPO_ROOT / "experiments" / "sweeps",
}

# kind -> {top-level key: expected type}: the keys every file of that kind must have. Experiments are
# Hydra configs (checked by composing them), so they have no entry.
SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "recipe": {"title": str, "runs": list, "metrics": dict, "scales": dict},
    "sweep": {"method": str, "parameters": dict, "command": list},
}
# A recipe run: {name, overrides: [Hydra override, ...], optional label, paper, scales}.
RUN_SCHEMA: dict[str, type | tuple[type, ...]] = {"name": str, "overrides": list}


def names(kind: str) -> list[str]:
    """Sorted names of the files of `kind` (experiment | recipe | sweep)."""
    return sorted(p.stem for p in folder(kind).glob("*.yaml"))


def folder(kind: str) -> Path:
    if kind not in FOLDERS:
        raise ValueError(f"unknown experiment file kind {kind!r}; expected one of {sorted(FOLDERS)}")
    return FOLDERS[kind]


def path_of(kind: str, name_or_path: str | Path) -> Path:
    """The file of a name (or an existing path, passed through); FileNotFoundError lists the names."""
    path = Path(name_or_path)
    if path.suffix == ".yaml" and path.is_file():
        return path
    path = folder(kind) / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no {kind} file {path}; available: {names(kind)}")
    return path


def _check_keys(path: Path, where: str, data: Any, schema: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {where or 'the file '}must be a mapping, got {type(data).__name__}")
    for key, expected in schema.items():
        if key not in data:
            raise ValueError(f"{path}: {where}missing key '{key}'")
        if not isinstance(data[key], expected):
            raise ValueError(f"{path}: {where}'{key}' must be a {getattr(expected, '__name__', expected)}, "
                             f"got {type(data[key]).__name__}")


def validate(kind: str, path: Path, data: Any) -> dict:
    """`data` (a parsed recipe or sweep file) checked against SCHEMA; returns it."""
    _check_keys(path, "", data, SCHEMA[kind])
    if kind == "recipe":
        for i, run in enumerate(data["runs"]):
            _check_keys(path, f"runs[{i}]: ", run, RUN_SCHEMA)
        for scale, overrides in data["scales"].items():
            if not isinstance(overrides, list):
                raise ValueError(f"{path}: scales.{scale} must be a list of Hydra overrides")
    if kind == "sweep":
        if data["method"] != "grid":
            raise ValueError(f"{path}: method '{data['method']}': the offline fallback needs a grid")
        for pname, p in data["parameters"].items():
            if not isinstance(p, dict) or not ({"values", "value"} & p.keys()):
                raise ValueError(f"{path}: parameter '{pname}' needs 'values' or 'value'")
    return data


def load(kind: str, name_or_path: str | Path) -> dict:
    """A recipe or sweep file, parsed and validated."""
    if kind not in SCHEMA:
        raise ValueError(f"load({kind!r}): only {sorted(SCHEMA)} files are loaded here; experiments are "
                         "Hydra configs (experiment=<name>)")
    path = path_of(kind, name_or_path)
    return validate(kind, path, yaml.safe_load(path.read_text()))
