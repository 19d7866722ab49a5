"""Diagnostic: the Deep-MDS view auto-encoder's canonical-view error on BFM-synthetic faces (issue 7).

Trains the auto-encoder alone (batches of 10 faces, Adam, cosine lr) and reports the RMS point error of
its canonical view on test faces (canonical standardised units) per input yaw, beside the error of the
mean face's canonical view (what a net that ignored the input identity would give).

Usage: .venv/bin/python -m experiments.diagnostics.deep_mds_autoencoder --steps 5000 --lr 1e-3 1e-2
"""

from __future__ import annotations

import argparse
import time

import torch

from experiments.diagnostics.deep_mds_dissim import load
from lightning_modules.components.depth_mlp import standardise_2d
from lightning_modules.components.view_autoencoder import ViewAutoencoder
from lightning_modules.deep_mds import canonical_view


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b) ** 2).sum(-1).mean().sqrt())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--lr", type=float, nargs="+", default=[1e-3, 1e-2])
    ap.add_argument("--yaw", type=float, default=0.0)
    ap.add_argument("--projection", default="orthographic")
    ap.add_argument("--hidden", type=int, nargs="+", default=[72])
    ap.add_argument("--bottleneck", type=int, default=32)
    ap.add_argument("--residual", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tr, te = load(4000, 0, args.projection), load(1000, 2, args.projection)
    x_tr = standardise_2d(tr["landmarks_px"])[0].float()
    x_te = standardise_2d(te["landmarks_px"])[0].float()
    c_tr = canonical_view(tr["landmarks3d_model"], args.yaw)[0].float()
    c_te = canonical_view(te["landmarks3d_model"], args.yaw)[0].float()
    mean_c = canonical_view(tr["landmarks3d_model"].mean(0, keepdim=True), args.yaw)[0].float()
    print(f"mean face's canonical view: RMS error {rmse(mean_c.expand_as(c_te), c_te):.4f}")
    for lr in args.lr:
        torch.manual_seed(0)
        ae = ViewAutoencoder(hidden=tuple(args.hidden), bottleneck=args.bottleneck, residual=args.residual)
        opt = torch.optim.Adam(ae.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
        g = torch.Generator().manual_seed(0)
        t0 = time.time()
        for _ in range(args.steps):
            idx = torch.randint(0, 4000, (10,), generator=g)
            loss = ((ae(x_tr[idx]) - c_tr[idx]) ** 2).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            p_te, p_tr = ae(x_te), ae(x_tr[:1000])
        yaw = te["yaw"]
        per_yaw = ", ".join(f"yaw {y:+.0f}: {rmse(p_te[yaw == y], c_te[yaw == y]):.4f}" for y in yaw.unique().tolist())
        print(f"lr {lr:g}, {args.steps} steps ({time.time() - t0:.0f}s): train RMS {rmse(p_tr, c_tr[:1000]):.4f}, "
              f"test RMS {rmse(p_te, c_te):.4f} ({per_yaw})", flush=True)


if __name__ == "__main__":
    main()
