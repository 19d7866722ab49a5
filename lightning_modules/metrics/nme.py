"""Normalised mean error (NME, %) under the AFLW2000-3D protocol and DAD-3DHeads' protocol.

Per image: NME_i = mean_k ||pred_ik - gt_ik||_2 / d_i.
- AFLW2000-3D (3DDFA / SynergyNet / the 520-point paper): d_i = sqrt(w h) of the bounding box
  of the GROUND-TRUTH 68 landmarks; images are grouped by |yaw| into [0, 30], (30, 60], (60, 90]
  degrees (|yaw| > 90 goes to the last bin); reported are the three bin means and "All" = the
  mean of the bin means (balanced over poses), all x100. Empty bins are left out of "All".
- DAD-3DHeads: d_i = sqrt(w h) of the head bounding box (the dataset's bbox [x, y, w, h]); the
  plain mean over images, x100. preds, target and box must be in the same pixel frame.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from fitting.mesh_metrics import nme_box

YAW_BIN_EDGES = (30.0, 60.0)  # |yaw| <= 30 -> bin 0, <= 60 -> bin 1, else bin 2
YAW_BIN_NAMES = ("0_30", "30_60", "60_90")


def gt_box_size(target: torch.Tensor) -> torch.Tensor:
    """(B, L, 2) GT landmarks -> (B,) sqrt(w h) of their axis-aligned bounding box."""
    wh = target.amax(dim=1) - target.amin(dim=1)  # (B, 2)
    return (wh[:, 0] * wh[:, 1]).clamp_min(0.0).sqrt()


def per_image_nme(preds: torch.Tensor, target: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """(B, L, 2), (B, L, 2), (B,) -> (B,) mean point error / norm (a fraction, not %)."""
    if (norm <= 0).any():
        raise ValueError("per_image_nme: normalisation distance must be > 0 for every image")
    return (preds - target).norm(dim=-1).mean(dim=1) / norm


def yaw_bin(yaw_deg: torch.Tensor) -> torch.Tensor:
    """(B,) yaw in degrees -> (B,) int64 bin index 0, 1, 2 for |yaw| in [0,30], (30,60], (60,90+]."""
    a = yaw_deg.abs()
    return (a > YAW_BIN_EDGES[0]).long() + (a > YAW_BIN_EDGES[1]).long()


class AFLW2000NME(Metric):
    """NME (%) with the AFLW2000-3D protocol; compute() -> dict of bin means and "all".

    update(preds (B, 68, 2) px, target (B, 68, 2) px, yaw (B,) degrees).
    Returns {"0_30", "30_60", "60_90", "all"} (x100; NaN for an empty bin, "all" over non-empty
    bins) and "mean" (the plain, pose-unbalanced mean over images).
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("bin_sum", default=torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("bin_count", default=torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, yaw: torch.Tensor) -> None:
        if preds.shape != target.shape or preds.shape[-1] != 2:
            raise ValueError(
                f"AFLW2000NME: preds {tuple(preds.shape)} / target {tuple(target.shape)} must be (B, L, 2)"
            )
        target = target.detach().double()
        nme = per_image_nme(preds.detach().double(), target, gt_box_size(target))  # (B,)
        bins = yaw_bin(yaw.detach().reshape(-1))
        self.bin_sum += torch.zeros(3, dtype=torch.float64, device=nme.device).index_add_(0, bins, nme)
        self.bin_count += torch.bincount(bins, minlength=3).double()

    def compute(self) -> dict[str, torch.Tensor]:
        means = self.bin_sum / self.bin_count.clamp_min(1.0) * 100.0
        means = torch.where(self.bin_count > 0, means, torch.full_like(means, float("nan")))
        out = {name: means[i].float() for i, name in enumerate(YAW_BIN_NAMES)}
        out["all"] = means[self.bin_count > 0].mean().float()
        out["mean"] = (self.bin_sum.sum() / self.bin_count.sum().clamp_min(1.0) * 100.0).float()
        return out


class DADNME(Metric):
    """DAD-3DHeads NME (%): mean_i [mean_k ||pred - gt|| / sqrt(w_i h_i)] x 100, head box (w, h).

    update(preds (B, 68, 2), target (B, 68, 2), bbox (B, 4) [x, y, w, h]), all in one pixel frame.
    """

    full_state_update = False
    higher_is_better = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_state("nme_sum", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: torch.Tensor, target: torch.Tensor, bbox: torch.Tensor) -> None:
        if bbox.ndim != 2 or bbox.shape[1] != 4:
            raise ValueError(f"DADNME: bbox must be (B, 4) [x, y, w, h], got {tuple(bbox.shape)}")
        nme = nme_box(preds.detach().double(), target.detach().double(), bbox.detach().double())  # (B,) x100
        self.nme_sum += nme.sum()
        self.count += nme.numel()

    def compute(self) -> torch.Tensor:
        return (self.nme_sum / self.count.clamp_min(1.0)).float()
