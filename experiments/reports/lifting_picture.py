"""README picture of 2D -> 3D lifting: held-out faces, their 2D input, and the depth profile of the
ground truth beside a lifting model's and the mean shape's.

    python -m experiments.reports.lifting_picture \
        --ckpt logs/reproduce/zhao_t1/quick/zhao_noise/checkpoints/last.ckpt \
        --baseline logs/reproduce/zhao_t1/quick/meanshape_noise/checkpoints/last.ckpt \
        --out docs/images/lifting.png

The faces are the first test faces of the model's own run (its Hydra config's data section), one per
|yaw| bin in `--yaw-bins`, so the picture is not a choice of good cases. Top row: the input landmarks
(px, y down). Bottom row: the lifted 3D landmarks in profile, mapped into the face's own frame by the
similarity that takes the ground truth's camera-frame landmarks onto its model-space shape (nose to the
right), with each method's depth error (mean |z - z_gt| / outer-eye distance, shape3d.depth_error) in
the legend.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from experiments.lifting import load_lifter
from facemodels.procrustes import apply_similarity, similarity_align
from lightning_modules.metrics.shape3d import depth_error

# iBUG-68 polylines: jaw, brows, nose bridge, nose base, eyes, outer and inner lips
IBUG68_LINES = [range(0, 17), range(17, 22), range(22, 27), range(27, 31), range(31, 36),
                [*range(36, 42), 36], [*range(42, 48), 42], [*range(48, 60), 48], [*range(60, 68), 60]]


def pick_faces(yaw: Tensor, bins: list[float]) -> list[int]:
    """Index of the first face with |yaw| in each bin [bins[i], bins[i+1]) (degrees); bins without a
    face are left out."""
    out = []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        hit = ((yaw.abs() >= lo) & (yaw.abs() < hi)).nonzero()
        if len(hit):
            out.append(int(hit[0]))
    return out


def test_batch(config_path: Path, n: int = 256) -> dict[str, Tensor]:
    """The first `n` test faces of the run whose Hydra config is `config_path`."""
    import hydra
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(config_path)
    if "data" not in cfg:
        raise KeyError(f"{config_path}: missing key 'data' (a Hydra run config is expected)")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.update(batch_size=n, num_workers=0)
    dm = hydra.utils.instantiate(OmegaConf.create(data))
    dm.setup("test")
    return next(iter(dm.test_dataloader()))


def to_face_frame(points: Tensor, gt_cam: Tensor, gt_model: Tensor) -> Tensor:
    """Map camera-frame points (68, 3) px by the similarity that takes the ground truth's camera-frame
    landmarks `gt_cam` (68, 3) onto its model-space shape `gt_model` (68, 3) (y up, z out of the face):
    the lifted faces seen in the face's own frame, so a side view is a profile whatever the head pose."""
    flip = gt_cam.new_tensor([1.0, -1.0, 1.0])  # camera frame (y down, z towards the camera) is a mirror
    points, gt_cam = points * flip, gt_cam * flip  # image of a right-handed frame: y up makes it one
    fit = similarity_align(gt_cam, gt_model - gt_model.mean(0))
    return apply_similarity(points[None], fit.scale[None], fit.R[None], fit.t[None])[0]


def draw(batch: dict[str, Tensor], lifted: dict[str, Tensor], faces: list[int], out: Path) -> Path:
    """Two rows x len(faces) panels (see the module docstring) -> PNG at `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    gt = batch["landmarks3d"]
    colours = {"ground truth": "black", **dict(zip(lifted, ["tab:blue", "tab:orange", "tab:green"], strict=False))}
    fig, axes = plt.subplots(2, len(faces), figsize=(3.2 * len(faces), 6.4), squeeze=False)
    for col, i in enumerate(faces):
        xy = batch["landmarks_px"][i]
        ax = axes[0, col]
        for line in IBUG68_LINES:
            idx = list(line)
            ax.plot(xy[idx, 0], xy[idx, 1], "-", color="0.3", lw=1)
        ax.plot(xy[:, 0], xy[:, 1], ".", color="k", ms=3)
        ax.set_title(f"input, yaw {float(batch['yaw'][i]):+.0f} deg", fontsize=9)
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[1, col]
        shapes = {"ground truth": gt[i], **{k: v[i] for k, v in lifted.items()}}
        for name, s in shapes.items():
            err = "" if name == "ground truth" else f" ({float(depth_error(s[None], gt[i][None])[0]):.3f})"
            f = to_face_frame(s.double(), gt[i].double(), batch["landmarks3d_model"][i].double())
            for k, line in enumerate(IBUG68_LINES):
                idx = list(line)
                ax.plot(f[idx, 2], f[idx, 1], "-", color=colours[name], lw=1.2 if name == "ground truth" else 1,
                        label=f"{name}{err}" if k == 0 else None, alpha=0.9)
        ax.set_title("profile in the face's frame", fontsize=8)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    fig.suptitle("Lifting held-out procedural faces (2 % landmark noise): depth error / outer-eye distance in "
                 "brackets", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> Path:

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", required=True, help="lifting model checkpoint (its run's data config is used)")
    ap.add_argument("--baseline", required=True, help="baseline checkpoint, e.g. a lift_meanshape run")
    ap.add_argument("--label", default="Zhao MLP")
    ap.add_argument("--baseline-label", default="mean shape")
    ap.add_argument("--yaw-bins", type=float, nargs="+", default=[0, 15, 40, 65, 91])
    ap.add_argument("--out", default="docs/images/lifting.png")
    a = ap.parse_args(argv)
    ckpt = Path(a.ckpt)
    batch = test_batch(ckpt.resolve().parent.parent / ".hydra" / "config.yaml")
    faces = pick_faces(batch["yaw"], a.yaw_bins)
    with torch.no_grad():
        lifted = {a.label: load_lifter(ckpt).lift(batch["landmarks_px"]),
                  a.baseline_label: load_lifter(a.baseline).lift(batch["landmarks_px"])}
    out = draw(batch, lifted, faces, Path(a.out))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
