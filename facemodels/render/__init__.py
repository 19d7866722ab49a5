"""CPU mesh renderer: z-buffered triangles, perspective camera, per-vertex albedo,
Lambertian + ambient light, procedural backgrounds and occluders. numpy + torch only
(no OpenGL, pytorch3d, nvdiffrast or compiled extensions).

Entry point: :func:`render_mesh`. Building blocks: :func:`rasterize`,
:func:`vertex_visibility`, :func:`vertex_normals`, :func:`shade_vertices`,
:func:`make_background`, :func:`draw_occluders`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from facemodels.cameras import project_perspective
from facemodels.render.backgrounds import (
    BACKGROUND_KINDS,
    BackgroundSpec,
    Occluder,
    draw_occluders,
    make_background,
    occluder_mask,
)
from facemodels.render.holes import boundary_loops, faces_to_rasterize
from facemodels.render.raster import Raster, rasterize, vertex_visibility
from facemodels.render.shading import Lighting, face_normals, shade_vertices, vertex_normals

__all__ = [
    "BACKGROUND_KINDS",
    "BackgroundSpec",
    "Lighting",
    "Occluder",
    "Raster",
    "RenderOutput",
    "draw_occluders",
    "face_normals",
    "make_background",
    "occluder_mask",
    "rasterize",
    "render_mesh",
    "shade_vertices",
    "vertex_normals",
    "vertex_visibility",
]


@dataclass
class RenderOutput:
    """What :func:`render_mesh` returns.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        depth: (H, W) float32 metres of the nearest surface, +inf on background (with
            supersampling: the minimum over the pixel's samples).
        mask: (H, W) bool, the mesh covers the pixel (before occluders).
        occluder_mask: (H, W) bool, pixels painted by occluders.
        vertex_px: (N, 2) float32 pixels.
        vertex_depth: (N,) float32 metres.
        visibility: (N,) bool, see :func:`vertex_visibility` (self-occlusion only; occluders
            are not taken into account).
    """

    image: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    occluder_mask: np.ndarray
    vertex_px: np.ndarray
    vertex_depth: np.ndarray
    visibility: np.ndarray


def _np(x, dtype=np.float64) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _supersample_K(K: np.ndarray, s: int) -> np.ndarray:
    """Intrinsics for an s-times finer grid whose s x s blocks average to pixel (i, j)."""
    Ks = K.copy()
    Ks[:2] = s * K[:2] + 0.5 * (s - 1) * K[2:3]
    return Ks


def render_mesh(
    vertices,
    faces,
    K,
    R,
    t,
    albedo,
    size: int | tuple[int, int] = 256,
    lighting: Lighting | None = None,
    background: BackgroundSpec | np.ndarray | None = None,
    occluders: Sequence[Occluder] = (),
    ssaa: int = 1,
    interior_color: tuple[float, float, float] = (0.22, 0.07, 0.07),
    visibility_tol: float = 0.01,
    cull_back_faces: bool = True,
) -> RenderOutput:
    """Render one mesh.

    Args:
        vertices: (N, 3) model space, metres (numpy or torch).
        faces: (F, 3) int, counter-clockwise seen from outside.
        K: (3, 3) pixels.  R: (3, 3), t: (3,) metres: model -> CV camera.
        albedo: (N, 3) in [0, 1].
        size: H = W = size, or (H, W).
        lighting: :class:`Lighting` (camera frame); default frontal.
        background: a :class:`BackgroundSpec`, an (H, W, 3) float [0, 1] / uint8 image, or
            None (mid grey).
        occluders: drawn over the result in order.
        ssaa: supersampling factor per axis (1 = no anti-aliasing, 2 = 4 samples per pixel).
        interior_color: albedo of back-facing triangles seen through openings (mouth).
        visibility_tol: metres, see :func:`vertex_visibility`.
        cull_back_faces: skip back faces that cannot show through a hole (exact for meshes
            without self-intersections, see :mod:`facemodels.render.holes`).
    Returns:
        :class:`RenderOutput`.
    """
    H, W = (size, size) if isinstance(size, int) else size
    V = _np(vertices)
    F = np.asarray(
        faces.detach().cpu().numpy() if isinstance(faces, torch.Tensor) else faces, dtype=np.int64
    )
    Kn, Rn, tn = _np(K), _np(R), _np(t)
    alb = _np(albedo, np.float32)
    if V.ndim != 2 or V.shape[1] != 3:
        raise ValueError(f"facemodels.render.render_mesh: vertices must be (N, 3), got {V.shape}")
    if alb.shape != V.shape:
        raise ValueError(
            f"facemodels.render.render_mesh: albedo must be {V.shape}, got {alb.shape}"
        )
    if Kn.shape != (3, 3) or Rn.shape != (3, 3) or tn.shape != (3,):
        raise ValueError(
            f"facemodels.render.render_mesh: K, R must be (3, 3) and t (3,), got {Kn.shape}, {Rn.shape}, {tn.shape}"
        )
    if ssaa < 1:
        raise ValueError(f"facemodels.render.render_mesh: ssaa must be >= 1, got {ssaa}")
    light = lighting or Lighting()

    uv_t, z_t = project_perspective(
        torch.from_numpy(V)[None],
        torch.from_numpy(Rn)[None],
        torch.from_numpy(tn)[None],
        torch.from_numpy(Kn)[None],
    )
    uv, z = uv_t[0].numpy(), z_t[0].numpy()  # (N, 2) px, (N,) m
    cam = V @ Rn.T + tn  # (N, 3) camera frame
    fn = face_normals(cam, F)  # (F, 3)
    vn = vertex_normals(cam, F, fn)  # (N, 3)
    front_v = np.einsum("nd,nd->n", vn, -cam) > 0
    front_f = np.einsum("fd,fd->f", fn, -cam[F[:, 0]]) > 0  # (F,)

    s = ssaa
    # Back faces can only show through holes (see facemodels.render.holes): skip the rest.
    sub = (
        faces_to_rasterize(uv, F, front_f, boundary_loops(F))
        if cull_back_faces
        else np.arange(len(F))
    )
    r = rasterize(uv * s + 0.5 * (s - 1) if s > 1 else uv, z, F[sub], H * s, W * s)

    color_v = np.clip(shade_vertices(alb, vn, light), 0.0, 1.0).astype(np.float32)  # (N, 3)
    inner = np.clip(
        np.asarray(interior_color, np.float32) * (light.ambient + 0.3 * light.diffuse), 0, 1
    )
    flat_id = r.face_id.reshape(-1)
    sel = np.nonzero(flat_id >= 0)[0]  # covered samples
    fid = sub[flat_id[sel]]
    tri = F[fid]  # (P, 3)
    b = r.bary.reshape(-1, 3)[sel]  # (P, 3)
    col = (
        b[:, 0:1] * color_v[tri[:, 0]]
        + b[:, 1:2] * color_v[tri[:, 1]]
        + b[:, 2:3] * color_v[tri[:, 2]]
    )
    col[~front_f[fid]] = inner

    if isinstance(background, BackgroundSpec):
        img = make_background(background, H, W)
    elif background is None:
        img = np.full((H, W, 3), 0.5, dtype=np.float32)
    else:
        img = np.asarray(background)
        img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
        if img.shape != (H, W, 3):
            raise ValueError(
                f"facemodels.render.render_mesh: background must be {(H, W, 3)}, got {img.shape}"
            )

    if s == 1:
        img.reshape(-1, 3)[sel] = col
        depth, mask = r.zbuf, r.face_id >= 0
    else:
        fg = np.zeros((H * s * W * s, 3), dtype=np.float32)
        fg[sel] = col
        cov = (flat_id >= 0).reshape(H, s, W, s).mean(axis=(1, 3), dtype=np.float32)  # (H, W)
        fg_lo = fg.reshape(H, s, W, s, 3).mean(axis=(1, 3), dtype=np.float32)
        img = fg_lo + (1.0 - cov)[..., None] * img
        depth = r.zbuf.reshape(H, s, W, s).min(axis=(1, 3))
        mask = cov > 0
    occ = draw_occluders(img, list(occluders)) if occluders else np.zeros((H, W), dtype=bool)
    image = (img * 255.0 + 0.5).astype(np.uint8)
    vis = vertex_visibility(uv, z, front_v, depth, tol=visibility_tol)
    return RenderOutput(
        image=image,
        depth=depth.astype(np.float32),
        mask=mask,
        occluder_mask=occ,
        vertex_px=uv.astype(np.float32),
        vertex_depth=z.astype(np.float32),
        visibility=vis,
    )
