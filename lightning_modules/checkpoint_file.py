"""Reading a system's file: a Lightning checkpoint (``.ckpt``), a shipped weights file (``.pt``) or a
bare state_dict. The one ``torch.load`` of the suite's own files; experiments.checkpoints rebuilds
whole systems on top of it, FitFinetuneModule's ``init_from`` takes the state_dict from it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["WEIGHTS_KEYS", "is_weights_file", "read_checkpoint", "read_state_dict"]

WEIGHTS_KEYS = ("model", "state_dict", "provenance")  # a shipped weights file (.pt)


def is_weights_file(path: Path) -> bool:
    return path.suffix == ".pt"


def _load(path: Path, mmap: bool = False) -> Any:
    """``torch.load`` on the CPU: weights files with ``weights_only=True`` (tensors and plain containers:
    such a file cannot run code), Lightning checkpoints with ``weights_only=False`` (their hyper-parameters
    hold Python objects: load only checkpoints you trust)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": is_weights_file(path)}
    if mmap:
        kwargs["mmap"] = True
    return torch.load(path, **kwargs)


def read_checkpoint(path: str | os.PathLike, mmap: bool = False) -> dict[str, Any]:
    """The dict in a Lightning checkpoint or weights file; FileNotFoundError / KeyError name the file
    and the missing key."""
    path = Path(path)
    blob = _load(path, mmap)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        keys = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise KeyError(f"{path}: missing key 'state_dict' (a Lightning checkpoint or weights file is "
                       f"expected; found {keys})")
    if is_weights_file(path):
        missing = [k for k in WEIGHTS_KEYS if k not in blob]
        if missing:
            raise KeyError(f"{path}: missing key(s) {missing}; a weights file holds {list(WEIGHTS_KEYS)}")
    return blob


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The ``state_dict`` of a checkpoint or weights file, or the file itself when it is a bare state_dict
    (name -> tensor). KeyError names the file and the keys it has."""
    path = Path(path)
    blob = _load(path)
    if isinstance(blob, Mapping) and "state_dict" in blob:
        return dict(blob["state_dict"])
    if isinstance(blob, Mapping) and blob and all(torch.is_tensor(v) for v in blob.values()):
        return dict(blob)
    keys = sorted(blob)[:10] if isinstance(blob, Mapping) else type(blob).__name__
    raise KeyError(f"{path}: missing key 'state_dict' and not a state_dict itself (found {keys})")
