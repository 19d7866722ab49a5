"""Write the procedural world in the AFLW2000-3D layout (FORMATS.md).

``<out>/image0XXXX.jpg`` (450 x 450) + ``image0XXXX.mat`` with the 300W-LP keys plus
``pt3d_68`` (3, 68) float32 (x, y px y down, z px towards the camera, 3DDFA projection of
the 68 keypoints) and ``pt2d`` (2, 21) float64: AFLW's 21 points taken from the keypoints
(image-left side first; the two ears are always missing; points that fail the z-test are
missing; missing = -1), and the 3DDFA protocol arrays with 3DDFA's file names:

- ``AFLW2000-3D.pts68.npy`` (N, 3, 68) float32 = the pt3d_68 of every image in list order,
- ``AFLW2000-3D-Reannotated.pts68.npy`` (N, 2, 68) float32, 3DDFA's layout of its manually
  re-annotated 2D points; here a stand-in: pt3d_68[:2] plus 1 px (sd) "annotator" noise
  (its own random stream, so the images and the other arrays do not depend on it),
- ``AFLW2000-3D.pose.npy`` (N,) float32 yaw in degrees,
- ``AFLW2000-3D_crop.roi_box.npy`` (N, 4) float32 [x1, y1, x2, y2] (3DDFA's
  ``parse_roi_box_from_landmark`` of pts68),
- ``AFLW2000-3D_crop.list`` the image file names, one per line.

Faces are single random BFM faces (one view each) with |yaw| drawn in AFLW2000-3D's bin
proportions (1312 / 383 / 305 of 2000 in [0, 30], (30, 60], (60, 90) degrees), pitch
N(0, 12 deg), roll N(0, 8 deg), Exp_Para from threeddfa.sample_expression (neutral to strong,
mouths closed to open: the BFM-format basis' mouth-opening mode). Image ids are 2, 4, 6, ... (``image00002``) since the real
ids are sparse.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.formats.matfiles import AFLW2000_SPEC, write_mat
from datamodules.formats.roi import roi_box_from_landmarks, roi_from_points
from datamodules.writers.threeddfa import (
    WRITER_VERSION,
    load_bfm,
    pose_for_view,
    sample_appearance,
    sample_expression,
    smooth_background,
)
from datamodules.writers.w300lp import render_face

__all__ = ["write_aflw2000", "aflw21_from_ibug68", "YAW_BIN_FRACTIONS"]

YAW_BIN_FRACTIONS = (1312 / 2000, 383 / 2000, 305 / 2000)
# AFLW-21 from iBUG-68 (0-based); a tuple = mean of those points, None = missing (ears).
_AFLW21 = (17, 19, 21, 22, 24, 26, 36, (36, 37, 38, 39, 40, 41), 39, 42, (42, 43, 44, 45, 46, 47), 45,
           None, 31, 30, 35, None, 48, (62, 66), 54, 8)


def aflw21_from_ibug68(pts68: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """(68, 2) px + (68,) bool -> (2, 21) float64 AFLW points, -1 where missing."""
    out = np.full((2, 21), -1.0)
    for j, src in enumerate(_AFLW21):
        if src is None:
            continue
        ids = (src,) if isinstance(src, int) else src
        if all(bool(visible[i]) for i in ids):
            out[:, j] = pts68[list(ids)].mean(0)
    return out


def write_aflw2000(
    out: str | Path, n: int = 200, seed: int = 0, bfm_dir: str | None = None, image_size: int = 450,
    version: int = WRITER_VERSION, reannotated: bool = True,
) -> Path:
    """Write n AFLW2000-3D-format images + .mat files and the protocol arrays.

    ``reannotated``: also write ``AFLW2000-3D-Reannotated.pts68.npy`` (the stand-in for 3DDFA's
    re-annotated points). ``version`` only keys the write-once cache (bumped when the output
    changes)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bfm = load_bfm(bfm_dir)
    H = W = int(image_size)
    names, pts68, pts68_re, yaws, rois = [], [], [], [], []
    edges = ((0.0, 30.0), (30.0, 60.0), (60.0, 89.0))
    for i in range(n):
        rng = np.random.default_rng([seed, 7, i])
        lo, hi = edges[int(rng.choice(3, p=YAW_BIN_FRACTIONS))]
        yaw = math.radians(rng.uniform(lo, hi) * (1 if rng.random() < 0.5 else -1))
        pitch = math.radians(float(np.clip(rng.normal(0, 12.0), -40, 40)))
        roll = math.radians(float(np.clip(rng.normal(0, 8.0), -30, 30)))
        shape = rng.normal(0.0, 1.0, bfm.shape_ev.size) * bfm.shape_ev
        exp = sample_expression(rng, bfm)
        tex, illum, color = sample_appearance(rng, bfm)
        face_px = rng.uniform(0.3, 0.42) * W
        centre = (W / 2 + rng.uniform(-0.04, 0.04) * W, H / 2 + rng.uniform(-0.02, 0.06) * H)
        v = bfm.vertices(shape, exp)
        pose = pose_for_view(bfm, v, pitch, yaw, roll, W, face_px, centre)
        pose = pose.astype(np.float32).astype(np.float64)
        img, kp, vis = render_face(bfm, shape, exp, pose, tex, illum, color, smooth_background(rng, H, W))
        name = f"image{2 * i + 2:05d}"
        pt3d = kp.T.astype(np.float32)  # (3, 68)
        fields = {"pt2d": aflw21_from_ibug68(kp[:, :2], vis), "roi": roi_from_points(kp[:, :2].T),
                  "Pose_Para": pose[None], "Shape_Para": shape[:, None], "Exp_Para": exp[:, None],
                  "Illum_Para": illum[None], "Color_Para": color[None], "Tex_Para": tex[:, None],
                  "pt3d_68": pt3d}
        Image.fromarray(img).save(out / f"{name}.jpg", quality=90)
        write_mat(out / f"{name}.mat", fields, AFLW2000_SPEC)
        names.append(f"{name}.jpg")
        pts68.append(pt3d)
        pts68_re.append(pt3d[:2] + np.random.default_rng([seed, 8, i]).normal(0.0, 1.0, (2, 68)).astype(np.float32))
        yaws.append(math.degrees(pose[1]))
        rois.append(roi_box_from_landmarks(pt3d))
    np.save(out / "AFLW2000-3D.pts68.npy", np.stack(pts68).astype(np.float32) if n else np.zeros((0, 3, 68), np.float32))
    if reannotated:
        np.save(out / "AFLW2000-3D-Reannotated.pts68.npy", np.asarray(pts68_re, np.float32).reshape(-1, 2, 68))
    np.save(out / "AFLW2000-3D.pose.npy", np.asarray(yaws, np.float32))
    np.save(out / "AFLW2000-3D_crop.roi_box.npy", np.asarray(rois, np.float32).reshape(-1, 4))
    (out / "AFLW2000-3D_crop.list").write_text("".join(f"{nm}\n" for nm in names))
    return out
