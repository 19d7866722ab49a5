"""Shared pieces of the 300W-LP / AFLW2000-3D writers: the BFM in the 3DDFA layout, the
3DDFA projection, an orthographic renderer on the generic rasteriser, mirrored parameters.

Conventions (FORMATS.md, 3DDFA):
- ``v = shapeMU + shapePC Shape_Para + mu_exp + w_exp Exp_Para`` on the trimmed vertices
  (``model_info.mat`` trimIndex), micrometres, BFM space (y up, z towards the viewer).
- ``Pose_Para = [pitch, yaw, roll, tx, ty, tz, s]``; ``p = s R v + t`` with
  ``R = facemodels.rotations.euler_3ddfa_to_matrix([pitch, yaw, roll])``; orthographic
  image point ``x = p_x``, ``y = h - p_y - 1`` (rows down); ``p_z`` grows towards the camera.
- ``Tex_Para`` (199, 1): ``albedo = texMU + texPC Tex_Para`` (0..255 RGB, interleaved).
- ``Illum_Para`` (1, 10) = [amb r, g, b, dir r, g, b, theta, phi, ks, shininess]
  (3DDFA / Zhu et al. Phong layout); ``Color_Para`` (1, 7) = [gain r, g, b, offset r, g, b,
  contrast]. The renderer here uses ambient + Lambert (ks, shininess stored but unused)
  then ``gain * colour + offset`` and a luminance contrast: it is our stand-in renderer,
  not the one that made the real images.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial import cKDTree

from facemodels.bfm import BfmArrays, load_bfm_arrays
from facemodels.render import rasterize, vertex_visibility
from facemodels.rotations import euler_3ddfa_to_matrix
from facemodels.world import default_bfm_dir

__all__ = [
    "WRITER_VERSION",
    "load_bfm",
    "pose_matrix",
    "project_3ddfa",
    "render_orthographic",
    "sample_appearance",
    "sample_expression",
    "EXP_INTENSITY_MAX",
    "MirrorFitter",
    "pose_for_view",
    "smooth_background",
]

# Bump when the 300W-LP / AFLW2000-3D writers change their output (keys the write-once cache).
WRITER_VERSION = 4
# Expression strength of the 300W-LP / AFLW2000-3D writers (sample_expression): the realistic
# range of the lifting data (configs/data/landmarks3d.yaml's exp_intensity_max, exp_clip 3).
EXP_INTENSITY_MAX = 2.0
EXP_CLIP = 3.0

N_TEX = 199  # 3DDFA's Tex_Para length (written as zeros' draws when the BFM has no texture basis)


def load_bfm(bfm_dir: str | Path | None = None) -> BfmArrays:
    """The BFM folder of the writers (real or procedural; the default world when None), read by
    :func:`facemodels.bfm.load_bfm_arrays` (trimmed vertices, micrometres, interleaved rows)."""
    return load_bfm_arrays(default_bfm_dir() if bfm_dir is None else bfm_dir)


def pose_matrix(pose_para: np.ndarray) -> np.ndarray:
    """(3, 3) 3DDFA rotation of Pose_Para[:3] = [pitch, yaw, roll] radians."""
    ang = torch.as_tensor(np.asarray(pose_para[:3], np.float64))[None]
    return euler_3ddfa_to_matrix(ang)[0].numpy()


def project_3ddfa(v: np.ndarray, pose_para: np.ndarray, height: int) -> np.ndarray:
    """(N, 3) micrometres -> (N, 3): x, y image px (y down), z px towards the camera."""
    pose = np.asarray(pose_para, np.float64).reshape(-1)
    p = pose[6] * np.asarray(v, np.float64) @ pose_matrix(pose).T + pose[3:6]
    p[:, 1] = height - p[:, 1] - 1
    return p


def pose_for_view(
    bfm: BfmArrays, v: np.ndarray, pitch: float, yaw: float, roll: float, size: int,
    face_px: float, centre_px: tuple[float, float],
) -> np.ndarray:
    """Pose_Para (7,) placing the keypoint centroid of ``v`` at ``centre_px`` (image px, y
    down) with a keypoint box width of ``face_px`` at frontal view. Angles in radians."""
    kp = v[bfm.keypoints]
    s = face_px / max(float(np.ptp(kp[:, 0])), 1e-9)
    R = pose_matrix(np.array([pitch, yaw, roll]))
    c = s * R @ kp.mean(0)
    tx = centre_px[0] - c[0]
    ty = (size - 1 - centre_px[1]) - c[1]
    return np.array([pitch, yaw, roll, tx, ty, 0.0, s])


def sample_expression(rng: np.random.Generator, bfm: BfmArrays, intensity_max: float = EXP_INTENSITY_MAX,
                      clip: float = EXP_CLIP) -> np.ndarray:
    """Exp_Para (n_exp,) of one face: N(0, 1) per mode times one per-face intensity U(0, intensity_max)
    (neutral to strong faces), clipped to +-clip, in units of sigma_exp (``bfm.exp_ev``). The mouth-opening mode the
    files declare (``bfm.mouth_open_mode``, facemodels.bfm.MOUTH_KEY) takes the absolute value:
    closed to open, never lips through each other; files without it are drawn symmetrically."""
    z = rng.normal(0.0, 1.0, bfm.exp_ev.size) * rng.uniform(0.0, intensity_max)
    if bfm.mouth_open_mode is not None:
        z[bfm.mouth_open_mode] = abs(z[bfm.mouth_open_mode])
    return np.clip(z, -clip, clip) * bfm.exp_ev


def sample_appearance(rng: np.random.Generator, bfm: BfmArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Tex_Para (199,), Illum_Para (10,), Color_Para (7,)) drawn for one face."""
    tex_ev = np.zeros(N_TEX) if bfm.tex_ev is None else bfm.tex_ev
    tex = rng.normal(0.0, 0.25, tex_ev.size) * tex_ev  # mild albedo variation
    amb = rng.uniform(0.35, 0.6) * np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.03, 0.03, 3)
    dirc = rng.uniform(0.4, 0.7) * np.ones(3)
    theta, phi = rng.uniform(-0.9, 0.9), rng.uniform(-0.6, 0.6)
    illum = np.concatenate([amb, dirc, [theta, phi, 0.0, 20.0]])
    color = np.concatenate([rng.uniform(0.9, 1.1, 3), rng.uniform(-10, 10, 3), [rng.uniform(0.85, 1.15)]])
    return tex, illum, color


def smooth_background(rng: np.random.Generator, H: int, W: int) -> np.ndarray:
    """(H, W, 3) uint8: a random two-colour gradient with a little per-pixel grain."""
    a, b = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    t = (math.cos(ang) * xx / W + math.sin(ang) * yy / H)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def render_orthographic(
    v_img: np.ndarray, tri: np.ndarray, albedo: np.ndarray, normals_cam: np.ndarray,
    illum: np.ndarray, color: np.ndarray, background: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic z-buffered render with :func:`facemodels.render.rasterize`.

    v_img (N, 3): x, y image px (y down), z px towards the camera; tri (T, 3); albedo
    (N, 3) 0..255; normals_cam (N, 3) unit normals in the camera frame (x right, y up,
    z towards the camera); illum (10,), color (7,) as the module doc; background
    (H, W, 3) uint8. Returns the (H, W, 3) uint8 image and the (N,) bool vertex
    visibility (front-facing and not hidden, z-test tolerance 2 px).
    """
    H, W = background.shape[:2]
    # The rasteriser interpolates 1/depth; a far-away offset makes that affine to ~1e-4.
    offset = float(v_img[:, 2].max()) + 1e4
    depth = offset - v_img[:, 2]
    r = rasterize(v_img[:, :2], depth, tri, H, W)
    theta, phi = float(illum[6]), float(illum[7])
    light = np.array([math.sin(theta) * math.cos(phi), math.sin(phi), math.cos(theta) * math.cos(phi)])
    lam = np.clip(normals_cam @ light, 0.0, None)[:, None]
    shaded = albedo * (illum[None, 0:3] + illum[None, 3:6] * lam)
    shaded = color[None, 0:3] * shaded + color[None, 3:6]
    gray = shaded @ np.array([0.299, 0.587, 0.114])
    shaded = (shaded - gray[:, None]) * color[6] + gray[:, None]
    shaded = np.clip(shaded, 0, 255)
    img = background.astype(np.float64).copy()
    fid = r.face_id.reshape(-1)
    sel = np.flatnonzero(fid >= 0)
    corners = tri[fid[sel]]  # (P, 3)
    b = r.bary.reshape(-1, 3)[sel].astype(np.float64)
    col = np.einsum("pc,pcd->pd", b, shaded[corners])
    img.reshape(-1, 3)[sel] = col
    front = normals_cam[:, 2] > 0
    vis = vertex_visibility(v_img[:, :2], depth, front, r.zbuf, tol=2.0)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), vis


def camera_normals(v_img: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(N, 3) unit vertex normals of the projected mesh in a right-handed camera frame
    (x right, y up, z towards the camera), oriented outwards (away from the centroid)."""
    p = np.asarray(v_img, np.float64).copy()
    p[:, 1] = -p[:, 1]  # image rows down -> y up
    a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
    fn = np.cross(b - a, c - a)
    vn = np.zeros_like(p)
    for k in range(3):
        np.add.at(vn, tri[:, k], fn)
    vn /= np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)
    if float(np.einsum("nd,nd->", vn, p - p.mean(0))) < 0:
        vn = -vn
    return vn


class MirrorFitter:
    """Parameters of the mirrored face for the _Flip folders.

    The mirror image of a BFM face (x -> -x, vertices re-paired by the nearest mirrored
    mean-shape vertex) is generally not exactly in the model's span; its Shape_Para and
    Exp_Para are the least-squares fit over all trimmed vertices (``residual_um`` reports
    the RMS vertex error of the fit). The pose mirrors exactly: pitch kept, yaw and roll
    negated, tx -> W - 1 - tx.
    """

    def __init__(self, bfm: BfmArrays):
        self.bfm = bfm
        _, self.perm = cKDTree(bfm.mean).query(bfm.mean * np.array([-1.0, 1.0, 1.0]))
        # normal equations with a Cholesky factor of the 228 x 228 Gram matrix (the columns
        # are near-orthogonal, so this is well conditioned and much cheaper than an SVD)
        self.basis = np.concatenate([bfm.shape_pc, bfm.exp_pc], 1)  # (3M, 228)
        gram = self.basis.T @ self.basis
        self.cho = cho_factor(gram + 1e-12 * np.trace(gram) / len(gram) * np.eye(len(gram)))
        self.n_shape = bfm.shape_pc.shape[1]

    def mirror(self, shape_para: np.ndarray, exp_para: np.ndarray, pose_para: np.ndarray,
               width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        v = self.bfm.vertices(shape_para, exp_para)
        target = (v * np.array([-1.0, 1.0, 1.0]))[self.perm].reshape(-1)
        coef = cho_solve(self.cho, self.basis.T @ (target - self.bfm.mean.reshape(-1)))
        s2, e2 = coef[: self.n_shape], coef[self.n_shape:]
        fit = self.bfm.vertices(s2, e2).reshape(-1)
        res = float(np.sqrt(np.mean((fit - target) ** 2)))
        pose = np.asarray(pose_para, np.float64).copy()
        pose[1], pose[2], pose[3] = -pose[1], -pose[2], width - 1 - pose[3]
        return s2, e2, pose, res
