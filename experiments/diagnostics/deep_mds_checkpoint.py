"""Diagnostic: error decomposition of a trained Deep-MDS checkpoint on BFM-synthetic test faces (issue 7).

For each input yaw: MSE after Procrustes of the lifted shape with the net's distances on the auto-encoder's
view (what Deep-MDS does) and on the true canonical view (the auto-encoder's part of the error), with the
true distances (NMDS alone), with non-metric vs metric SMACOF and several iteration counts, against the
mean shape under weak perspective.

Usage: .venv/bin/python -m experiments.diagnostics.deep_mds_checkpoint CKPT [--projection orthographic]
"""

from __future__ import annotations

import argparse

import torch

from experiments.diagnostics.deep_mds_dissim import load
from experiments.lifting import load_lifter
from fitting.nmds import pairwise_distances, smacof_nmds
from fitting.weak_perspective import fix_chirality_ibug68, lift_with_shape
from lightning_modules.components.depth_mlp import standardise_2d
from lightning_modules.deep_mds import canonical_view, relative_distance_error
from lightning_modules.lifting_base import centred_depth
from lightning_modules.metrics.shape3d import mse_procrustes


def lifted(dis: torch.Tensor, xy: torch.Tensor, iters: int, metric: bool = False) -> torch.Tensor:
    res = smacof_nmds(dis.double(), 3, n_iter=iters, metric=metric, eps=0.0 if iters > 30 else 1e-6)
    return centred_depth(lift_with_shape(fix_chirality_ibug68(res.points), xy))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--projection", default="orthographic")
    ap.add_argument("--n-test", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    m = load_lifter(args.ckpt)
    te, tr = load(args.n_test, 2, args.projection), load(4000, 0, args.projection)
    xy, gt, yaw = te["landmarks_px"], te["landmarks3d"], te["yaw"]
    c_gt, s_gt = canonical_view(te["landmarks3d_model"].float(), m.hparams.canonical_yaw_deg)
    d_true = pairwise_distances(s_gt.double())
    with torch.no_grad():
        c_ae = m.net.autoencoder(standardise_2d(xy.float())[0])
        d_ae, d_gtv = m.dissimilarities(c_ae).double(), m.dissimilarities(c_gt).double()
    ms = (tr["landmarks3d_model"] - tr["landmarks3d_model"].mean(1, keepdim=True)).mean(0, keepdim=True)
    rows = {"mean shape": centred_depth(lift_with_shape(ms.expand(len(xy), -1, -1), xy)),
            "true distances": lifted(d_true, xy, 30)}
    for name, d in (("AE view", d_ae), ("true view", d_gtv)):
        print(f"{name}: relative distance error {float(relative_distance_error(d, d_true).mean()):.4f}")
        for iters in (30, 100, 300):
            rows[f"{name}, NMDS {iters} it"] = lifted(d, xy, iters)
        rows[f"{name}, metric SMACOF 100 it"] = lifted(d, xy, 100, metric=True)
    print("canonical-view RMS error", float(((c_ae - c_gt) ** 2).sum(-1).mean().sqrt()))
    for name, pred in rows.items():
        e = mse_procrustes(pred, gt)
        per = "  ".join(f"yaw {y:+.0f}: {float(e[yaw == y].mean()):.6f}" for y in yaw.unique().tolist())
        print(f"{name:34s} all {float(e.mean()):.6f}  {per}", flush=True)


if __name__ == "__main__":
    main()
