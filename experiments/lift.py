"""Lift 2D iBUG-68 landmarks (image px) to 3D with a trained lifting model or the mean face.

    python -m experiments.lift --input in.npy --output out.npy      # the shipped Zhao weights
    python -m experiments.lift --ckpt RUN/checkpoints/best.ckpt --input in.npy --output out.npy
    python -m experiments.lift --method meanshape --input in.npy --output out.npy

Input (N, 68, 2) px, x right, y down. Output (N, 68, 3): x, y unchanged, z in the same
pixel scale, positive towards the camera (the nose tip is nearer than the ears), zero
mean per face (depth is only defined up to an additive constant).

--method model (default) rebuilds the LightningModule from the run's Hydra config
(`--config`, default <ckpt dir>/../.hydra/config.yaml) and loads the checkpoint's weights;
without --ckpt it loads shipped weights (`--pretrained`, default zhao_depth_ibug68:
experiments/weights/, its model card beside it).
--method meanshape fits the procedural (or $FACESUITE_FLAME_DIR) FLAME mean face under
weak perspective (scaled orthographic Procrustes) and reads its depth off.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

DEFAULT_PRETRAINED = "zhao_depth_ibug68"


def load_input(path: str | Path) -> Tensor:
    arr = np.load(path)
    if arr.ndim != 3 or arr.shape[1:] != (68, 2):
        raise ValueError(f"{path}: expected an (N, 68, 2) array of iBUG-68 landmarks in px, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: landmarks contain NaN or inf")
    return torch.as_tensor(arr, dtype=torch.float64)


def mean_face_landmarks(flame_dir: str | None = None) -> Tensor:
    """(68, 3) iBUG-68 landmarks of the FLAME mean face (zero parameters), metres, model space."""
    from datamodules.landmarks3d import flame_landmarks68

    return flame_landmarks68(1, 0, shape_std=0.0, exp_std=0.0, jaw_max_deg=0.0, folder=flame_dir)[0].double()


def lift_meanshape(xy: Tensor, mean_face: Tensor) -> Tensor:
    """(N, 68, 2) px -> (N, 68, 3) px using the mean face's depth under the fitted view."""
    from fitting.weak_perspective import lift_with_shape

    return lift_with_shape(mean_face.to(xy.dtype).expand(xy.shape[0], -1, -1), xy)


def read_run(ckpt: str | Path, config: str | Path | None = None) -> tuple:
    """(Hydra run config, Lightning checkpoint dict) of a training run's checkpoint; the config defaults
    to <run>/.hydra/config.yaml (the run being the checkpoint folder's parent). Errors name the file."""
    from omegaconf import OmegaConf

    ckpt = Path(ckpt)
    cfg_path = Path(config) if config else ckpt.resolve().parent.parent / ".hydra" / "config.yaml"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no Hydra config for checkpoint {ckpt} (pass --config)")
    cfg = OmegaConf.load(cfg_path)
    if "model" not in cfg:
        raise KeyError(f"{cfg_path}: missing key 'model' (a Hydra run config is expected)")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    if "state_dict" not in state:
        raise KeyError(f"{ckpt}: missing key 'state_dict' (a Lightning checkpoint is expected)")
    return cfg, state


def load_lifter(ckpt: str | Path, config: str | Path | None = None) -> torch.nn.Module:
    """Rebuild a lifting LightningModule from its Hydra run config and load its weights."""
    from experiments.train import instantiate_model

    cfg, state = read_run(ckpt, config)
    module = instantiate_model(cfg.model)
    module.load_state_dict(state["state_dict"])
    return module.eval()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", help="Lightning checkpoint of a lifting model (zhao_depth, deep_mds)")
    ap.add_argument("--config", help="Hydra run config (default: <ckpt>/../../.hydra/config.yaml)")
    ap.add_argument("--input", required=True, help="(N, 68, 2) .npy, px, y down")
    ap.add_argument("--output", required=True, help="(N, 68, 3) .npy, px, z towards the camera")
    ap.add_argument("--method", choices=["model", "meanshape"], default="model")
    ap.add_argument("--pretrained", default=DEFAULT_PRETRAINED,
                    help="shipped weights (experiments/weights/<name>.pt) used when --ckpt is not given")
    ap.add_argument("--flame-dir", default=None, help="FLAME folder for --method meanshape")
    ap.add_argument("--batch-size", type=int, default=1024)
    args = ap.parse_args(argv)

    xy = load_input(args.input)
    if args.method == "meanshape":
        out = lift_meanshape(xy, mean_face_landmarks(args.flame_dir))
    else:
        if args.ckpt:
            module = load_lifter(args.ckpt, args.config)
        else:
            from experiments import pretrained

            module = pretrained.load(args.pretrained)
            print(f"using the shipped weights {args.pretrained} (pass --ckpt for your own run)")
        with torch.no_grad():
            out = torch.cat([module.lift(xy[s : s + args.batch_size].float()).double()
                             for s in range(0, xy.shape[0], args.batch_size)])
    np.save(args.output, out.numpy().astype(np.float32))
    print(f"lifted {xy.shape[0]} faces ({args.method}) -> {args.output}")


if __name__ == "__main__":
    main()
