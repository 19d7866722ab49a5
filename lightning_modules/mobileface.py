"""MobileFace (METHODS.md C): a 96x96 MobileNet v1 regressing 118 BFM parameters.

Losses (`loss`): "mse" - MSE of the normalised parameters (Eq. 2); "l2_2d3d" - mean over
vertices of ||S(p) - S(p_gt)||^2 (mm^2) + ||P(p) - P(p_gt)||^2 (px^2) (Eq. 3); "l1_2d3d"
- the same with l1 norms (Eq. 4). Weights `w3d`, `w2d` balance the two terms.
Evaluation: ICP + Procrustes normalised distance d = 100 ||S - S_gt||^2 / ||S_gt - mean||^2
per face (correspondence-initialised ICP on the decoder's vertices), CED AUC on [0, 1];
test also logs the mean-shape baseline and the registered-model upper bound.

Batch keys: `image` (B, 3, 96, 96) and `params`, either
- (B, 118) in the layout of lightning_modules.components.bfm118 (raw units, incl. the camera), or
- (B, 235) 300W-LP / 3DDFA parameters (datamodules/w300lp.py: Shape 199, Exp 29, Pose 7 in the
  original image) with `landmarks_px` (B, 68, 2) crop px. Choice: the 109 shape coefficients are
  converted (BFM118.coefficients_from_3ddfa: id = Shape_Para[:80] / shapeEV, exp = Exp_Para /
  sigma_exp; exact least squares because the BFM's PCs are orthonormal); the camera (t, angles,
  f, Px, Py) of the crop is NOT converted. Instead "mse" supervises the 109 shape coefficients
  only, and the 2D term of "l2_2d3d" / "l1_2d3d" compares the projected iBUG-68 keypoints
  (vertices 0..67 of BFM118.from_bfm) with `landmarks_px`; the 3D term compares the shapes in
  model space (pose-free). The evaluation (ICP + Procrustes on the shape) needs no camera.
  Known limit: 300W-LP's flipped samples keep their unflipped Shape_Para (w300lp.py).
"""

from __future__ import annotations

import functools

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lightning_modules.components.bfm118 import BFM118, N_EXP, N_ID, N_PARAMS
from lightning_modules.metrics.shape3d import CEDAUC, icp_procrustes_distance, similarity_procrustes

LOSSES = ("mse", "l2_2d3d", "l1_2d3d")


class MobileFaceRegressor(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        face_model: BFM118,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        loss: str = "l2_2d3d",
        w3d: float = 1.0,
        w2d: float = 1.0,
        icp_iters: int = 3,
        landmark_set: str = "ibug68",
        image_size: int = 96,
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"MobileFaceRegressor: loss must be one of {LOSSES}, got {loss!r}")
        self.save_hyperparameters(ignore=["net", "face_model"])
        self.net = net
        self.face_model = face_model
        self.val_auc = CEDAUC(max_error=1.0)
        self.test_auc = CEDAUC(max_error=1.0)
        self.test_auc_meanshape = CEDAUC(max_error=1.0)
        self.test_auc_upper = CEDAUC(max_error=1.0)

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, 96, 96) -> (B, 118) raw parameters."""
        return self.face_model.denormalise(self.net(image))

    def _check(self, batch: dict[str, Tensor]) -> tuple[Tensor, bool]:
        """-> (p_gt (B, 118), has_camera). 3DDFA (B, 235) parameters are converted (module doc)."""
        p = batch.get("params")
        if p is not None and p.dim() == 2 and p.shape[1] == N_PARAMS:
            return p, True
        if p is not None and p.dim() == 2 and p.shape[1] == 235:
            lm = batch.get("landmarks_px")
            if lm is None or lm.shape[1:] != (68, 2):
                raise ValueError("MobileFaceRegressor: 3DDFA params (B, 235) need batch['landmarks_px'] (B, 68, 2) crop px")
            if self.face_model.n_keypoints != 68:
                raise ValueError("MobileFaceRegressor: 3DDFA params need a BFM118 with the 68 keypoints (BFM118.from_bfm)")
            fm = self.face_model
            p118 = fm.param_mean.expand(p.shape[0], -1).clone()
            p118[:, : N_ID + N_EXP] = fm.coefficients_from_3ddfa(p.to(p118))
            return p118, False
        got = None if p is None else tuple(p.shape)
        raise ValueError(
            f"MobileFaceRegressor: batch['params'] must be (B, {N_PARAMS}) (bfm118 layout) or (B, 235) (3DDFA), got {got}"
        )

    def model_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        p_gt, has_camera = self._check(batch)
        p_norm = self.net(batch["image"])
        p = self.face_model.denormalise(p_norm)
        fm = self.face_model
        if self.hparams.loss == "mse":
            k = N_PARAMS if has_camera else N_ID + N_EXP
            loss = ((p_norm[:, :k] - fm.normalise(p_gt)[:, :k]) ** 2).sum(1).mean()
            return loss, p, p_gt
        s, s_gt = fm.shape(p) * 1e3, fm.shape(p_gt) * 1e3  # mm
        if has_camera:
            q, q_gt = fm.project(p), fm.project(p_gt)  # px
        else:
            q, q_gt = fm.project(p)[:, :68], batch["landmarks_px"].to(p)  # iBUG-68, crop px
        if self.hparams.loss == "l2_2d3d":
            l3, l2 = ((s - s_gt) ** 2).sum(-1), ((q - q_gt) ** 2).sum(-1)
        else:
            l3, l2 = (s - s_gt).abs().sum(-1), (q - q_gt).abs().sum(-1)
        loss = self.hparams.w3d * l3.mean() + self.hparams.w2d * l2.mean()
        return loss, p, p_gt

    def mesh_distances(self, p: Tensor, p_gt: Tensor) -> Tensor:
        """(B,) normalised distance d of S(p) to S(p_gt) (ICP + Procrustes, eq. 17)."""
        s, s_gt = self.face_model.shape(p).double(), self.face_model.shape(p_gt).double()
        idx = torch.arange(s.shape[1], device=s.device)
        return torch.stack([
            icp_procrustes_distance(s[b], s_gt[b], n_iter=self.hparams.icp_iters, init_correspondence=idx)
            for b in range(s.shape[0])
        ])

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.model_step(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, p, p_gt = self.model_step(batch)
        d = self.mesh_distances(p, p_gt)
        bsz = p.shape[0]
        self.log("val/loss", loss, on_epoch=True, batch_size=bsz)
        self.log("val/dist", d.mean(), on_epoch=True, prog_bar=True, batch_size=bsz)
        self.val_auc(d)
        self.log("val/auc", self.val_auc, on_epoch=True, batch_size=bsz)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, p, p_gt = self.model_step(batch)
        bsz = p.shape[0]
        d = self.mesh_distances(p, p_gt)
        mean_p = self.face_model.param_mean.expand_as(p_gt)
        d_mean = self.mesh_distances(mean_p, p_gt)
        d_upper = self.mesh_distances(self.registered_params(p_gt), p_gt)
        self.log("test/loss", loss, on_epoch=True, batch_size=bsz)
        self.log("test/dist", d.mean(), on_epoch=True, batch_size=bsz)
        for metric, vals, name in ((self.test_auc, d, "auc"), (self.test_auc_meanshape, d_mean, "auc_meanshape"),
                                   (self.test_auc_upper, d_upper, "auc_upper")):
            metric(vals)
            self.log(f"test/{name}", metric, on_epoch=True, batch_size=bsz)

    def registered_params(self, p_gt: Tensor) -> Tensor:
        """Upper bound: the model registered to the ground-truth mesh in 3D (Procrustes +
        linear least squares of the 109 shape coefficients, alternated 3 times)."""
        fm = self.face_model
        target = fm.shape(p_gt).double()  # (B, N, 3)
        basis = torch.cat([fm.id_basis, fm.exp_basis], -1).double().flatten(0, 1)  # (3N, 109)
        coeff = torch.zeros(target.shape[0], basis.shape[1], dtype=basis.dtype, device=basis.device)
        for _ in range(3):
            model = fm.mean.double() + (basis @ coeff.T).T.view_as(target)
            aligned_target, *_ = similarity_procrustes(target, model)
            rhs = (aligned_target - fm.mean.double()).flatten(1)  # (B, 3N)
            coeff = torch.linalg.lstsq(basis, rhs.T).solution.T
        p = fm.param_mean.double().expand_as(p_gt).clone()
        p[:, : basis.shape[1]] = coeff
        return p.to(p_gt.dtype)

    def configure_optimizers(self):
        opt = self.hparams.optimizer(params=self.parameters())
        if self.hparams.get("scheduler") is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.hparams.scheduler(optimizer=opt), "interval": "step"}}
