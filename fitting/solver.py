"""A dense Cholesky solver that never raises for one bad batch item.

Theseus' ``CholeskyDenseSolver`` calls ``torch.linalg.cholesky`` on the whole batch: one
(numerically) indefinite normal matrix aborts the iteration for every image. Here
``cholesky_ex`` flags the failing items, which are retried with a diagonal jitter and,
if that fails too, get a zero step (LM then rejects it and raises their damping).
"""

from __future__ import annotations

import theseus as th
import torch
from torch import Tensor

__all__ = ["RobustCholeskyDenseSolver"]


class RobustCholeskyDenseSolver(th.CholeskyDenseSolver):
    """Batched dense Cholesky solve of ``(A^T A + damping) x = A^T b`` (B, n, n)."""

    #: relative jitter (times mean diagonal) added to items whose factorisation fails
    JITTER = 1e-5

    def _solve_sytem(self, Atb: Tensor, AtA: Tensor) -> Tensor:
        lower, info = torch.linalg.cholesky_ex(AtA)
        bad = info > 0  # (B,)
        if bool(bad.any()):
            n = AtA.shape[-1]
            scale = AtA.diagonal(dim1=1, dim2=2).abs().mean(-1).clamp_min(1e-12)  # (B,)
            eye = torch.eye(n, dtype=AtA.dtype, device=AtA.device)
            jitter = torch.where(bad, scale * self.JITTER, torch.zeros_like(scale))
            lower2, info2 = torch.linalg.cholesky_ex(AtA + jitter[:, None, None] * eye)
            lower = torch.where(bad[:, None, None], lower2, lower)
            still_bad = info2 > 0
            if bool(still_bad.any()):
                lower = torch.where(still_bad[:, None, None], eye.expand_as(lower), lower)
                Atb = torch.where(still_bad[:, None, None], torch.zeros_like(Atb), Atb)
        sol = torch.cholesky_solve(Atb, lower).squeeze(2)
        return torch.nan_to_num(sol, nan=0.0, posinf=0.0, neginf=0.0)
