"""Predict landmarks with a trained checkpoint, fit FLAME, evaluate, write meshes.

    make fit CKPT=logs/train/runs/<run>/checkpoints/best.ckpt [DATA=dad3dheads]
    == python -m experiments.fit ckpt_path=... [data=...] [split=test] [fitting.config.w_shape=0.5]
    python -m experiments.fit ckpt_path=... data_from_run=true fitting.landmark_set=face805  # thesis Table 4.6

The checkpoint is a ``lightning_modules.dense_landmarks.DenseLandmarkModule`` (any
LandmarkSystem whose ``predict_step`` returns ``landmarks_px`` (B, L, 2) and optionally
``confidences`` (B, L)); its model config is the one the checkpoint carries
(experiments.checkpoints) unless ``model=`` is given. Outputs in the run directory:
``meshes/<index>.obj|ply`` (model space, metres), ``per_image.csv``, ``summary.json`` and, written
last (the marker of a finished fit), ``fit_metrics.json``: the summary keyed ``<split>/<metric>``
(``test/mve_face_mm``, ``test/mve_head_mm``, ``test/mrle_px``, ``test/time_fit_s_per_image``, ...).

``data_from_run=true`` rebuilds the data config of the training run (same sizes, same test split);
``fitting.landmark_set`` may name a subset of the network's landmark set (face805 of face1609: the
fit uses those columns of the prediction; MVE is still over the full face / head vertex sets);
``fitting.use_confidences=false`` fits with unit weights instead of the predicted confidences.

Metrics per image (where the batch has the ground truth): MRLE px (re-projected fit vs
predicted landmarks), MLME px (predicted vs GT landmarks), MVE face / head-without-neck mm
with and without similarity alignment, and the DAD-3DHeads benchmark metrics as released
(NME on the annotation box, ``z5`` as released, ``z5_paper``, Chamfer, pose error; averaged
over every image, ``n_valid`` beside; docs/PROTOCOLS.md). On DAD-3DHeads the run directory
also gets ``dad_submission.json``, which the official ``benchmark.py`` scores unchanged.
``fitting.dad_static_dir`` points at DAD-3DHeads' ``model_training/model/static`` (or the
checkout) for the benchmark's vertex sets; null: the FLAME folder's own copies (the
procedural FLAME has them), else the suite's sets with a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf, open_dict

from experiments.checkpoints import build_system, read_checkpoint, run_config
from experiments.harness.resolvers import register_resolvers
from facemodels.flame_files import face_region_indices, head_without_neck_indices, load_flame_arrays
from fitting.builder import fitter_from_config
from fitting.dad3dheads_benchmark import dad_vertex_sets, find_static_dir
from fitting.fit_loop import fit_batches, report_metrics, subset_columns, write_fit_metrics

log = logging.getLogger("experiments.fit")
register_resolvers()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fit(cfg: DictConfig, out_dir: str | Path) -> dict[str, float]:
    """Predict landmarks on ``cfg.split`` with ``cfg.ckpt_path``, fit FLAME, evaluate, write into ``out_dir``."""
    ckpt = Path(cfg.ckpt_path)
    blob = read_checkpoint(ckpt)
    if cfg.get("model") is None or cfg.get("data_from_run", False):
        run_cfg = run_config(ckpt, blob=blob)
        with open_dict(cfg):
            if cfg.get("model") is None:
                cfg.model = run_cfg.model
            if cfg.get("data_from_run", False):
                if "data" not in run_cfg:
                    raise KeyError(f"{ckpt}: data_from_run=true but the run config has no 'data' key")
                cfg.data = run_cfg.data
    OmegaConf.resolve(cfg)
    dev = _device(cfg.device)
    model = build_system(cfg.model, blob["state_dict"]).to(dev)
    dm = hydra.utils.instantiate(cfg.data, _convert_="partial")
    dm.prepare_data()
    dm.setup("validate" if cfg.split == "val" else "test")
    loader = dm.val_dataloader() if cfg.split == "val" else dm.test_dataloader()

    block = OmegaConf.to_container(cfg.fitting, resolve=True)
    fitter, flame_dir = fitter_from_config(block, int(cfg.model.image_size), cfg.model.landmark_set)
    fitter = fitter.to(dev)
    columns = subset_columns(cfg.model.landmark_set, cfg.fitting.landmark_set or cfg.model.landmark_set, flame_dir)

    def batches():
        for i, b in enumerate(loader):
            if cfg.limit_batches is not None and i >= cfg.limit_batches:
                return
            yield dm.on_before_batch_transfer(b, 0)

    def predict(batch):
        moved = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in batch.items()}
        moved = dm.on_after_batch_transfer(moved, 0)  # uint8 images (normalize_on_device) -> the contract
        return model.predict_step(moved, 0)

    static = cfg.fitting.get("dad_static_dir") or find_static_dir(flame_dir)
    if static is None:
        log.warning("no DAD-3DHeads vertex sets (fitting.dad_static_dir null, %s has no head_indices.npy): "
                    "Z5 / Chamfer use the suite's head-without-neck / face1609 sets", flame_dir)
    dad_sets = None if static is None else dad_vertex_sets(static)
    summary = fit_batches(
        fitter,
        batches(),
        predict,
        load_flame_arrays(flame_dir),
        flame_dir,
        face_region_indices(flame_dir),
        head_without_neck_indices(flame_dir),
        out_dir,
        cfg.write_meshes,
        cfg.mesh_format,
        cfg.fitting.use_camera_from_batch,
        dev,
        columns=columns,
        use_confidences=cfg.fitting.get("use_confidences", True),
        dad_sets=dad_sets,
    )
    write_fit_metrics(Path(out_dir) / "fit_metrics.json", report_metrics(summary, cfg.split))
    return summary


@hydra.main(version_base="1.3", config_path="../configs", config_name="fit")
def main(cfg: DictConfig) -> None:
    summary = fit(cfg, HydraConfig.get().runtime.output_dir)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in summary.items()})


if __name__ == "__main__":
    main()
