"""A small DAD-3DHeads benchmark case built in the tests (not a package module): ground-truth
entries in ``generate_gt.py``'s format and a submission in the benchmark README's format, on
the procedural FLAME, deterministic from a seed.

The same files were scored by the official ``benchmark.py`` (PinataFarms/DAD-3DHeads
dad_3dheads_benchmark, transcribed outside the repository with a CPU Chamfer in place of
kaolin's; see tests/fitting/test_dad3dheads_benchmark.py for the command and numbers).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from facemodels.flame_files import load_flame_arrays
from fitting.fit_loop import embed68
from fitting.mesh_metrics import DAD_SEVEN

H = W = 320
FOCAL = 600.0


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                              math.cos(roll), math.sin(roll))
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


def gl_projection(focal: float = FOCAL, cx: float = W / 2, cy: float = H / 2) -> np.ndarray:
    """P with ``P MV [v, 1] = (f x - cx z, f y - cy z, z, -z)``: xy / w = px, y up (GL, z < 0)."""
    return np.array([[focal, 0, -cx, 0], [0, focal, -cy, 0], [0, 0, 1, 0], [0, 0, -1, 0]], np.float64)


def make_case(flame_dir, n: int = 3, seed: int = 0, reflect_last: bool = True):
    """-> (ground-truth entries, submission dict item_id -> prediction lists).

    GT: the template + smooth random offsets (~3 mm), GL model-view (yaw / pitch / roll up to
    40 / 15 / 10 deg, 0.9-1.1 m in front of the camera), ``gl_projection``, a bbox around the
    projected head. Prediction: the GT in the cv camera frame with 1.5 mm noise, a 2 %
    scale and a 1 cm shift; 68 points = the GT's projected iBUG-68 + 1.5 px noise; rotation =
    the GT's tilted by ~3 deg. ``reflect_last``: the last prediction is mirrored (x -> -x) in
    3D, which only a Procrustes that may reflect undoes.
    """
    fl = load_flame_arrays(flame_dir)
    g = np.random.default_rng(seed)
    tmpl = fl.v_template
    P = gl_projection()
    gt, sub = [], {}
    for i in range(n):
        basis = g.normal(0, 1, (3, 3, 3))
        t = tmpl / 0.1
        off = sum(basis[a, b] * np.sin((a + 1) * t[:, [b]] + a) for a in range(3) for b in range(3))
        V = tmpl + 0.001 * off
        R = _rot(*np.radians([g.uniform(-40, 40), g.uniform(-15, 15), g.uniform(-10, 10)]))
        MV = np.eye(4)
        MV[:3, :3] = np.diag([1.0, -1.0, -1.0]) @ R  # cv rotation R -> GL model-view
        MV[:3, 3] = [g.uniform(-0.05, 0.05), g.uniform(-0.05, 0.05), -g.uniform(0.9, 1.1)]
        world = V @ MV[:3, :3].T + MV[:3, 3]
        hom = np.concatenate([world, np.ones((len(V), 1))], 1) @ P.T
        px = np.stack([hom[:, 0] / hom[:, 3], H - hom[:, 1] / hom[:, 3]], 1)
        lo, hi = px.min(0), px.max(0)
        bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
        item = f"case{seed}_{i:03d}"
        gt.append({"id": item, "bbox": bbox, "vertices": V, "model_view_matrix": MV,
                   "projection_matrix": P, "image_height": H})
        cam = world * np.array([1.0, -1.0, -1.0])  # cv camera frame
        pred = 1.02 * cam + 0.0015 * g.normal(0, 1, cam.shape) + np.array([0.01, -0.005, 0.01])
        if reflect_last and i == n - 1:
            pred = pred * np.array([-1.0, 1.0, 1.0])
        lm68 = embed68(torch.as_tensor(V)[None], fl, flame_dir)[0].numpy()
        lm_w = np.concatenate([lm68 @ MV[:3, :3].T + MV[:3, 3], np.ones((68, 1))], 1) @ P.T
        lm_px = np.stack([lm_w[:, 0] / lm_w[:, 3], H - lm_w[:, 1] / lm_w[:, 3]], 1)
        seven = embed68(torch.as_tensor(pred)[None], fl, flame_dir)[0].numpy()[list(DAD_SEVEN)]
        R_pred = _rot(*np.radians(g.normal(0, 2.0, 3))) @ R
        sub[item] = {
            "68_landmarks_2d": (lm_px + 1.5 * g.normal(0, 1, lm_px.shape)).tolist(),
            "N_landmarks_3d": pred.tolist(),
            "7_landmarks_3d": seven.tolist(),
            "rotation_matrix": R_pred.tolist(),
        }
    return gt, sub
