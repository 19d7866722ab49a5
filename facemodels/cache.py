"""Build-once caches: a content-hashed, versioned npz file next to a model, and a memo.

``cached_npz(model_dir, filename, inputs, params, version, build)`` returns the arrays
``build()`` makes from a model folder, computed once: the result is stored in
``<model_dir>/<filename>`` (or, when that folder cannot be written, in the user cache
``$XDG_CACHE_HOME/facesuite/<key[:16]>/<filename>``, ``~/.cache`` by default) together with
its key, a sha1 of the input arrays, ``params`` and ``version``. A file whose key differs
(changed inputs or parameters, bumped version) is rebuilt and overwritten; an unreadable
file is rebuilt and the rebuild is logged. Files are written through a temporary file and
a rename, so concurrent readers never see half a file. Results are also kept in memory
(a bounded :class:`Memo`), so a second call in the same process reads nothing.

``Memo(maxsize)`` is a bounded least-recently-used memo keyed by any hashable key; use
:func:`content_key` to key it by array contents (``functools.lru_cache`` covers functions
of hashable arguments).

``build_folder_once(target, build, is_complete)`` builds a whole folder once (the procedural model
folders, the procedural datasets), under a file lock and with an atomic rename.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from filelock import FileLock

__all__ = ["content_key", "user_cache_dir", "save_npz_atomic", "Memo", "cached_npz", "clear_memory",
           "build_folder_once"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def content_key(*arrays: np.ndarray, extra: str = "") -> str:
    """sha1 hex digest of the arrays' dtypes, shapes and bytes, then ``extra``."""
    h = hashlib.sha1()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(extra.encode())
    return h.hexdigest()


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/facesuite`` (default ``~/.cache/facesuite``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facesuite"


def save_npz_atomic(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write ``path`` (an uncompressed npz) via a temporary sibling file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


class Memo(Generic[T]):
    """Bounded least-recently-used memo: ``memo.get(key, build)``.

    Args:
        maxsize: entries kept; the least recently used one is dropped beyond it.
    """

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = int(maxsize)
        self._data: OrderedDict[Hashable, T] = OrderedDict()

    def get(self, key: Hashable, build: Callable[[], T]) -> T:
        """The value stored under ``key``, calling ``build()`` once when it is missing."""
        if key in self._data:
            self._data.move_to_end(key)
            return self._data[key]
        value = build()
        self._data[key] = value
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)
        return value

    def clear(self) -> None:
        self._data.clear()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


_NPZ_MEMO: Memo[dict[str, np.ndarray]] = Memo(maxsize=16)


def _read(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` if it holds ``key``; None when missing, stale or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt
        log.warning("%s: unreadable cache file (%s: %s); rebuilding", path, type(exc).__name__, exc)
        return None
    if "key" not in arrays:
        log.warning("%s: cache file without a 'key' entry; rebuilding", path)
        return None
    if str(arrays["key"]) != key:
        log.info("%s: cache key differs (inputs, parameters or version changed); rebuilding", path)
        return None
    arrays.pop("key")
    arrays.pop("version", None)
    return arrays


def cached_npz(
    model_dir: str | os.PathLike,
    filename: str,
    inputs: tuple[np.ndarray, ...],
    params: str,
    version: int,
    build: Callable[[], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """Arrays built once from a model folder and cached on disk and in memory.

    Args:
        model_dir: the model folder the arrays derive from (first cache location).
        filename: cache file name, e.g. ``suite_kp520.npz``.
        inputs: arrays the result depends on (hashed with ``params`` and ``version``).
        params: the build parameters as a string (part of the key).
        version: bump when ``build`` changes its result: old files are rebuilt.
        build: ``() -> dict name -> array``; names ``key`` and ``version`` are reserved.
    Returns:
        dict name -> array, as ``build`` returned it (treat as read-only; shared).
    """
    key = content_key(*inputs, extra=f"v{int(version)}|{params}")
    model_dir = Path(model_dir)
    candidates = [model_dir / filename, user_cache_dir() / key[:16] / filename]

    def load_or_build() -> dict[str, np.ndarray]:
        for path in candidates:
            arrays = _read(path, key)
            if arrays is not None:
                return arrays
        arrays = build()
        if "key" in arrays or "version" in arrays:
            raise ValueError("cached_npz: build() must not return entries named 'key' or 'version'")
        stored = {"key": np.array(key), "version": np.array(int(version)), **arrays}
        for path in candidates:
            try:
                save_npz_atomic(path, **stored)
                break
            except OSError as exc:
                log.info("%s: cannot write the cache (%s); trying the next location", path, exc)
        else:
            log.warning(
                "%s: no writable cache location; the result is kept in memory only", filename
            )
        return arrays

    return _NPZ_MEMO.get((str(model_dir.resolve()), filename, key), load_or_build)


def clear_memory() -> None:
    """Forget the in-memory copies of :func:`cached_npz` results (the files stay)."""
    _NPZ_MEMO.clear()


def build_folder_once(target: str | os.PathLike, build: Callable[[Path], None],
                      is_complete: Callable[[Path], bool]) -> Path:
    """``target`` built once by ``build(tmp_folder)``: processes serialise on ``<target>.lock`` (DDP ranks,
    parallel tests); the builder fills a temporary sibling folder that replaces ``target`` atomically,
    so a half-built folder is never visible. A ``target`` for which ``is_complete`` is false (a leftover,
    an older version) is rebuilt. Returns ``target``."""
    target = Path(target)
    if is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if is_complete(target):
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            build(tmp)
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target
