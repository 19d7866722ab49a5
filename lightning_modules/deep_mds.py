"""Deep-MDS (METHODS.md E): view auto-encoder + learned 3D dissimilarities + non-metric MDS.

Training (both parts in one system, each with its own loss, summed):
- auto-encoder: standardised input view -> the face's canonical view (orthographic,
  rotated by `canonical_yaw_deg` about the vertical axis; default 0 = frontal, the paper
  uses a profile view), MSE (Eq. 7);
- dissimilarity net: pairs of canonical-view landmarks of the same face (all pairs of
  each face in the batch) -> their 3D distance, squared error (Eq. 8). Its input is the
  ground-truth canonical view (`dissim_input="target"`) or the auto-encoder's detached
  output (`"predicted"`).
Units: the canonical view and the 3D shape are divided by the canonical view's Zhao
scale ((std x + std y) / 2), so distances are in canonical standardised units.
`pair_origin`: where the dissimilarity net's 2D coordinates start. "centre" (centred view) makes
the products x_i x_j, y_i y_j of the pair features blind to a joint sign flip (a pair on the chin
and its mirror image on the forehead look alike); "corner" shifts the view so that its smallest
x and y are 0.5 (positive coordinates, as image coordinates are in the paper), which removes it.
`mirror_average`: the distances are the mean of the net's estimates for the canonical view and its mirror
image (x -> -x). `lr_schedule`: "cosine" (per-step decay over the run) or "scheduler" (the `scheduler`
partial); `autoencoder_lr`: the auto-encoder's own lr. Measured reasons: docs/DECISIONS.md.
`dissim_loss`: "squared" (Eq. 8) or "relative" ((d^ - d)^2 / d^2: NMDS uses only the order of the
dissimilarities, and short distances are as important for it as long ones).

Validation / test also log the dissimilarity net's mean relative distance error (no NMDS, cheap):
`{stage}/dissim_rel_err` on the auto-encoder's canonical view (what lifting uses) and
`{stage}/dissim_rel_err_gt_view` on the ground-truth canonical view (the net alone), and
`{stage}/canon_rmse` the auto-encoder's RMS point error (canonical standardised units).

Evaluation / lifting: AE -> dissimilarity matrix -> batched SMACOF NMDS (fitting/nmds.py)
-> mirror-fix (iBUG-68 chirality) -> weak-perspective fit to the input 2D landmarks ->
depth in px (fitting/weak_perspective.py).
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from fitting.nmds import pairwise_distances, smacof_nmds
from fitting.weak_perspective import fix_chirality_ibug68, lift_with_shape
from lightning_modules.components.depth_mlp import standardise_2d
from lightning_modules.components.dissimilarity_net import DeepMDSNet
from lightning_modules.lifting_base import LiftingModule, centred_depth
from lightning_modules.optimization import optimizer_config

PAPER_N_PARAMETERS = 27_505


def canonical_view(shape_model: Tensor, yaw_deg: float) -> tuple[Tensor, Tensor]:
    """Canonical orthographic view of model-space shapes and the matching 3D normalisation.

    shape_model: (B, L, 3) model space (y up, z out), any unit. Returns (canon (B, L, 2)
    standardised 2D in image orientation (y down), shape_norm (B, L, 3) the centred shape
    divided by the same scale).
    """
    a = math.radians(yaw_deg)
    c, s = math.cos(a), math.sin(a)
    x = shape_model - shape_model.mean(1, keepdim=True)
    xr = c * x[..., 0] + s * x[..., 2]  # Ry(yaw) applied, x row
    proj = torch.stack([xr, -x[..., 1]], -1)  # (B, L, 2) image orientation
    canon, _, scale = standardise_2d(proj)
    return canon, x / scale


def relative_distance_error(dis: Tensor, d_gt: Tensor) -> Tensor:
    """Mean over faces and pairs i != j of |dis_ij - d_ij| / d_ij. dis, d_gt: (B, n, n) -> (B,)."""
    if dis.shape != d_gt.shape or dis.dim() != 3:
        raise ValueError(f"relative_distance_error: need two (B, n, n), got {tuple(dis.shape)}, {tuple(d_gt.shape)}")
    off = ~torch.eye(dis.shape[1], dtype=torch.bool, device=dis.device)
    return ((dis - d_gt).abs()[:, off] / d_gt[:, off].clamp_min(1e-12)).mean(1)


class DeepMDSLifter(LiftingModule):
    """Batch keys: `landmarks_px` (B, 68, 2), `landmarks3d` (B, 68, 3) px, and
    `landmarks3d_model` (B, 68, 3) model-space shape (datamodules.landmarks3d)."""

    def __init__(
        self,
        net: DeepMDSNet,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        landmark_set: str = "ibug68",
        image_size: int = 256,
        early_stopping_patience: int | None = None,
        monitor: str = "val/gte",
        canonical_yaw_deg: float = 0.0,
        dissim_weight: float = 1.0,
        dissim_input: str = "target",
        nmds_iters: int = 100,
        num_threads: int | None = None,
        pair_origin: str = "centre",
        dissim_loss: str = "squared",
        lr_schedule: str = "scheduler",
        mirror_average: bool = False,
        autoencoder_lr: float | None = None,
        monitor_mode: str = "min",
    ) -> None:
        super().__init__(net, optimizer, scheduler, landmark_set, image_size, early_stopping_patience, monitor,
                         num_threads, monitor_mode)
        if dissim_input not in ("target", "predicted"):
            raise ValueError(f"DeepMDSLifter: dissim_input must be 'target' or 'predicted', got {dissim_input!r}")
        if pair_origin not in ("centre", "corner"):
            raise ValueError(f"DeepMDSLifter: pair_origin must be 'centre' or 'corner', got {pair_origin!r}")
        if dissim_loss not in ("squared", "relative"):
            raise ValueError(f"DeepMDSLifter: dissim_loss must be 'squared' or 'relative', got {dissim_loss!r}")
        if lr_schedule not in ("scheduler", "cosine"):
            raise ValueError(f"DeepMDSLifter: lr_schedule must be 'scheduler' or 'cosine', got {lr_schedule!r}")
        self.save_hyperparameters(ignore=["net"])
        print(f"Deep-MDS trainable parameters: {net.n_parameters():,} (paper: {PAPER_N_PARAMETERS:,})")

    def lift(self, xy_px: Tensor) -> Tensor:
        """(B, 68, 2) px -> (B, 68, 3) px: x, y unchanged, zero-mean z towards the camera."""
        xy_std, _, _ = standardise_2d(xy_px)
        canon = self.net.autoencoder(xy_std)
        dis = self.dissimilarities(canon)
        res = smacof_nmds(dis.double(), dim=3, n_iter=self.hparams.nmds_iters)
        shape = fix_chirality_ibug68(res.points).to(xy_px.dtype)
        return centred_depth(lift_with_shape(shape, xy_px))

    def dissimilarities(self, canon: Tensor) -> Tensor:
        """(B, n, 2) canonical view -> (B, n, n) estimated 3D distances; with `mirror_average` the mean of
        the net's estimates for the view and for its mirror image (x -> -x: the mirrored face has the same
        distances; two estimates whose errors partly cancel)."""
        dis = self.net.dissimilarity.matrix(self._pair_coords(canon))
        if self.hparams.get("mirror_average", False):
            flip = torch.tensor([-1.0, 1.0], dtype=canon.dtype, device=canon.device)
            dis = 0.5 * (dis + self.net.dissimilarity.matrix(self._pair_coords(canon * flip)))
        return dis

    def configure_optimizers(self):
        """`autoencoder_lr`: the auto-encoder's own lr (a second parameter group; None: the optimizer's lr
        for both parts). `lr_schedule="cosine"`: cosine decay of the lr(s) to 0 over the run's optimiser
        steps (trainer.estimated_stepping_batches), stepped every batch; otherwise the `scheduler` partial
        (e.g. ReduceLROnPlateau on `monitor`) or none."""
        ae_lr = self.hparams.get("autoencoder_lr")
        params = self.parameters() if ae_lr is None else [
            {"params": list(self.net.autoencoder.parameters()), "lr": float(ae_lr)},
            {"params": [p for n, p in self.net.named_parameters() if not n.startswith("autoencoder.")]},
        ]
        opt = self.hparams.optimizer(params=params)
        if self.hparams.get("lr_schedule", "scheduler") != "cosine":
            return optimizer_config(opt, self.hparams.get("scheduler"), self.hparams.monitor)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        cosine = functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=total)
        return optimizer_config(opt, cosine, self.hparams.monitor, interval="step")

    def _pair_coords(self, canon: Tensor) -> Tensor:
        """(B, n, 2) canonical view -> the dissimilarity net's coordinates (see `pair_origin`)."""
        if self.hparams.get("pair_origin", "centre") == "corner":
            return canon - canon.amin(1, keepdim=True) + 0.5
        return canon

    def _log_dissimilarity_errors(self, stage: str, batch: dict[str, Tensor]) -> None:
        with torch.no_grad():
            canon_gt, shape_norm = canonical_view(batch["landmarks3d_model"], self.hparams.canonical_yaw_deg)
            canon = self.net.autoencoder(standardise_2d(batch["landmarks_px"])[0])
            d_gt = pairwise_distances(shape_norm)
            bsz = d_gt.shape[0]
            for name, view in (("dissim_rel_err", canon), ("dissim_rel_err_gt_view", canon_gt)):
                err = relative_distance_error(self.dissimilarities(view), d_gt)
                self.log(f"{stage}/{name}", err.mean(), on_epoch=True, batch_size=bsz)
            self.log(f"{stage}/canon_rmse", ((canon - canon_gt) ** 2).sum(-1).mean().sqrt(), on_epoch=True,
                     batch_size=bsz)

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        super().validation_step(batch, batch_idx)
        self._log_dissimilarity_errors("val", batch)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        super().test_step(batch, batch_idx)
        self._log_dissimilarity_errors("test", batch)

    def model_step(self, batch: dict[str, Tensor], full: bool = True) -> tuple[Tensor, Tensor | None, Tensor]:
        if "landmarks3d_model" not in batch:
            raise KeyError("DeepMDSLifter: batch needs 'landmarks3d_model' (B, 68, 3) (datamodules.landmarks3d)")
        xy = batch["landmarks_px"]
        canon_gt, shape_norm = canonical_view(batch["landmarks3d_model"], self.hparams.canonical_yaw_deg)
        xy_std, _, _ = standardise_2d(xy)
        canon = self.net.autoencoder(xy_std)
        ae_loss = ((canon - canon_gt) ** 2).sum(-1).mean()
        dis_in = canon_gt if self.hparams.dissim_input == "target" else canon.detach()
        dnet = self.net.dissimilarity
        if self.training and getattr(dnet, "normalise", False) and not bool(dnet.feature_stats_set):
            with torch.no_grad():  # the frozen feature statistics come from true canonical views, not from
                dnet.matrix(self._pair_coords(canon_gt))  # an untrained auto-encoder's output
        dis = self.net.dissimilarity.matrix(self._pair_coords(dis_in))  # (B, L, L), all pairs of each face
        d_gt = pairwise_distances(shape_norm)
        n = dis.shape[1]
        err = dis - d_gt
        if self.hparams.get("dissim_loss", "squared") == "relative":
            eye = torch.eye(n, dtype=torch.bool, device=dis.device)
            err = torch.where(eye, torch.zeros_like(err), err / d_gt.clamp_min(1e-6))
        dis_loss = (err**2).sum((1, 2)).mean() / (n * (n - 1))
        loss = ae_loss + self.hparams.dissim_weight * dis_loss
        preds = self.lift(xy) if full else None
        return loss, preds, batch["landmarks3d"]
