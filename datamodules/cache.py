"""Write-once cache of procedural datasets: ``<cache_root>/<dataset>_<hash>/``.

``cached_dataset(name, params, write_fn)`` returns the folder holding the dataset written
by ``write_fn(out_dir, **params)``. The folder name hashes ``params`` (sizes, seed, image
size, writer version, model folder) and the procedural world's build version (a dataset drawn
from an older world is not reused). Concurrent processes (DDP ranks, parallel tests)
serialise on a file lock and a half-written dataset is never visible
(:func:`facemodels.cache.build_folder_once`). The cache root defaults to
``<data root>/procedural`` (``facemodels.world.data_root``: ``$FACESUITE_DATA_ROOT`` or ``<repo>/data``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from facemodels.cache import build_folder_once
from facemodels.procedural.builder import BUILD_VERSION
from facemodels.world import data_root

__all__ = ["default_cache_root", "cached_dataset", "params_hash"]


def default_cache_root() -> Path:
    """``<data root>/procedural``: where the procedural datasets are written once."""
    return data_root() / "procedural"


def params_hash(params: dict) -> str:
    """12 hex digits of the sha1 of the sorted-key json of ``params``."""
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:12]


def cached_dataset(
    name: str,
    params: dict,
    write_fn: Callable[..., None],
    cache_root: str | Path | None = None,
) -> Path:
    """Return ``<cache_root>/<name>_<hash(params)>``, calling ``write_fn(tmp_dir, **params)``
    once (under a file lock, then an atomic rename) if it does not exist yet."""
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    key = {**params, "world_build_version": BUILD_VERSION}
    final = root / f"{name}_{params_hash(key)}"

    def build(tmp: Path) -> None:
        write_fn(tmp, **params)
        (tmp / "params.json").write_text(json.dumps(key, sort_keys=True, default=str, indent=1))
        (tmp / ".complete").write_text("ok\n")

    return build_folder_once(final, build, lambda folder: (folder / ".complete").is_file())
