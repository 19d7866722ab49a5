"""The dataset registry: one entry per dataset, the single list that `make data`,
`make check-data` (experiments/data.py), their usage text and the tests read.

An entry (:class:`DatasetEntry`) names a dataset's reader (its DataModule class), its
procedural writer ``write(out, n, seed)`` (None: sampled on the fly, nothing to write), its
folder checker (datamodules/checks.py; None: nothing to check), the DataModule arguments that
make its procedural set tiny (tests), the writer's N in tests, and its Hydra data config.

Adding a dataset is one call::

    register_dataset("mydata", MyDataModule, write=write_mydata, check=check_mydata,
                     tiny={"n_train": 8}, summary="n images in my layout")

plus its Hydra data config for training, either ``configs/data/mydata.yaml`` or the
``hydra_config=`` node of the call (stored in Hydra's ConfigStore as ``data=mydata``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytorch_lightning as pl
from hydra.core.config_store import ConfigStore

from datamodules.aflw2000 import Aflw2000DataModule
from datamodules.bfm_synthetic import BfmSyntheticDataModule
from datamodules.checks import (
    Checker,
    check_aflw2000,
    check_bfm,
    check_coma,
    check_dad3dheads,
    check_w300lp,
    run_check,
)
from datamodules.coma import ComaDataModule
from datamodules.dad3dheads import Dad3DHeadsDataModule
from datamodules.landmarks3d import Landmarks3DDataModule
from datamodules.synthetic import SyntheticDataModule
from datamodules.w300lp import W300LPDataModule
from datamodules.writers.aflw2000 import write_aflw2000
from datamodules.writers.bfm import write_bfm
from datamodules.writers.coma import write_coma
from datamodules.writers.dad3dheads import write_dad3dheads
from datamodules.writers.w300lp import write_300wlp

__all__ = ["DatasetEntry", "Writer", "register_dataset", "unregister_dataset", "get_dataset", "dataset_names",
           "write_dataset", "check_dataset"]

Writer = Callable[[Path, int, int], object]  # (out folder, size N, seed) -> anything


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset.

    name: the registry key (``make data DATASET=<name>``).
    datamodule: the reader, a LightningDataModule class; FaceDataModules read a written
        folder given as ``data_dir``.
    write: ``write(out, n, seed)`` writes a procedural set of size ~``n`` into the folder
        ``out`` in the real layout; None: the dataset is sampled on the fly.
    check: ``check(root)`` yields (files checked, problem line or None); see datamodules/checks.py.
    tiny: DataModule keyword arguments of a tiny procedural set (the tests' sizes).
    tiny_n: the writer's ``n`` in tests.
    config: name of the Hydra data config (``data=<config>``).
    summary: what ``write`` writes for a given n (the CLI's help).
    """

    name: str
    datamodule: type[pl.LightningDataModule]
    write: Writer | None = None
    check: Checker | None = None
    tiny: Mapping[str, Any] = field(default_factory=dict)
    tiny_n: int = 4
    config: str | None = None
    summary: str = ""


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(name: str, datamodule: type[pl.LightningDataModule], *, write: Writer | None = None,
                     check: Checker | None = None, tiny: Mapping[str, Any] | None = None, tiny_n: int = 4,
                     config: str | None = None, hydra_config: Mapping[str, Any] | None = None,
                     summary: str = "", replace: bool = False) -> DatasetEntry:
    """Add a dataset to the registry and return its entry.

    config: the Hydra data config name (default: ``name``). hydra_config: a data config node
    (``_target_`` and arguments) stored in Hydra's ConfigStore as group ``data``, name
    ``config``, so that ``data=<config>`` composes without a YAML file; the module that
    registers must then be imported before Hydra composes. replace: allow re-registering a name.
    """
    if name in _REGISTRY and not replace:
        raise ValueError(f"dataset {name!r} is already registered ({_REGISTRY[name].datamodule.__name__})")
    entry = DatasetEntry(name=name, datamodule=datamodule, write=write, check=check,
                         tiny=MappingProxyType(dict(tiny or {})), tiny_n=int(tiny_n), config=config or name,
                         summary=summary)
    if hydra_config is not None:
        ConfigStore.instance().store(group="data", name=entry.config, node=dict(hydra_config))
    _REGISTRY[name] = entry
    return entry


def unregister_dataset(name: str) -> None:
    """Remove ``name`` from the registry, and the ConfigStore node ``register_dataset`` stored
    for it (tests that register a throwaway dataset)."""
    entry = _REGISTRY.pop(name, None)
    if entry is not None:
        ConfigStore.instance().repo.get("data", {}).pop(f"{entry.config}.yaml", None)


def get_dataset(name: str) -> DatasetEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; registered: {', '.join(_REGISTRY)}") from None


def dataset_names(can: str | None = None) -> list[str]:
    """Registered names in registration order; ``can="write"`` / ``"check"``: only those
    with a writer / a checker."""
    if can not in (None, "write", "check"):
        raise ValueError(f"can: expected None, 'write' or 'check', got {can!r}")
    return [n for n, e in _REGISTRY.items() if can is None or getattr(e, can) is not None]


def write_dataset(name: str, out: str | Path, n: int, seed: int = 0) -> Path:
    """Write dataset ``name`` of size ``n`` into the folder ``out`` (created)."""
    entry = get_dataset(name)
    if entry.write is None:
        raise ValueError(f"dataset {name!r} is sampled on the fly: there is nothing to write")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entry.write(out, int(n), int(seed))
    return out


def check_dataset(name: str, root: str | Path) -> tuple[int, list[str]]:
    """(number of files checked, problem lines) of the folder ``root`` read as dataset ``name``."""
    entry = get_dataset(name)
    if entry.check is None:
        raise ValueError(f"dataset {name!r} has no checker (it is sampled on the fly)")
    return run_check(entry.check, root)


# --- the suite's datasets -------------------------------------------------------------------------

def _write_dad3dheads(out: Path, n: int, seed: int) -> None:
    write_dad3dheads(out, n_train=n, n_val=max(1, n // 5), n_test=max(1, n // 10), seed=seed)


def _write_w300lp(out: Path, n: int, seed: int) -> None:
    write_300wlp(out, n_per_folder=max(1, math.ceil(n / 24)), n_profiles=3, seed=seed)


def _write_aflw2000(out: Path, n: int, seed: int) -> None:
    write_aflw2000(out, n=n, seed=seed)


def _write_coma(out: Path, n: int, seed: int) -> None:
    write_coma(out, n_frames=max(2, math.ceil(n / 144)), seed=seed)


def _write_bfm(out: Path, n: int, seed: int) -> None:
    write_bfm(out)


register_dataset("dad3dheads", Dad3DHeadsDataModule, write=_write_dad3dheads, check=check_dad3dheads,
                 tiny={"n_train": 8, "n_val": 4, "n_test": 4, "frame_size": 160}, tiny_n=4,
                 summary="n train, n/5 val, n/10 test frames")
register_dataset("w300lp", W300LPDataModule, write=_write_w300lp, check=check_w300lp,
                 tiny={"n_per_folder": 2, "n_profiles": 1, "val_fraction": 0.25}, tiny_n=1,
                 summary="ceil(n / 24) source faces per set x 3 profiling views, + the _Flip copies (~2n images)")
register_dataset("aflw2000", Aflw2000DataModule, write=_write_aflw2000, check=check_aflw2000,
                 tiny={"n": 4}, tiny_n=2, summary="n images + the 3DDFA protocol arrays")
register_dataset("coma", ComaDataModule, write=_write_coma, check=check_coma, tiny={"n_frames": 4}, tiny_n=1,
                 summary="12 x 12 sequences of ceil(n / 144) (at least 2) frames")
register_dataset("bfm", BfmSyntheticDataModule, write=_write_bfm, check=check_bfm,
                 tiny={"n_train": 8, "n_val": 4, "n_test": 4}, config="bfm_synthetic",
                 summary="copies the BFM model files (the synthetic faces are sampled on the fly)")
register_dataset("landmarks3d", Landmarks3DDataModule, tiny={"n_train": 16, "n_val": 8, "n_test": 8},
                 summary="3D landmark sets sampled on the fly")
register_dataset("synthetic", SyntheticDataModule, tiny={"num_train": 16, "num_val": 8, "num_test": 8},
                 summary="in-memory images that show their landmarks, sampled on the fly")
