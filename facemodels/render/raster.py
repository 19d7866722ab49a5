"""Vectorised z-buffered triangle rasteriser (numpy), CPU only.

Pixel convention (docs/ARCHITECTURE.md): pixel (i, j) is sampled at x = j, y = i; the image
spans x in [-0.5, W - 0.5]. Depth is metres along the optical axis (CV camera, z forward).

Algorithm: every triangle's integer bounding box is expanded into candidate samples
(``np.repeat`` + offsets), screen-space barycentrics decide coverage, depth is interpolated
perspective-correctly (1/z is affine in screen space) and the nearest candidate per pixel
wins (``np.minimum.at``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Raster:
    """Per-pixel rasterisation result.

    Attributes:
        face_id: (H, W) int32, index of the visible triangle, -1 for background.
        bary: (H, W, 3) float32 perspective-correct barycentrics of the visible triangle
            (zeros on background).
        zbuf: (H, W) float32 depth of the visible surface in metres, +inf on background.
    """

    face_id: np.ndarray
    bary: np.ndarray
    zbuf: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a triangle covers the pixel."""
        return self.face_id >= 0


def rasterize(
    uv: np.ndarray, depth: np.ndarray, faces: np.ndarray, H: int, W: int, near: float = 1e-3
) -> Raster:
    """Rasterise a triangle mesh already projected to pixels.

    Args:
        uv: (N, 2) vertex pixel coordinates (x right, y down).
        depth: (N,) vertex depth in metres (camera z); triangles with a vertex at
            depth <= ``near`` are dropped (no clipping).
        faces: (F, 3) int vertex indices.
        H, W: output size in pixels.
    Returns:
        :class:`Raster` with (H, W) buffers.
    """
    uv = np.asarray(uv, dtype=np.float32)
    depth = np.asarray(depth, dtype=np.float32)
    faces = np.asarray(faces)
    if uv.ndim != 2 or uv.shape[1] != 2 or depth.shape != (uv.shape[0],):
        raise ValueError(
            f"facemodels.render.rasterize: uv must be (N, 2) and depth (N,), got {uv.shape}, {depth.shape}"
        )
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"facemodels.render.rasterize: faces must be (F, 3), got {faces.shape}")

    face_id = np.full((H, W), -1, dtype=np.int32)
    bary = np.zeros((H, W, 3), dtype=np.float32)
    zbuf = np.full((H, W), np.inf, dtype=np.float32)

    fa, fb, fc = faces[:, 0], faces[:, 1], faces[:, 2]
    uv64 = uv.astype(np.float64)
    ax, ay, bx, by = uv64[fa, 0], uv64[fa, 1], uv64[fb, 0], uv64[fb, 1]
    cx, cy = uv64[fc, 0], uv64[fc, 1]
    za, zb, zc = depth[fa], depth[fb], depth[fc]
    area2 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)  # (F,) signed, 2x area

    # Integer sample boxes, clipped to the image.  (F,) each
    x0 = np.maximum(np.ceil(np.minimum(np.minimum(ax, bx), cx)), 0)
    x1 = np.minimum(np.floor(np.maximum(np.maximum(ax, bx), cx)), W - 1)
    y0 = np.maximum(np.ceil(np.minimum(np.minimum(ay, by), cy)), 0)
    y1 = np.minimum(np.floor(np.maximum(np.maximum(ay, by), cy)), H - 1)
    zmin = np.minimum(np.minimum(za, zb), zc)
    keep = (x1 >= x0) & (y1 >= y0) & (np.abs(area2) > 1e-10) & (zmin > near)
    idx = np.nonzero(keep)[0]
    if idx.size == 0:
        return Raster(face_id, bary, zbuf)

    # Edge functions in float64 per triangle, relative to the box corner (x0, y0) so the
    # per-sample float32 evaluation only sees small offsets:
    # w_a = Aa lx + Ba ly + Ca, w_b likewise, w_c = 1 - w_a - w_b.  (K,) each
    inv = 1.0 / area2[idx]
    ax, ay, bx, by, cx, cy = ax[idx], ay[idx], bx[idx], by[idx], cx[idx], cy[idx]
    bx0, by0 = x0[idx], y0[idx]
    Aa, Ba = (by - cy) * inv, (cx - bx) * inv
    Ab, Bb = (cy - ay) * inv, (ax - cx) * inv
    Ca = ((bx - bx0) * (cy - by0) - (by - by0) * (cx - bx0)) * inv
    Cb = ((cx - bx0) * (ay - by0) - (cy - by0) * (ax - bx0)) * inv
    Aa, Ba, Ca, Ab, Bb, Cb = (v.astype(np.float32) for v in (Aa, Ba, Ca, Ab, Bb, Cb))
    iza, izb, izc = 1.0 / za[idx], 1.0 / zb[idx], 1.0 / zc[idx]  # (K,)

    bw = (x1[idx] - bx0 + 1).astype(np.int32)
    bh = (y1[idx] - by0 + 1).astype(np.int32)
    counts = bw * bh
    total = int(counts.sum())
    # Candidate samples: triangle k contributes its bw x bh box.  (T,) each
    owner = np.repeat(np.arange(idx.size, dtype=np.int32), counts)
    starts = np.cumsum(counts, dtype=np.int64) - counts
    local = (np.arange(total, dtype=np.int64) - starts[owner]).astype(np.int32)
    bw_o = bw[owner]
    ly = local // bw_o
    lx = local - ly * bw_o
    lxf, lyf = lx.astype(np.float32), ly.astype(np.float32)

    wa = Aa[owner] * lxf + Ba[owner] * lyf + Ca[owner]
    wb = Ab[owner] * lxf + Bb[owner] * lyf + Cb[owner]
    wc = 1.0 - wa - wb
    eps = -1e-5
    sel = np.nonzero((wa >= eps) & (wb >= eps) & (wc >= eps))[0]
    owner = owner[sel]
    pa = wa[sel] * iza[owner]
    pb = wb[sel] * izb[owner]
    pc = wc[sel] * izc[owner]
    z = 1.0 / (pa + pb + pc)  # (T',) perspective-correct depth, metres
    origin = by0.astype(np.int64) * W + bx0.astype(np.int64)  # (K,) flat index of box corner
    pix = origin[owner] + ly[sel].astype(np.int64) * W + lx[sel]

    # Nearest candidate per pixel.
    zflat = zbuf.reshape(-1)
    np.minimum.at(zflat, pix, z)  # unbuffered per-pixel minimum (fast path in numpy >= 1.25)
    win = z <= zflat[pix]
    pw = pix[win]
    face_id.reshape(-1)[pw] = idx[owner[win]].astype(np.int32)
    zw = z[win]
    bflat = bary.reshape(-1, 3)
    bflat[pw, 0] = pa[win] * zw
    bflat[pw, 1] = pb[win] * zw
    bflat[pw, 2] = pc[win] * zw
    return Raster(face_id, bary, zbuf)


def vertex_visibility(
    uv: np.ndarray,
    depth: np.ndarray,
    front_facing: np.ndarray,
    zbuf: np.ndarray,
    tol: float = 0.01,
) -> np.ndarray:
    """Per-vertex visibility that agrees with a z-buffer.

    A vertex is visible when (1) its rounded pixel ``(round(y), round(x))`` lies inside the
    image, (2) it faces the camera and (3) its depth is at most ``zbuf[pixel] + tol``
    (nothing nearer than ``tol`` metres covers it).

    Args:
        uv: (N, 2) pixels.  depth: (N,) metres.  front_facing: (N,) bool.
        zbuf: (H, W) metres (+inf background).  tol: metres.
    Returns:
        (N,) bool.
    """
    H, W = zbuf.shape
    j = np.rint(uv[:, 0]).astype(np.int64)
    i = np.rint(uv[:, 1]).astype(np.int64)
    inside = (j >= 0) & (j < W) & (i >= 0) & (i < H) & np.isfinite(uv).all(1)
    zb = np.full(depth.shape, -np.inf, dtype=np.float32)
    zb[inside] = zbuf[i[inside], j[inside]]
    return inside & front_facing & (depth <= zb + tol)
