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

import numpy as np
import torch

from experiments import shipped_weights
from experiments.lifting import lift_meanshape, load_input, load_lifter, mean_face_landmarks

DEFAULT_PRETRAINED = "zhao_depth_ibug68"


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
            module = shipped_weights.load(args.pretrained)
            print(f"using the shipped weights {args.pretrained} (pass --ckpt for your own run)")
        with torch.no_grad():
            out = torch.cat([module.lift(xy[s : s + args.batch_size].float()).double()
                             for s in range(0, xy.shape[0], args.batch_size)])
    np.save(args.output, out.numpy().astype(np.float32))
    print(f"lifted {xy.shape[0]} faces ({args.method}) -> {args.output}")


if __name__ == "__main__":
    main()
