"""Counter of host synchronisations: tensor operations that make the host wait for the device.

Two ways, one interface (:class:`HostSyncCounter`):

* ``mode="ops"`` (any device, the CPU included): a ``TorchFunctionMode`` records every call of
  an operation that synchronises when the tensor lives on a GPU (:data:`SYNC_OPS`: ``.item()``,
  ``bool(t)`` as in ``if t.any():``, ``float`` / ``int`` / ``index`` of a tensor, ``.tolist()``,
  ``.cpu()``, ``nonzero``, boolean-mask indexing, the ``torch.linalg`` calls that check their
  ``info`` on the host, and host -> device copies of Python data: ``torch.tensor(data,
  device=...)`` and indexing with a Python list, ...). On the CPU nothing waits, so this counts what *would* wait on CUDA.
* ``mode="cuda"``: ``torch.cuda.set_sync_debug_mode("warn")``; every warning CUDA raises for a
  synchronising call is one count (what really waited, including ops the list above misses).

Each count is attributed to the innermost Python frame outside torch (``file:line function``),
and to an owner: ``suite`` (this repository), ``theseus`` (the installed Theseus) or ``other``.
Iterations are counted by wrapping one method (``iteration_hook=(cls, "name")``) that runs once
per iteration of the loop of interest; ``summary()`` gives the counts per iteration.

Usage::

    with HostSyncCounter(iteration_hook=(BlockDenseLinearization, "_linearize_hessian_impl")) as c:
        fitter.fit(landmarks)
    c.summary()  # {"total": ..., "iterations": ..., "per_iteration": ..., "by_owner": {...}, ...}
"""

from __future__ import annotations

import collections
import functools
import os
import sys
import warnings

import torch
from torch.overrides import TorchFunctionMode

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_THIS = os.path.abspath(__file__)

#: Tensor methods / functions that wait for the device when their input lives on a GPU.
SYNC_OPS = frozenset(
    {
        "item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__",
        "cpu", "nonzero", "argwhere", "masked_select", "unique", "unique_consecutive",
        "bincount", "repeat_interleave",
        # torch.linalg without the _ex suffix checks its info flags on the host
        "cholesky", "inv", "solve", "eigh", "eigvalsh", "lu_factor", "cholesky_inverse",
    }
)


def _is_sync(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether the call ``name(*args, **kwargs)`` synchronises on a GPU."""
    if name in SYNC_OPS:
        return True
    if name in ("__getitem__", "__setitem__") and len(args) > 1:
        idx = args[1] if isinstance(args[1], tuple) else (args[1],)
        # a boolean mask becomes indices through nonzero (data-dependent shape); a Python list
        # index is copied to the device from pageable host memory
        return any((torch.is_tensor(i) and i.dtype == torch.bool) or isinstance(i, list) for i in idx)
    if name in ("tensor", "as_tensor") and kwargs.get("device") is not None and args and not torch.is_tensor(args[0]):
        # Python data put on the tensor's device: a host -> device copy from pageable memory
        return True
    if name == "to" and args and torch.is_tensor(args[0]) and args[0].device.type != "cpu":
        # a device -> host copy (on a CPU tensor ``.to(x.device)`` cannot be told apart from
        # ``.to("cpu")``: only ``.cpu()`` is counted there)
        dev = kwargs.get("device", args[1] if len(args) > 1 else None)
        return isinstance(dev, (str, torch.device)) and torch.device(dev).type == "cpu"
    return False


def _site() -> tuple[str, str]:
    """(``file:line function``, owner) of the innermost frame outside torch and this file."""
    f = sys._getframe(2)
    while f is not None:
        path = os.path.abspath(f.f_code.co_filename)
        if not path.startswith(_TORCH_DIR) and path != _THIS:
            break
        f = f.f_back
    if f is None:
        return "?", "other"
    path = os.path.abspath(f.f_code.co_filename)
    if f"{os.sep}theseus{os.sep}" in path:
        owner, short = "theseus", path[path.rindex(f"{os.sep}theseus{os.sep}") + 1 :]
    elif path.startswith(REPO_ROOT) and f"{os.sep}site-packages{os.sep}" not in path:
        owner, short = "suite", os.path.relpath(path, REPO_ROOT)
    else:
        owner, short = "other", path
    return f"{short}:{f.f_lineno} {f.f_code.co_name}", owner


class _OpsMode(TorchFunctionMode):
    def __init__(self, record) -> None:
        super().__init__()
        self._record = record

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if _is_sync(name, args, kwargs):
            self._record(name)
        return func(*args, **kwargs)


class HostSyncCounter:
    """Context manager counting host synchronisations (see the module doc).

    Args:
        mode: "ops" (any device), "cuda" (``torch.cuda.set_sync_debug_mode``) or "auto"
            ("cuda" when CUDA is available, else "ops").
        iteration_hook: ``(cls, method_name)`` called once per iteration; None: no iterations.
    """

    def __init__(self, mode: str = "auto", iteration_hook: tuple[type, str] | None = None):
        if mode == "auto":
            mode = "cuda" if torch.cuda.is_available() else "ops"
        if mode not in ("ops", "cuda"):
            raise ValueError(f"HostSyncCounter: mode must be 'ops', 'cuda' or 'auto', got {mode!r}")
        self.mode = mode
        self.iteration_hook = iteration_hook
        self.iterations = 0
        self.sites: collections.Counter[str] = collections.Counter()
        self.owners: collections.Counter[str] = collections.Counter()

    def _record(self, op: str) -> None:
        site, owner = _site()
        self.sites[f"{site} ({op})"] += 1
        self.owners[owner] += 1

    def __enter__(self) -> HostSyncCounter:
        if self.iteration_hook is not None:
            cls, name = self.iteration_hook
            self._saved = cls.__dict__.get(name)
            orig = getattr(cls, name)

            @functools.wraps(orig)
            def counted(*a, **k):
                self.iterations += 1
                return orig(*a, **k)

            setattr(cls, name, counted)
        if self.mode == "ops":
            self._ctx = _OpsMode(self._record)
            self._ctx.__enter__()
        else:
            self._ctx = warnings.catch_warnings(record=True)
            self._caught = self._ctx.__enter__()
            warnings.simplefilter("always")
            self._prev_debug = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc) -> None:
        if self.mode == "ops":
            self._ctx.__exit__(*exc)
        else:
            torch.cuda.set_sync_debug_mode(self._prev_debug)
            self._ctx.__exit__(*exc)
            for w in self._caught:
                if "synchroniz" not in str(w.message):
                    continue
                path = os.path.abspath(w.filename)
                owner = (
                    "theseus" if f"{os.sep}theseus{os.sep}" in path
                    else "suite" if path.startswith(REPO_ROOT) and "site-packages" not in path
                    else "other"
                )
                self.sites[f"{os.path.relpath(path, REPO_ROOT) if owner == 'suite' else path}:{w.lineno}"] += 1
                self.owners[owner] += 1
        if self.iteration_hook is not None:
            cls, name = self.iteration_hook
            if self._saved is None:
                delattr(cls, name)
            else:
                setattr(cls, name, self._saved)

    @property
    def total(self) -> int:
        return sum(self.owners.values())

    def summary(self, top: int = 12) -> dict:
        """Counts as plain data: total, iterations, per iteration (total and per owner), sites."""
        it = max(self.iterations, 1)
        return {
            "mode": self.mode,
            "total": self.total,
            "iterations": self.iterations,
            "per_iteration": round(self.total / it, 3),
            "by_owner": dict(self.owners),
            "per_iteration_by_owner": {k: round(v / it, 3) for k, v in self.owners.items()},
            "sites": dict(self.sites.most_common(top)),
        }
