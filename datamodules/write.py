"""Write a procedural dataset in a real layout:
``python -m datamodules.write --dataset dad3dheads|coma|bfm --out DIR --n N [--seed S]``.

dad3dheads: n train, n/5 val, n/10 test frames; w300lp: ceil(n / 24) source faces per set
x 3 profiling views, + the _Flip copies (~2n images); aflw2000: n images + the 3DDFA protocol
arrays; coma: 12 x 12 sequences of ceil(n / 144) frames; bfm: copies the BFM model files
(the synthetic faces are sampled on the fly).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, choices=["dad3dheads", "w300lp", "aflw2000", "coma", "bfm"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.dataset == "dad3dheads":
        from datamodules.writers.dad3dheads import write_dad3dheads

        write_dad3dheads(out, n_train=a.n, n_val=max(1, a.n // 5), n_test=max(1, a.n // 10), seed=a.seed)
    elif a.dataset == "coma":
        from datamodules.writers.coma import write_coma

        write_coma(out, n_frames=max(2, math.ceil(a.n / 144)), seed=a.seed)
    elif a.dataset == "bfm":
        from facemodels.world import default_bfm_dir

        for f in Path(default_bfm_dir()).glob("*.mat"):
            shutil.copy2(f, out / f.name)
    elif a.dataset == "w300lp":
        from datamodules.writers.w300lp import write_300wlp

        write_300wlp(out, n_per_folder=max(1, math.ceil(a.n / 24)), n_profiles=3, seed=a.seed)
    elif a.dataset == "aflw2000":
        from datamodules.writers.aflw2000 import write_aflw2000

        write_aflw2000(out, n=a.n, seed=a.seed)
    print(f"wrote {a.dataset} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
