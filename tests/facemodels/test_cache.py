"""facemodels.cache: the build-once npz cache (hit, miss, version, fallback, corrupt file)."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from facemodels import cache
from facemodels.cache import Memo, cached_npz, content_key


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache.clear_memory()
    yield
    cache.clear_memory()


class Builder:
    """Counts its calls; returns the square of the input."""

    def __init__(self, x: np.ndarray) -> None:
        self.x, self.calls = x, 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {"sq": self.x**2}


def _get(d, b, version=1, params="p", memo=False):
    if not memo:
        cache.clear_memory()
    return cached_npz(d, "c.npz", (b.x,), params, version, b)


def test_content_key_depends_on_bytes_dtype_shape_and_extra():
    a = np.arange(6)
    assert content_key(a) == content_key(a.copy())
    assert content_key(a) != content_key(a.reshape(2, 3))
    assert content_key(a) != content_key(a.astype(np.int32))
    assert content_key(a) != content_key(a, extra="x")
    b = a.copy()
    b[3] = 7
    assert content_key(a) != content_key(b)


def test_hit_reads_the_file_and_the_memory(tmp_path):
    b = Builder(np.arange(4.0))
    np.testing.assert_array_equal(_get(tmp_path, b)["sq"], [0, 1, 4, 9])
    assert b.calls == 1 and (tmp_path / "c.npz").is_file()
    assert _get(tmp_path, b)["sq"].tolist() == [0, 1, 4, 9] and b.calls == 1  # from disk
    first = cached_npz(tmp_path, "c.npz", (b.x,), "p", 1, b)
    assert cached_npz(tmp_path, "c.npz", (b.x,), "p", 1, b) is first  # from memory
    assert b.calls == 1


def test_changed_inputs_or_params_miss(tmp_path):
    b = Builder(np.arange(4.0))
    _get(tmp_path, b)
    c = Builder(np.arange(4.0) + 1)
    assert _get(tmp_path, c)["sq"].tolist() == [1, 4, 9, 16] and c.calls == 1
    _get(tmp_path, c, params="q")
    assert c.calls == 2


def test_version_bump_invalidates(tmp_path):
    b = Builder(np.arange(3.0))
    _get(tmp_path, b, version=1)
    _get(tmp_path, b, version=2)
    assert b.calls == 2
    with np.load(tmp_path / "c.npz") as z:
        assert int(z["version"]) == 2
    _get(tmp_path, b, version=2)
    assert b.calls == 2


def test_unwritable_model_folder_falls_back_to_the_user_cache(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "c.npz").mkdir()  # the cache path cannot be a file (works as root too)
    b = Builder(np.arange(3.0))
    _get(model, b)
    key = content_key(b.x, extra="v1|p")
    user = tmp_path / "xdg" / "facesuite" / key[:16] / "c.npz"
    assert user.is_file()
    _get(model, b)
    assert b.calls == 1  # read back from the user cache


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_model_folder_falls_back_to_the_user_cache(tmp_path):
    model = tmp_path / "ro"
    model.mkdir()
    model.chmod(0o500)
    try:
        b = Builder(np.arange(3.0))
        _get(model, b)
        assert not (model / "c.npz").exists()
        assert list((tmp_path / "xdg" / "facesuite").glob("*/c.npz"))
    finally:
        model.chmod(0o700)


def test_corrupt_file_is_rebuilt_and_logged(tmp_path, caplog):
    b = Builder(np.arange(3.0))
    _get(tmp_path, b)
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 not a zip")
    with caplog.at_level(logging.WARNING, logger="facemodels.cache"):
        out = _get(tmp_path, b)
    assert out["sq"].tolist() == [0, 1, 4] and b.calls == 2
    assert any(
        "unreadable cache file" in r.getMessage() and "c.npz" in r.getMessage()
        for r in caplog.records
    )
    _get(tmp_path, b)
    assert b.calls == 2  # the rebuilt file is good


def test_reserved_names_rejected(tmp_path):
    with pytest.raises(ValueError, match="'key' or 'version'"):
        cached_npz(tmp_path, "c.npz", (), "", 1, lambda: {"key": np.zeros(1)})


def test_memo_is_bounded_and_least_recently_used_goes_first():
    m: Memo[int] = Memo(maxsize=2)
    calls = []

    def build(v):
        return lambda: calls.append(v) or v

    assert m.get("a", build(1)) == 1 and m.get("b", build(2)) == 2
    assert m.get("a", build(99)) == 1  # hit, now most recent
    m.get("c", build(3))  # drops b
    assert "b" not in m and "a" in m and len(m) == 2
    assert m.get("b", build(4)) == 4
    assert calls == [1, 2, 3, 4]


def test_build_folder_once_builds_once_rebuilds_leftovers_and_leaves_nothing_on_failure(tmp_path):
    from facemodels.cache import build_folder_once

    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "data.txt").write_text("x")
        (folder / "done").write_text("1")

    complete = lambda f: (f / "done").is_file()  # noqa: E731
    target = tmp_path / "models" / "thing"
    assert build_folder_once(target, build, complete) == target
    assert build_folder_once(target, build, complete) == target
    assert len(calls) == 1 and calls[0] != target and not calls[0].exists()  # built in a sibling, renamed
    (target / "done").unlink()  # an incomplete leftover is rebuilt
    build_folder_once(target, build, complete)
    assert len(calls) == 2 and complete(target)

    def failing(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("writer failed")

    other = tmp_path / "models" / "other"
    with pytest.raises(RuntimeError, match="writer failed"):
        build_folder_once(other, failing, complete)
    assert not other.exists() and sorted(p.name for p in other.parent.iterdir()) == ["other.lock", "thing", "thing.lock"]
