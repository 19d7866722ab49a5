"""Per-stage CPU-time accounting of the sample pipeline (the loader benchmark's profile).

A Dataset / transform holds ``timer: StageTimer | None``; each stage runs under
``stage(timer, "decode")``. With no timer the context is a shared no-op (~0.1 us), so the
instrumentation stays in the production path and the profile measures the real code.
Times are the calling thread's CPU time (``time.thread_time``), so the profile does not
depend on other load on a shared machine (wall time does).
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator

__all__ = ["StageTimer", "stage"]

_NULL = contextlib.nullcontext()


class StageTimer:
    """Accumulates CPU seconds per stage name (``thread_time``; nested stages count in both)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.thread_time()
        try:
            yield
        finally:
            self.seconds[name] += time.thread_time() - t0
            self.calls[name] += 1

    def ms_per(self, n: int) -> dict[str, float]:
        """{stage: milliseconds per item} over ``n`` items."""
        return {k: 1000.0 * v / max(n, 1) for k, v in self.seconds.items()}


def stage(timer: StageTimer | None, name: str) -> contextlib.AbstractContextManager:
    """``timer(name)`` or a no-op context when ``timer`` is None."""
    return _NULL if timer is None else timer(name)
