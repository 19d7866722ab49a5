"""Fixtures of this test folder: torch runs single-threaded during each test; ``flame_dir``.

The tensors here are small (batch 2, images <= 64 px, meshes of a few thousand vertices), so
intra-op threads buy nothing, and on a shared machine (2 cores, several test runs at once)
OpenMP threads that spin-wait for a busy core made one-step model tests 5-6x slower in wall
time. The previous thread count is restored after each test, so other folders are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="session")
def flame_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The procedural world (seed 0) written once per session in the FLAME layout (~60 MB).

    Shared by several modules: read it, never write into it (copy it first; test_flame
    copies it as a folder of symlinks and replaces the links it changes).
    """
    from facemodels.procedural.builder import cached_world, write_flame

    return write_flame(cached_world(0), tmp_path_factory.mktemp("flame"))
