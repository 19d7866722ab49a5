"""Write-once cache of procedural datasets: ``<cache_root>/<dataset>_<hash>/``.

``cached_dataset(name, params, write_fn)`` returns the folder holding the dataset written
by ``write_fn(out_dir, **params)``. The folder name hashes ``params`` (sizes, seed, image
size, writer version, model folder). Concurrent processes (DDP ranks, parallel tests)
serialise on a file lock; the writer fills a temporary sibling folder that is renamed into
place atomically, so a half-written dataset is never visible. The cache root defaults to
``$FACESUITE_DATA_DIR`` or ``<repo>/data/procedural``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

__all__ = ["default_cache_root", "cached_dataset", "params_hash"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_cache_root() -> Path:
    env = os.environ.get("FACESUITE_DATA_DIR")
    return Path(env) if env else REPO_ROOT / "data" / "procedural"


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
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{name}_{params_hash(params)}"
    if (final / ".complete").is_file():
        return final
    with FileLock(str(final) + ".lock"):
        if (final / ".complete").is_file():
            return final
        tmp = root / f".{final.name}.tmp{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        try:
            write_fn(tmp, **params)
            (tmp / "params.json").write_text(json.dumps(params, sort_keys=True, default=str, indent=1))
            (tmp / ".complete").write_text("ok\n")
            if final.exists():  # a stale folder without the marker
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final
