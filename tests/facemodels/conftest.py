"""Fixtures of this test folder: ``flame_dir`` (torch runs single-threaded: see tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def flame_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The procedural world (seed 0) written once per session in the FLAME layout (~60 MB).

    Shared by several modules: read it, never write into it (copy it first; test_flame
    copies it as a folder of symlinks and replaces the links it changes).
    """
    from facemodels.procedural.builder import cached_world, write_flame

    return write_flame(cached_world(0), tmp_path_factory.mktemp("flame"))
