"""The pictures ``make predict`` writes: the photo with each face's fitted FLAME mesh rendered over it
(shaded grey, half transparent) and its landmarks coloured by confidence (at most ``MAX_DOTS``: dense
sets every k-th landmark); a contact sheet of many.

Rendering uses the suite's CPU renderer (facemodels.render) in the photo's own camera, the crop camera
mapped back (``K_image = M^-1 K_crop``, M the similarity photo px -> crop px). Large photos are drawn at
most ``max_side`` px wide or high.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from facemodels.render import Lighting, render_mesh
from lightning_modules.overlays import confidence_colour

__all__ = ["FaceDrawing", "contact_sheet", "draw_faces"]

MESH_GREY = 0.72
MESH_ALPHA = 0.5
MAX_DOTS = 170  # dense sets are drawn every k-th landmark, so the mesh under them stays visible


@dataclass
class FaceDrawing:
    """What is drawn for one face: ``landmarks_px`` (L, 2) and ``confidences`` (L,) in photo px;
    ``vertices_camera`` (V, 3) metres and ``K_image`` (3, 3) px (None: no mesh); ``box`` (4,) xyxy px of
    the detector (None: not detected)."""

    landmarks_px: np.ndarray
    confidences: np.ndarray
    vertices_camera: np.ndarray | None = None
    K_image: np.ndarray | None = None
    box: np.ndarray | None = None


def draw_faces(rgb: np.ndarray, faces: list[FaceDrawing], mesh_faces: np.ndarray | None,
               max_side: int = 1024) -> np.ndarray:
    """(H, W, 3) uint8 photo -> (h, w, 3) uint8 picture (h, w = H, W scaled to at most ``max_side``)."""
    H, W = rgb.shape[:2]
    s = min(1.0, max_side / max(H, W))
    if s < 1.0:
        img = np.asarray(Image.fromarray(rgb).resize((round(W * s), round(H * s)), Image.BILINEAR))
    else:
        img = rgb.copy()
    h, w = img.shape[:2]
    scale = np.diag([w / W, h / H, 1.0])  # photo px -> picture px (pixel centres at integers)
    out = img.astype(np.float32)
    for f in faces:
        if f.vertices_camera is None or f.K_image is None or mesh_faces is None:
            continue
        V = np.asarray(f.vertices_camera, np.float64)
        r = render_mesh(V, mesh_faces, scale @ np.asarray(f.K_image, np.float64), np.eye(3), np.zeros(3),
                        np.full_like(V, MESH_GREY), size=(h, w), lighting=Lighting(), background=img)
        a = MESH_ALPHA * r.mask[..., None]
        out = out * (1 - a) + r.image.astype(np.float32) * a
    pil = Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for f in faces:
        pts = np.asarray(f.landmarks_px, np.float64) * [w / W, h / H]
        step = -(-len(pts) // MAX_DOTS)  # ceil: 1 for iBUG-68, 10 for the 1609 face vertices
        r = max(1.0, min(h, w) / 250.0) * (1.0 if step > 1 else 2.0)
        for (x, y), c in zip(pts[::step], np.asarray(f.confidences)[::step], strict=True):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=confidence_colour(float(c)))
        if f.box is not None:
            x0, y0, x1, y1 = (np.asarray(f.box, np.float64) * [w / W, h / H, w / W, h / H]).tolist()
            draw.rectangle([x0, y0, x1, y1], outline=(255, 255, 255), width=max(1, round(min(h, w) / 300)))
    return np.asarray(pil)


def contact_sheet(pictures: list[np.ndarray], cell: int = 256, columns: int = 6) -> np.ndarray:
    """Pictures scaled into ``cell`` x ``cell`` tiles (aspect kept, dark padding), ``columns`` per row."""
    if not pictures:
        raise ValueError("contact_sheet: no pictures")
    cols = min(columns, len(pictures))
    rows = -(-len(pictures) // cols)
    sheet = np.full((rows * cell, cols * cell, 3), 24, np.uint8)
    for i, p in enumerate(pictures):
        ph, pw = p.shape[:2]
        s = cell / max(ph, pw)
        tile = np.asarray(Image.fromarray(p).resize((max(1, round(pw * s)), max(1, round(ph * s))), Image.BILINEAR))
        y0 = (i // cols) * cell + (cell - tile.shape[0]) // 2
        x0 = (i % cols) * cell + (cell - tile.shape[1]) // 2
        sheet[y0 : y0 + tile.shape[0], x0 : x0 + tile.shape[1]] = tile
    return sheet
