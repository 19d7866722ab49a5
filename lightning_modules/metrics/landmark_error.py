"""MLME: mean 2D landmark error in pixels (thesis Eq. 4.1), DDP-correct."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class MeanLandmarkError(Metric):
    """MLME = (1 / N L) sum_i sum_k ||pred_ik - gt_ik||_2, in the units of the inputs (crop px).

    update(preds (B, L, D), target (B, L, D), mask (B, L) optional: 1 counts, 0 ignored).
    States are a sum of errors and a count (dist_reduce_fx="sum"), so the DDP result equals the
    single-process result over the union of the data.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("err_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if preds.shape != target.shape or preds.ndim != 3:
            raise ValueError(
                f"MeanLandmarkError: preds {tuple(preds.shape)} and target {tuple(target.shape)} "
                "must both be (B, L, D)"
            )
        err = (preds.detach() - target.detach()).double().norm(dim=-1)  # (B, L)
        if mask is None:
            self.err_sum += err.sum()
            self.count += err.numel()
        else:
            m = mask.detach().double()
            self.err_sum += (err * m).sum()
            self.count += m.sum()

    def compute(self) -> torch.Tensor:
        return (self.err_sum / self.count.clamp_min(1.0)).float()
