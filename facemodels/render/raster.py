"""Vectorised z-buffered triangle rasteriser (numpy), CPU only.

Pixel convention (docs/ARCHITECTURE.md): pixel (i, j) is sampled at x = j, y = i; the image
spans x in [-0.5, W - 0.5]. Depth is metres along the optical axis (CV camera, z forward).

Algorithm: every triangle's integer bounding box is expanded into candidate samples
(size classes evaluated by broadcasting k x k blocks; larger boxes by ``np.repeat``), screen-space barycentrics decide coverage, depth is interpolated
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
    origin = by0.astype(np.int64) * W + bx0.astype(np.int64)  # (K,) flat index of box corner
    coef = (Aa, Ba, Ca, Ab, Bb, Cb, iza, izb, izc)

    # Small boxes (the vast majority on a dense mesh) are evaluated by broadcasting over a
    # k x k sample block per size class (no per-sample gathers); larger ones by expansion.
    side = np.maximum(bw, bh)
    parts = []
    lo = 0
    for k in _BLOCK_SIZES:
        sel_k = np.nonzero((side > lo) & (side <= k))[0]
        lo = k
        if sel_k.size:
            parts.append(_cover_block(sel_k, k, bw, bh, coef))
    big = np.nonzero(side > lo)[0]
    if big.size:
        parts.append(_cover_expand(big, bw, bh, coef))
    owner = np.concatenate([q[0] for q in parts])
    ly = np.concatenate([q[1] for q in parts]).astype(np.int64)
    lx = np.concatenate([q[2] for q in parts]).astype(np.int64)
    pa, pb, pc = (np.concatenate([q[i] for q in parts]) for i in (3, 4, 5))
    z = 1.0 / (pa + pb + pc)  # (T',) perspective-correct depth, metres
    pix = origin[owner] + ly * W + lx

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


_BLOCK_SIZES = (1, 2, 3, 4, 6, 8)
_EPS = np.float32(-1e-5)  # inside test tolerance on barycentrics (shared edges stay closed)


def _cover_block(sel: np.ndarray, k: int, bw: np.ndarray, bh: np.ndarray, coef: tuple) -> tuple:
    """Covered samples of triangles ``sel`` (boxes at most k x k) by broadcasting.

    Returns (owner, ly, lx, pa, pb, pc): owner indexes the kept triangles, (ly, lx) the
    sample offset in the box, p* = barycentric / vertex depth (perspective weights).
    """
    Aa, Ba, Ca, Ab, Bb, Cb, iza, izb, izc = (c[sel] for c in coef)
    r = np.arange(k, dtype=np.float32)
    lxs, lys = r[None, None, :], r[None, :, None]  # (1, 1, k), (1, k, 1)
    wa = Aa[:, None, None] * lxs + (Ba[:, None, None] * lys + Ca[:, None, None])  # (S, k, k)
    wb = Ab[:, None, None] * lxs + (Bb[:, None, None] * lys + Cb[:, None, None])
    wc = 1.0 - wa - wb
    m = (wa >= _EPS) & (wb >= _EPS) & (wc >= _EPS)
    if k > 1:
        ri = np.arange(k)
        m &= (ri[None, None, :] < bw[sel][:, None, None]) & (
            ri[None, :, None] < bh[sel][:, None, None]
        )
    t, ly, lx = np.nonzero(m)
    return sel[t], ly, lx, wa[m] * iza[t], wb[m] * izb[t], wc[m] * izc[t]


def _cover_expand(sel: np.ndarray, bw: np.ndarray, bh: np.ndarray, coef: tuple) -> tuple:
    """Covered samples of triangles ``sel`` by expanding every box into its samples."""
    Aa, Ba, Ca, Ab, Bb, Cb, iza, izb, izc = (c[sel] for c in coef)
    w, h = bw[sel], bh[sel]
    counts = w.astype(np.int64) * h
    owner = np.repeat(np.arange(sel.size), counts)  # (T,)
    starts = np.cumsum(counts) - counts
    local = np.arange(int(counts.sum())) - starts[owner]
    ly = local // w[owner]
    lx = local - ly * w[owner]
    lxf, lyf = lx.astype(np.float32), ly.astype(np.float32)
    wa = Aa[owner] * lxf + Ba[owner] * lyf + Ca[owner]
    wb = Ab[owner] * lxf + Bb[owner] * lyf + Cb[owner]
    wc = 1.0 - wa - wb
    keep = np.nonzero((wa >= _EPS) & (wb >= _EPS) & (wc >= _EPS))[0]
    o = owner[keep]
    return sel[o], ly[keep], lx[keep], wa[keep] * iza[o], wb[keep] * izb[o], wc[keep] * izc[o]
