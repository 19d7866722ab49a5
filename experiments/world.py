"""Command line for the procedural face models.

python -m experiments.world facemodels --out DIR [--seed S]
    writes DIR/flame (FLAME folder) and DIR/bfm (BFM files) of the procedural head.
python -m experiments.world mean-landmarks --out file.npy [--seed S]
    writes the mean face's iBUG-68 landmarks, (68, 3) float64, metres, frontal model space
    (y up, z towards the camera, x to the subject's left).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facemodels.procedural.builder import build_world, write_bfm, write_flame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m experiments.world",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    fm = sub.add_parser("facemodels", help="write the FLAME folder and the BFM files")
    fm.add_argument("--out", required=True, type=Path)
    fm.add_argument("--seed", type=int, default=0)
    ml = sub.add_parser("mean-landmarks", help="write the mean iBUG-68 landmarks (68, 3) metres")
    ml.add_argument("--out", required=True, type=Path)
    ml.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)


    world = build_world(args.seed)
    if args.cmd == "facemodels":
        write_flame(world, args.out / "flame")
        write_bfm(world, args.out / "bfm")
        print(f"wrote {args.out / 'flame'} and {args.out / 'bfm'} (seed {args.seed})")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.save(args.out, world.landmarks68.astype(np.float64))
        print(f"wrote {args.out}: (68, 3) metres")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
