"""Write the procedural world in the 300W-LP layout (FORMATS.md, datamodules/formats/matfiles.py).

``<out>/{AFW,HELEN,IBUG,LFPW}/<SET>_<id>_1_<k>.jpg + .mat`` (450 x 450 JPEG, quality 90),
the same names mirrored in ``<SET>_Flip/``, and ``<out>/landmarks/<SET>/<name>_pts.mat``.

Each source face (``n_per_folder`` per set) is a random BFM face (Shape_Para ~ N(0, shapeEV^2),
Exp_Para: threeddfa.sample_expression, neutral to strong, mouth closed to open:
the BFM-format basis' mouth-opening mode) rendered orthographically with 3DDFA's conventions
(datamodules/writers/threeddfa.py) in ``n_profiles`` views k = 0.. with growing |yaw|
(k = 0: |yaw| < 30 deg; each further view turns 12-20 deg further away from frontal, as
300W-LP's face profiling, up to 89 deg). ``pt2d`` = the 3DDFA projection of the 68
keypoints (x, y px); ``roi`` = [x1, y1, x2, y2] int16 of the keypoint box enlarged by
10 % (layout unconfirmed for the real files, see FORMATS.md); pts_2d = pts_3d = pt2d^T
(the real pts_2d moves the contour points to the silhouette; ours does not).

_Flip folders: the image mirrored pixel-exactly (x -> W - 1 - x), ``pt2d`` mirrored and
re-ordered with the iBUG-68 flip; Pose_Para mirrored exactly; Shape_Para / Exp_Para the
least-squares fit of the mirrored face (:class:`MirrorFitter`; exact when the model basis
is mirror-closed). Landmark files are written for the four source sets only (as 300W-LP).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from datamodules.formats.matfiles import PTS_SPEC, W300LP_SPEC, write_mat
from datamodules.formats.roi import roi_from_points
from datamodules.writers.parallel import run_workers
from datamodules.writers.threeddfa import (
    WRITER_VERSION,
    BfmArrays,
    MirrorFitter,
    camera_normals,
    load_bfm,
    pose_for_view,
    project_3ddfa,
    render_orthographic,
    sample_appearance,
    sample_expression,
    smooth_background,
)
from facemodels.ibug68 import IBUG68_FLIP
from facemodels.world import default_bfm_dir

__all__ = ["write_300wlp", "render_face", "SOURCE_SETS"]

SOURCE_SETS = ("AFW", "HELEN", "IBUG", "LFPW")


def render_face(
    bfm: BfmArrays, shape_para: np.ndarray, exp_para: np.ndarray, pose_para: np.ndarray,
    tex_para: np.ndarray, illum: np.ndarray, color: np.ndarray, background: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one face. Returns (image (H, W, 3) uint8, keypoints (68, 3) px with z towards
    the camera, keypoint visibility (68,) bool)."""
    H = background.shape[0]
    v = bfm.vertices(shape_para, exp_para)
    p = project_3ddfa(v, pose_para, H)
    img, vis = render_orthographic(p, bfm.tri, bfm.albedo(tex_para), camera_normals(p, bfm.tri),
                                   illum, color, background)
    return img, p[bfm.keypoints], vis[bfm.keypoints]


def _profile_yaws(rng: np.random.Generator, n: int) -> list[float]:
    """Yaw (radians) of views 0..n-1: first |yaw| < 30 deg, then turning further away."""
    sign = 1.0 if rng.random() < 0.5 else -1.0
    y = abs(rng.normal(0.0, 12.0))
    out = []
    for _ in range(n):
        out.append(sign * math.radians(min(y, 89.0)))
        y += rng.uniform(12.0, 20.0)
    return out


def _mat_fields(pt2d, pose, shape, exp, tex, illum, color) -> dict:
    return {"pt2d": pt2d, "roi": roi_from_points(pt2d), "Pose_Para": pose[None],
            "Shape_Para": shape[:, None], "Exp_Para": exp[:, None], "Illum_Para": illum[None],
            "Color_Para": color[None], "Tex_Para": tex[:, None]}


def write_300wlp(
    out: str | Path,
    n_per_folder: int = 40,
    n_profiles: int = 3,
    seed: int = 0,
    bfm_dir: str | None = None,
    image_size: int = 450,
    version: int = WRITER_VERSION,
    n_jobs: int | None = None,
) -> Path:
    """Write 4 sets x n_per_folder source faces x n_profiles views (+ the _Flip copies).

    Each source face draws from ``np.random.default_rng([seed, set index, i])``, so the
    output does not depend on the order or on ``n_jobs`` (worker processes, None ->
    min(2, CPU count) when there are >= 8 faces per worker; see
    datamodules/writers/parallel.py). ``version`` only keys the
    write-once cache (bumped when the output changes)."""
    import os

    out = Path(out)
    if bfm_dir is None:

        bfm_dir = str(default_bfm_dir())
    for set_name in SOURCE_SETS:
        for d in (out / set_name, out / f"{set_name}_Flip", out / "landmarks" / set_name):
            d.mkdir(parents=True, exist_ok=True)
    units = [[s_idx, i] for s_idx in range(len(SOURCE_SETS)) for i in range(n_per_folder)]
    if n_jobs is None:  # a worker costs a few seconds of start-up: only for >= 8 faces each
        n_jobs = min(2, os.cpu_count() or 1, max(1, len(units) // 8))
    n_jobs = max(1, min(int(n_jobs), len(units)))
    spec = {"out": str(out), "n_profiles": int(n_profiles), "seed": int(seed), "bfm_dir": str(bfm_dir),
            "image_size": int(image_size)}
    if n_jobs == 1:
        _write_units({**spec, "units": units})
    else:
        run_workers(_write_units, [{**spec, "units": units[w::n_jobs]} for w in range(n_jobs)],
                    out / ".jobs")
    return out


def _write_units(spec: dict) -> int:
    """Write the source faces ``spec["units"]`` = [[set index, i], ...]; returns their count."""
    out, n_profiles, seed = Path(spec["out"]), spec["n_profiles"], spec["seed"]
    bfm = load_bfm(spec["bfm_dir"])
    fitter = MirrorFitter(bfm)
    H = W = int(spec["image_size"])
    for s_idx, i in spec["units"]:
        set_name = SOURCE_SETS[s_idx]
        rng = np.random.default_rng([seed, s_idx, i])
        shape = rng.normal(0.0, 1.0, bfm.shape_ev.size) * bfm.shape_ev
        exp = sample_expression(rng, bfm)
        tex, illum, color = sample_appearance(rng, bfm)
        pitch, roll = math.radians(rng.normal(0, 8.0)), math.radians(rng.normal(0, 6.0))
        face_px = rng.uniform(0.3, 0.42) * W
        centre = (W / 2 + rng.uniform(-0.04, 0.04) * W, H / 2 + rng.uniform(-0.02, 0.06) * H)
        bg = smooth_background(rng, H, W)
        v = bfm.vertices(shape, exp)
        for k, yaw in enumerate(_profile_yaws(rng, n_profiles)):
            name = f"{set_name}_{1000 + i}_1_{k}"
            # the stored Pose_Para is float32: render and annotate with exactly that
            pose = pose_for_view(bfm, v, pitch, yaw, roll, W, face_px, centre)
            pose = pose.astype(np.float32).astype(np.float64)
            img, kp, _ = render_face(bfm, shape, exp, pose, tex, illum, color, bg)
            pt2d = kp[:, :2].T.copy()
            Image.fromarray(img).save(out / set_name / f"{name}.jpg", quality=90)
            write_mat(out / set_name / f"{name}.mat",
                      _mat_fields(pt2d, pose, shape, exp, tex, illum, color), W300LP_SPEC)
            write_mat(out / "landmarks" / set_name / f"{name}_pts.mat",
                      {"pts_2d": pt2d.T, "pts_3d": pt2d.T}, PTS_SPEC)
            # mirrored copy
            s2, e2, pose2, _ = fitter.mirror(shape, exp, pose, W)
            pt2d_f = np.stack([W - 1 - pt2d[0], pt2d[1]])[:, IBUG68_FLIP]
            Image.fromarray(np.ascontiguousarray(img[:, ::-1])).save(
                out / f"{set_name}_Flip" / f"{name}.jpg", quality=90)
            write_mat(out / f"{set_name}_Flip" / f"{name}.mat",
                      _mat_fields(pt2d_f, pose2.astype(np.float32), s2, e2, tex, illum, color),
                      W300LP_SPEC)
    return len(spec["units"])

