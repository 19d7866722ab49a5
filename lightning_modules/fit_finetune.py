"""Thesis method A trained through its fit (issue 17): the dense-landmark network fine-tuned by the
vertex error of the FLAME mesh that the differentiable Theseus fit makes from its landmarks and
confidences, with the landmark loss kept as a regulariser (thesis chapter 5, future work).

Per training step::

    image -> net -> landmarks (B, L, 2) px, confidences (B, L)
          -> LandmarkFitter.fit (fp32, outside autocast; rigid + non-rigid LM) -> vertices (B, V, 3) m
    loss = landmark_weight * landmark loss
         + face_weight * MVE_face + head_weight * MVE_head     (mm, model space, valid fits only)

The gradient of the mesh terms reaches the landmarks and the confidences (the fit's weights) through
the non-rigid stage (FitterConfig.backward_mode: implicit | truncated | unroll); the rigid stage only
sets the start (with ``free_rigid_in_nonrigid`` the rigid parameters are refined, and differentiated,
in the non-rigid stage).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from facemodels.flame_files import face_region_indices, head_without_neck_indices
from fitting.builder import fitter_from_config
from fitting.flame_fit import FitResult, LandmarkFitter
from lightning_modules.checkpoint_file import read_state_dict
from lightning_modules.dense_landmarks import DenseLandmarkModule
from lightning_modules.landmark_system import GPU_PATH_ARGS

__all__ = ["FitFinetuneModule", "masked_mean"]

#: The model-config keys of the fitting block (configs/fitting/default.yaml) the builder reads.
_BUILDER_KEYS = ("landmark_set", "flame_dir", "n_shape", "n_expr", "config")


def masked_mean(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` (B,) over the items where ``valid`` (B,) is True; 0 (with a zero gradient
    for every item) when none is. Invalid items contribute nothing, not even a NaN gradient."""
    safe = torch.where(valid, values, torch.zeros_like(values))
    return safe.sum() / valid.sum().clamp_min(1).to(values.dtype)


class FitFinetuneModule(DenseLandmarkModule):
    """DenseLandmarkModule + a loss on the FLAME mesh fitted to its own landmarks and confidences.

    Args (beyond DenseLandmarkModule's):
        fitting: a ``configs/fitting`` block (landmark_set, flame_dir, n_shape, n_expr, config,
            use_camera_from_batch); the fit used in validation, test and (with the overrides
            below) training. None: the defaults of ``fitting.config``.
        init_from: a Lightning checkpoint (or state_dict file) of a DenseLandmarkModule with the
            same net and loss; its state_dict is loaded (strictly) at the start of training.
        landmark_weight: weight of the landmark loss (the regulariser).
        face_weight, head_weight: weights of MVE face / head-without-neck (mm) of the fitted mesh
            against ``batch["vertices"]``; both 0: the plain landmark fine-tune (no fit in training).
        train_rigid_iterations, train_nonrigid_iterations: LM steps of the fit inside a training
            step (None: the fitting block's).
        backward_mode: implicit | truncated | unroll (None: the fitting block's).
        fit_in_eval: fit in validation too and log ``val/mve_face_mm``, ``val/mve_head_mm``,
            ``val/fit_valid`` (the 3D checkpoint monitor; the test metrics come from experiments.fit).
        fitter, face_idx, head_idx: a prebuilt fitter and vertex subsets (tests); given, ``fitting``
            is not read.

    The fitter is not a sub-module (its model arrays are not in the state_dict, so checkpoints
    load into a plain DenseLandmarkModule too); it follows the module's device when it fits.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        loss: nn.Module,
        fitting: Mapping[str, Any] | None = None,
        init_from: str | None = None,
        landmark_weight: float = 1.0,
        face_weight: float = 0.0,
        head_weight: float = 0.0,
        train_rigid_iterations: int | None = None,
        train_nonrigid_iterations: int | None = None,
        backward_mode: str | None = None,
        fit_in_eval: bool = True,
        scheduler: functools.partial | None = None,
        landmark_set: str = "face1609",
        image_size: int = 256,
        vertex_edge: nn.Module | None = None,
        vertex_edge_weight: float = 0.0,
        use_visibility: bool = False,
        num_overlays: int = 4,
        monitor: str | None = "val/mve_face_mm",
        monitor_mode: str | None = "min",
        channels_last: bool | None = None,
        compile: bool | str | None = False,
        fitter: LandmarkFitter | None = None,
        face_idx: np.ndarray | None = None,
        head_idx: np.ndarray | None = None,
    ) -> None:
        super().__init__(
            net=net,
            optimizer=optimizer,
            loss=loss,
            scheduler=scheduler,
            landmark_set=landmark_set,
            image_size=image_size,
            vertex_edge=vertex_edge,
            vertex_edge_weight=vertex_edge_weight,
            use_visibility=use_visibility,
            num_overlays=num_overlays,
            monitor=monitor,
            monitor_mode=monitor_mode,
            channels_last=channels_last,
            compile=compile,
        )
        self.save_hyperparameters(ignore=["net", "loss", "vertex_edge", "fitter", "face_idx", "head_idx",
                                          *GPU_PATH_ARGS])
        if backward_mode not in (None, "implicit", "truncated", "unroll"):
            raise ValueError(f"FitFinetuneModule: backward_mode={backward_mode!r}, expected implicit | truncated | unroll")
        block = dict(fitting or {})
        if fitter is None:
            fitter, flame_dir = fitter_from_config(
                {k: block[k] for k in _BUILDER_KEYS if k in block}, int(image_size), landmark_set,
                origin="model.fitting",
            )
            face_idx = face_region_indices(flame_dir) if face_idx is None else face_idx
            head_idx = head_without_neck_indices(flame_dir) if head_idx is None else head_idx
        if face_idx is None or head_idx is None:
            raise ValueError("FitFinetuneModule: a prebuilt fitter needs face_idx and head_idx")
        object.__setattr__(self, "fitter", fitter)  # not a sub-module: no FLAME arrays in checkpoints
        overrides = {"backward_mode": backward_mode, "rigid_iterations": train_rigid_iterations,
                     "nonrigid_iterations": train_nonrigid_iterations}
        self.eval_fit_config = fitter.config
        self.train_fit_config = dataclasses.replace(
            fitter.config, **{k: v for k, v in overrides.items() if v is not None}
        )
        self.register_buffer("face_idx", torch.as_tensor(np.asarray(face_idx), dtype=torch.long), persistent=False)
        self.register_buffer("head_idx", torch.as_tensor(np.asarray(head_idx), dtype=torch.long), persistent=False)
        self.init_from = init_from
        self.landmark_weight = float(landmark_weight)
        self.face_weight = float(face_weight)
        self.head_weight = float(head_weight)
        self.fit_in_eval = bool(fit_in_eval)
        self.use_camera_from_batch = bool(block.get("use_camera_from_batch", True))
        self._init_loaded = False
        self._last_preds: dict[str, Tensor] | None = None

    # ----------------------------------------------------------------------------- start
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if stage == "fit" and self.init_from and not self._init_loaded:
            self.load_init_weights(self.init_from)

    def load_init_weights(self, path: str | Path) -> None:
        """Load the state_dict of ``path`` (strict; errors name the file and the keys)."""
        state = read_state_dict(path)
        own = self.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(
                f"init_from {path}: state_dict does not match {type(self).__name__}: missing {missing[:8]}"
                f"{' ...' if len(missing) > 8 else ''}, unexpected {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}"
            )
        shapes = [k for k in own if own[k].shape != state[k].shape]
        if shapes:
            k = shapes[0]
            raise ValueError(f"init_from {path}: key {k!r} is {tuple(state[k].shape)}, the model has {tuple(own[k].shape)}")
        self.load_state_dict(state)
        self._init_loaded = True

    # ----------------------------------------------------------------------------- the fit
    @property
    def mesh_weighted(self) -> bool:
        return self.face_weight > 0 or self.head_weight > 0

    def fit_mesh(self, landmarks_px: Tensor, confidences: Tensor, batch: Mapping[str, Any],
                 train: bool) -> FitResult:
        """The FLAME fit of (B, L, 2) px landmarks with (B, L) confidences, in the fitter's dtype
        (float32) outside autocast (a bf16 backbone's outputs are cast up);
        differentiable in training (the training fit config), plain in evaluation."""
        fitter = self.fitter
        if fitter.lmk.T.device != landmarks_px.device:
            fitter.to(landmarks_px.device)
        dt = fitter.dtype  # the fitter's own precision (float32 unless configured float64), never bf16
        cam = batch.get("camera") if self.use_camera_from_batch else None
        K = cam["K"].to(dt) if isinstance(cam, Mapping) and "K" in cam else None
        fitter.config = self.train_fit_config if train else self.eval_fit_config
        try:
            with torch.autocast(device_type=landmarks_px.device.type, enabled=False):
                return fitter.fit(landmarks_px.to(dt), confidences.to(dt), K)
        finally:
            fitter.config = self.eval_fit_config

    def mesh_errors(self, result: FitResult, gt_vertices: Tensor) -> dict[str, Tensor]:
        """(B,) MVE face / head (mm, model space, no alignment) of the fit against the GT mesh."""
        pred, gt = result.vertices, gt_vertices.to(result.vertices)
        out = {}
        for name, idx in (("face", self.face_idx), ("head", self.head_idx)):
            out[name] = (pred[:, idx] - gt[:, idx]).norm(dim=-1).mean(-1) * 1000.0
        return out

    def mesh_loss(self, landmarks_px: Tensor, confidences: Tensor, batch: Mapping[str, Any],
                  train: bool = True) -> dict[str, Tensor]:
        """{"mesh": weighted MVE (mm) over valid fits, "mve_face_mm", "mve_head_mm", "fit_valid"}."""
        res = self.fit_mesh(landmarks_px, confidences, batch, train)
        err = self.mesh_errors(res, batch["vertices"])
        valid = res.valid & torch.isfinite(err["face"]) & torch.isfinite(err["head"])
        face, head = masked_mean(err["face"], valid), masked_mean(err["head"], valid)
        return {"mesh": self.face_weight * face + self.head_weight * head, "mve_face_mm": face,
                "mve_head_mm": head, "fit_valid": valid.float().mean()}

    # ----------------------------------------------------------------------------- losses
    def compute_loss(self, preds: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        terms = super().compute_loss(preds, batch)
        landmark = terms["loss"]
        terms["landmark"] = landmark
        total = self.landmark_weight * landmark
        if self.training and self.mesh_weighted:
            if "vertices" not in batch:
                raise KeyError(f"{type(self).__name__}: the mesh loss needs batch['vertices'] (keys: {sorted(batch)})")
            mesh = self.mesh_loss(preds["landmarks_px"], preds["confidences"], batch, train=True)
            terms.update({k: v.detach() if k != "mesh" else v for k, v in mesh.items()})
            total = total + mesh["mesh"]
        terms["loss"] = total
        return terms

    def model_step(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        loss, preds, targets = super().model_step(batch)
        self._last_preds = preds  # validation_step fits these (no second forward pass)
        return loss, preds, targets

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """The landmark metrics, then (``fit_in_eval``) the plain fit of the predictions:
        ``val/mve_face_mm``, ``val/mve_head_mm`` (valid fits) and ``val/fit_valid`` (fraction)."""
        super().validation_step(batch, batch_idx)
        preds, self._last_preds = self._last_preds, None
        if not self.fit_in_eval or "vertices" not in batch or preds is None:
            return
        # Lightning validates under inference_mode, which the Theseus solve cannot run under (it reads
        # tensor version counters): fit normal tensors (clones) under no_grad instead
        with torch.inference_mode(False), torch.no_grad():
            lm, conf = preds["landmarks_px"].detach().clone(), preds["confidences"].detach().clone()
            fit_batch = {"vertices": batch["vertices"].clone()}
            if isinstance(batch.get("camera"), dict) and "K" in batch["camera"]:
                fit_batch["camera"] = {"K": batch["camera"]["K"].clone()}
            mesh = self.mesh_loss(lm, conf, fit_batch, train=False)
        bs = batch["image"].shape[0]
        for key in ("mve_face_mm", "mve_head_mm", "fit_valid"):
            self.log(f"val/{key}", mesh[key], on_epoch=True, batch_size=bs, sync_dist=True)
