"""Diagnostic: where Deep-MDS' lifting error comes from (issue 7), on BFM-synthetic faces.

Trains the dissimilarity net alone on ground-truth canonical views and compares, on test faces:
relative 3D-distance error (mean |d^ - d| / d over all pairs) and MSE after Procrustes of the lifted
shape (NMDS -> chirality fix -> weak-perspective fit to the input 2D -> depth), against
- the true distances (NMDS back end alone),
- each pair's mean distance over the training faces (knows the landmark index; what a pair net could
  learn at best if identity were unpredictable),
- the mean shape fitted under weak perspective (the baseline row of the table).

Usage: .venv/bin/python -m experiments.diagnostics.deep_mds_dissim --steps 480 2000 6000
"""

from __future__ import annotations

import argparse
import time

import torch

from datamodules.bfm_synthetic import BfmSyntheticDataset, load_keypoint_basis
from fitting.nmds import pairwise_distances, smacof_nmds
from fitting.weak_perspective import fix_chirality_ibug68, lift_with_shape
from lightning_modules.components.dissimilarity_net import DissimilarityNet
from lightning_modules.deep_mds import canonical_view
from lightning_modules.lifting_base import centred_depth
from lightning_modules.metrics.shape3d import mse_procrustes


def load(n: int, split_seed: int, projection: str) -> dict[str, torch.Tensor]:
    ds = BfmSyntheticDataset(load_keypoint_basis(), n, split_seed, 256, projection=projection)
    items = [ds[i] for i in range(n)]
    return {k: torch.stack([torch.as_tensor(it[k]) for it in items]).double()
            for k in ("landmarks_px", "landmarks3d", "landmarks3d_model", "yaw")}


def corner(c: torch.Tensor) -> torch.Tensor:
    return c - c.amin(1, keepdim=True) + 0.5


def mirror(c: torch.Tensor) -> torch.Tensor:
    """(B, n, 2) views mirrored left-right (x -> -x): the same face's mirror image."""
    return c * torch.tensor([-1.0, 1.0], dtype=c.dtype)


def lift_mse(dis: torch.Tensor, xy: torch.Tensor, gt: torch.Tensor, iters: int = 30, metric: bool = False,
             init: torch.Tensor | None = None) -> float:
    res = smacof_nmds(dis.double(), 3, n_iter=iters, metric=metric, init=init)
    shape = fix_chirality_ibug68(res.points)
    pred = centred_depth(lift_with_shape(shape, xy))
    return float(mse_procrustes(pred, gt).mean())


def rel_err(dis: torch.Tensor, d_gt: torch.Tensor) -> float:
    off = ~torch.eye(d_gt.shape[1], dtype=torch.bool)
    return float(((dis - d_gt).abs()[:, off] / d_gt[:, off]).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, nargs="+", default=[480, 2000, 6000])
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--yaw", type=float, default=0.0)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--output", default="depth")
    ap.add_argument("--projection", default="orthographic")
    ap.add_argument("--norm", action="store_true", help="standardise the 6 pair features (training-set stats)")
    ap.add_argument("--act", default="elu")
    ap.add_argument("--baselines-only", action="store_true")
    ap.add_argument("--mirror-train", action="store_true")
    ap.add_argument("--mean-only", action="store_true", help="train on the mean face only (capacity check)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    t0 = time.time()
    tr, te = load(args.n_train, 0, args.projection), load(args.n_test, 2, args.projection)
    print(f"data {time.time() - t0:.1f}s")
    c_tr, s_tr = canonical_view(tr["landmarks3d_model"], args.yaw)
    c_te, s_te = canonical_view(te["landmarks3d_model"], args.yaw)
    d_tr, d_te = pairwise_distances(s_tr), pairwise_distances(s_te)
    xy, gt = te["landmarks_px"], te["landmarks3d"]
    mean_d = d_tr.mean(0, keepdim=True).expand_as(d_te)
    # the mean shape in canonical units, scaled per test face by nothing (NMDS is scale-free)
    print(f"true distances: rel err 0, lift MSE {lift_mse(d_te, xy, gt):.3g}")
    print(f"pair mean distance (knows the index): rel err {rel_err(mean_d, d_te):.4f}, "
          f"lift MSE {lift_mse(mean_d, xy, gt):.3g}")
    ms = s_tr.mean(0, keepdim=True).expand_as(s_te)
    print(f"mean shape weak-persp: lift MSE {float(mse_procrustes(centred_depth(lift_with_shape(ms, xy)), gt).mean()):.3g}")
    z_tr = s_tr[..., 2]
    dz_mean = (z_tr[:, :, None] - z_tr[:, None, :]).abs().mean(0, keepdim=True)
    oracle = (pairwise_distances(c_te) ** 2 + dz_mean**2).sqrt()  # (B, n, n)
    yaw = te["yaw"]

    def per_yaw(pred: torch.Tensor) -> str:
        e = mse_procrustes(pred, gt)
        return f"all {float(e.mean()):.6f}, " + ", ".join(
            f"yaw {y:+.0f} {float(e[yaw == y].mean()):.6f}" for y in yaw.unique().tolist())

    print("mean shape weak-persp:", per_yaw(centred_depth(lift_with_shape(ms, xy))))
    res = smacof_nmds(oracle, 3, n_iter=30)
    print(f"oracle pair net (true in-plane + each pair's mean |dz|, knows the index): rel err "
          f"{rel_err(oracle, d_te):.4f}, lift",
          per_yaw(centred_depth(lift_with_shape(fix_chirality_ibug68(res.points), xy))), flush=True)
    if args.baselines_only:
        return
    net = DissimilarityNet(output=args.output, activation=args.act, normalise=args.norm)
    c_tr32, d_tr32 = c_tr.float(), d_tr.float()
    if args.mean_only:  # capacity: fit the mean face's distances only (every training face = the mean)
        ms_tr = s_tr.mean(0, keepdim=True)
        c_ms, _ = canonical_view(ms_tr, args.yaw)
        c_tr32 = c_ms.float().expand_as(c_tr32)
        d_tr32 = pairwise_distances(canonical_view(ms_tr, args.yaw)[1]).float().expand_as(d_tr32)
        c_tr, d_tr = c_tr32.double(), d_tr32.double()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    total = max(args.steps)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, total)
    n = 68
    g = torch.Generator().manual_seed(0)
    step, t0 = 0, time.time()
    while step < total:
        perm = torch.randperm(args.n_train, generator=g)
        for k in range(0, args.n_train - args.batch + 1, args.batch):
            idx = perm[k:k + args.batch]
            ctr = c_tr32[idx]
            if args.mirror_train:  # half of the faces mirrored (a mirrored face is a face)
                flip = torch.rand(len(idx), 1, 1) < 0.5
                ctr = torch.where(flip, mirror(ctr), ctr)
            dis = net.matrix(corner(ctr))
            loss = ((dis - d_tr32[idx]) ** 2).sum((1, 2)).mean() / (n * (n - 1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step in args.steps:
                with torch.no_grad():
                    dt = net.matrix(corner(c_te.float())).double()
                    dtr = net.matrix(corner(c_tr32[:500])).double()
                print(f"step {step} ({time.time() - t0:.0f}s): train rel err {rel_err(dtr, d_tr[:500]):.4f}, "
                      f"test rel err {rel_err(dt, d_te):.4f}, lift MSE {lift_mse(dt, xy, gt):.3g}, "
                      f"metric {lift_mse(dt, xy, gt, metric=True):.3g}", flush=True)
                with torch.no_grad():
                    dm = 0.5 * (dt + net.matrix(corner(mirror(c_te).float())).double())
                print(f"   + mirror average: test rel err {rel_err(dm, d_te):.4f}, lift MSE {lift_mse(dm, xy, gt):.3g}",
                      flush=True)
            if step >= total:
                break


if __name__ == "__main__":
    main()
