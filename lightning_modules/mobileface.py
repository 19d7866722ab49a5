"""MobileFace (METHODS.md C): a 96x96 MobileNet v1 regressing 118 BFM parameters.

Losses (`loss`): "mse" - squared error of the normalised parameters (Eq. 2), weighted by `mse_weights`
("geometric": the shape coefficients in the model's units as in the paper, i.e. each by the squared vertex
displacement it causes; "uniform": all 118 alike); "l2_2d3d" - mean over
vertices of ||S(p) - S(p_gt)||^2 (mm^2) + ||P(p) - P(p_gt)||^2 (px^2) (Eq. 3); "l1_2d3d"
- the same with l1 norms (Eq. 4). Weights `w3d`, `w2d` balance the two terms.
Evaluation: ICP + Procrustes normalised distance d = 100 ||S - S_gt||^2 / ||S_gt - mean||^2
per face (correspondence-initialised ICP on the decoder's vertices), CED AUC on [0, 1];
test also logs the mean-shape baseline and the registered-model upper bound.

`monitor` / `monitor_mode`: the metric the system is judged by (default val/dist, min); its LR scheduler
watches it and configs/callbacks/*.yaml read it (`${model.monitor}`) for checkpointing.
`scheduler_interval`: "step" (default; the paper's schedule is in iterations) or "epoch" (needed for a
ReduceLROnPlateau on `monitor`); see lightning_modules/optimization.py.

Batch keys: `image` (B, 3, 96, 96) and `params`, either
- (B, 118) in the layout of lightning_modules.components.bfm118 (raw units, incl. the camera); the
  ground-truth mesh is S(params); or
- (B, 235) 300W-LP / 3DDFA parameters (datamodules/w300lp.py: Shape 199, Exp 29, Pose 7 in the
  source image) with `crop_matrix` (B, 3, 3) source px -> crop px, `source_height` (B,) and
  optionally `flipped` (B,): converted to the 118 parameters of the crop by BFM118.from_3ddfa
  (80 id modes by least squares, exp as-is, a perspective camera reproducing the crop projection).
  The ground-truth mesh of the evaluation is the full 3DDFA face (all 199 identity modes,
  BFM118.shape_3ddfa), so the registered-model upper bound S(p_gt) vs that mesh is the
  conversion's error (for flipped samples, train-time only, the mesh is S(p_gt)).
Parameter normalisation (`param_stats`): "train" (default) sets the per-parameter mean / std from the
training split's converted targets at the start of fitting (the datamodule's train dataset must offer
`conversion_inputs()`, as W300LPDataset does; kept in the checkpoint as buffers); "default" keeps
bfm118.default_param_stats. The mean-shape baseline is S(param_mean) (the training mean).
At the end of testing the per-face distances go to `<trainer.default_root_dir>/test_errors.npz`
(`index`, `dist`, `dist_meanshape`, `dist_upper`, (N,) each) for CED curves.
"""

from __future__ import annotations

import functools

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from lightning_modules.components.bfm118 import BFM118, N_3DDFA, N_PARAMS
from lightning_modules.metrics.shape3d import CEDAUC, icp_procrustes_distance
from lightning_modules.optimization import optimizer_config
from lightning_modules.test_errors import write_test_errors

LOSSES = ("mse", "l2_2d3d", "l1_2d3d")
MSE_WEIGHTS = ("uniform", "geometric")


class MobileFaceRegressor(pl.LightningModule):
    def __init__(
        self,
        net: nn.Module,
        face_model: BFM118,
        optimizer: functools.partial,
        scheduler: functools.partial | None = None,
        scheduler_interval: str = "step",
        loss: str = "l2_2d3d",
        w3d: float = 1.0,
        w2d: float = 1.0,
        icp_iters: int = 3,
        landmark_set: str = "ibug68",
        image_size: int = 96,
        param_stats: str = "train",
        num_threads: int | None = None,
        mse_weights: str = "uniform",
        monitor: str = "val/dist",
        monitor_mode: str = "min",
    ) -> None:
        super().__init__()
        if loss not in LOSSES:
            raise ValueError(f"MobileFaceRegressor: loss must be one of {LOSSES}, got {loss!r}")
        if mse_weights not in MSE_WEIGHTS:
            raise ValueError(f"MobileFaceRegressor: mse_weights must be one of {MSE_WEIGHTS}, got {mse_weights!r}")
        if param_stats not in ("train", "default"):
            raise ValueError(f"MobileFaceRegressor: param_stats must be 'train' or 'default', got {param_stats!r}")
        self.save_hyperparameters(ignore=["net", "face_model"])
        self.net = net
        self.face_model = face_model
        self.val_auc = CEDAUC(max_error=1.0)
        self.test_auc = CEDAUC(max_error=1.0)
        self.test_auc_meanshape = CEDAUC(max_error=1.0)
        self.test_auc_upper = CEDAUC(max_error=1.0)
        self._test_errors: list[dict[str, Tensor]] = []

    def setup(self, stage: str) -> None:
        """`num_threads`: torch intra-op threads for this process (None: leave torch's default). The
        96 px MobileNet is small: on a shared CPU one thread is much faster than two (docs/DECISIONS.md)."""
        if self.hparams.get("num_threads"):
            torch.set_num_threads(int(self.hparams.num_threads))

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, 96, 96) -> (B, 118) raw parameters."""
        return self.face_model.denormalise(self.net(image))

    def targets(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """-> (p_gt (B, 118) raw parameters, S_gt (B, N, 3) ground-truth mesh, metres); module doc."""
        p = batch.get("params")
        fm = self.face_model
        if p is not None and p.dim() == 2 and p.shape[1] == N_PARAMS:
            return p, fm.shape(p)
        if p is not None and p.dim() == 2 and p.shape[1] == N_3DDFA:
            for key in ("crop_matrix", "source_height"):
                if key not in batch:
                    raise ValueError(f"MobileFaceRegressor: 3DDFA params (B, 235) need batch[{key!r}] "
                                     "(datamodules/w300lp.py) to convert the camera to the crop")
            flipped = batch.get("flipped")
            flipped = None if flipped is None else flipped.reshape(-1) > 0.5
            p_gt = fm.from_3ddfa(p, batch["crop_matrix"], batch["source_height"], flipped)
            s_gt = fm.shape_3ddfa(p)
            if flipped is not None and bool(flipped.any()):
                s_gt = torch.where(flipped.view(-1, 1, 1), fm.shape(p_gt), s_gt)
            return p_gt, s_gt
        got = None if p is None else tuple(p.shape)
        raise ValueError(
            f"MobileFaceRegressor: batch['params'] must be (B, {N_PARAMS}) (bfm118 layout) or (B, {N_3DDFA}) (3DDFA), got {got}"
        )

    def losses(self, p_norm: Tensor, p_gt: Tensor) -> Tensor:
        """The configured loss of normalised predictions (B, 118) against raw targets (B, 118).

        mse: sum over the 118 normalised parameters of the weighted squared error, mean over the batch
        (`mse_weights`, see mse_weight_vector);
        l2_2d3d: mean over vertices of ||S(p) - S(p_gt)||^2 (mm^2) times w3d + mean over vertices of
        ||P(p) - P(p_gt)||^2 (crop px^2) times w2d; l1_2d3d: the same with l1 norms (mm, px).
        """
        fm = self.face_model
        if self.hparams.loss == "mse":
            return (self.mse_weight_vector() * (p_norm - fm.normalise(p_gt)) ** 2).sum(1).mean()
        p = fm.denormalise(p_norm)
        s, s_gt = fm.shape(p) * 1e3, fm.shape(p_gt) * 1e3  # mm
        q, q_gt = fm.project(p, s * 1e-3), fm.project(p_gt, s_gt * 1e-3)  # crop px
        if self.hparams.loss == "l2_2d3d":
            l3, l2 = ((s - s_gt) ** 2).sum(-1), ((q - q_gt) ** 2).sum(-1)
        else:
            l3, l2 = (s - s_gt).abs().sum(-1), (q - q_gt).abs().sum(-1)
        return self.hparams.w3d * l3.mean() + self.hparams.w2d * l2.mean()

    def mse_weight_vector(self) -> Tensor:
        """(118,) weights of the squared errors of the normalised parameters in the mse loss.

        "uniform": all ones (every parameter divided by its training std counts alike: the 80th identity
        mode as much as the first). "geometric": Eq. 2 with the 109 shape coefficients in the model's own
        units, as the paper writes it (alpha in BFM PC units, orthonormal modes: the squared coefficient
        error is the squared vertex error): w_k = std_k^2 ||A_k||^2 / N in mm^2 per vertex, so the shape
        part is the mean squared vertex displacement (mm^2) of the coefficient errors; the 9 camera
        parameters keep weight 1 in training-std units (the paper gives no units for them).
        """
        fm = self.face_model
        w = torch.ones_like(fm.param_std)
        if self.hparams.get("mse_weights", "uniform") == "geometric":
            n_shape = fm.id_basis.shape[-1] + fm.exp_basis.shape[-1]
            w = torch.cat([fm.mode_weights() * fm.param_std[:n_shape] ** 2, w[n_shape:]])
        return w

    def model_step(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        p_gt, _ = self.targets(batch)
        p_norm = self.net(batch["image"])
        return self.losses(p_norm, p_gt), self.face_model.denormalise(p_norm), p_gt

    def mesh_distances(self, p: Tensor, s_gt: Tensor) -> Tensor:
        """(B,) normalised distance d of S(p) to the ground-truth mesh s_gt (B, N, 3) (ICP +
        Procrustes, d = 100 ||S - S_gt||^2 / ||S_gt - mean||^2; correspondence-initialised)."""
        # float32: faster nearest neighbours than float64 on CPU; d is a ratio of sums of squares of
        # ~1e-3 m offsets, far above float32's resolution
        s, s_gt = self.face_model.shape(p.detach().float()), s_gt.detach().float()
        idx = torch.arange(s.shape[1], device=s.device)
        return torch.stack([
            icp_procrustes_distance(s[b], s_gt[b], n_iter=self.hparams.icp_iters, init_correspondence=idx)
            for b in range(s.shape[0])
        ])

    def on_fit_start(self) -> None:
        """param_stats == "train": normalisation from the training split's converted targets."""
        if self.hparams.get("param_stats", "train") != "train" or self.trainer is None:
            return
        dm = getattr(self.trainer, "datamodule", None)
        ds = getattr(dm, "datasets", {}).get("train") if dm is not None else None
        if ds is None or not hasattr(ds, "conversion_inputs"):
            return
        self.set_param_stats_from(ds)

    def set_param_stats_from(self, dataset) -> None:
        """Set the face model's parameter normalisation to the mean / std of `dataset`'s converted
        targets without augmentation (`dataset.conversion_inputs()`, e.g. W300LPDataset)."""
        inp = {k: torch.as_tensor(v, dtype=torch.float64, device=self.device)
               for k, v in dataset.conversion_inputs().items()}
        fm = self.face_model
        p = torch.cat([fm.from_3ddfa(inp["params"][i : i + 256], inp["crop_matrix"][i : i + 256],
                                     inp["source_height"][i : i + 256])
                       for i in range(0, inp["params"].shape[0], 256)])
        fm.set_param_stats(p)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self.model_step(batch)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        p_gt, s_gt = self.targets(batch)
        p_norm = self.net(batch["image"])
        loss, p = self.losses(p_norm, p_gt), self.face_model.denormalise(p_norm)
        d = self.mesh_distances(p, s_gt)
        bsz = p.shape[0]
        self.log("val/loss", loss, on_epoch=True, batch_size=bsz)
        self.log("val/dist", d.mean(), on_epoch=True, prog_bar=True, batch_size=bsz)
        self.val_auc(d)
        self.log("val/auc", self.val_auc, on_epoch=True, batch_size=bsz)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        p_gt, s_gt = self.targets(batch)
        p_norm = self.net(batch["image"])
        loss, p = self.losses(p_norm, p_gt), self.face_model.denormalise(p_norm)
        bsz = p.shape[0]
        d = self.mesh_distances(p, s_gt)
        d_mean = self.mesh_distances(self.face_model.param_mean.expand_as(p_gt), s_gt)
        d_upper = self.mesh_distances(p_gt, s_gt)  # the registered 118-parameter model (conversion error)
        self.log("test/loss", loss, on_epoch=True, batch_size=bsz)
        for vals, name in ((d, "dist"), (d_mean, "dist_meanshape"), (d_upper, "dist_upper")):
            self.log(f"test/{name}", vals.mean(), on_epoch=True, batch_size=bsz)
        for metric, vals, name in ((self.test_auc, d, "auc"), (self.test_auc_meanshape, d_mean, "auc_meanshape"),
                                   (self.test_auc_upper, d_upper, "auc_upper")):
            metric(vals)
            self.log(f"test/{name}", metric, on_epoch=True, batch_size=bsz)
        index = batch.get("index", torch.full((bsz,), -1, dtype=torch.long))
        self._test_errors.append({"index": index.detach().cpu().long(), "dist": d.detach().cpu(),
                                  "dist_meanshape": d_mean.detach().cpu(), "dist_upper": d_upper.detach().cpu()})

    def on_test_epoch_start(self) -> None:
        self._test_errors = []

    def on_test_epoch_end(self) -> None:
        """Write the per-face distances (single process; under DDP each rank's own faces)."""
        write_test_errors(self.trainer, self._test_errors)
        self._test_errors = []

    def configure_optimizers(self):
        return optimizer_config(self.hparams.optimizer(params=self.parameters()), self.hparams.get("scheduler"),
                                self.hparams.monitor, self.hparams.scheduler_interval)
