"""Face boxes stored in the 300W-LP / AFLW2000-3D files (FORMATS.md), from landmark points.

- :func:`roi_from_points`: the ``roi`` field of a 300W-LP / AFLW2000-3D ``.mat``: the keypoint
  box enlarged by 10 %, int16.
- :func:`roi_box_from_landmarks`: 3DDFA's ``parse_roi_box_from_landmark``, the box of
  ``AFLW2000-3D_crop.roi_box.npy``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["roi_from_points", "roi_box_from_landmarks"]


def roi_from_points(pt2d: np.ndarray) -> np.ndarray:
    """(2, 68) px -> (1, 4) int16 [x1, y1, x2, y2], the keypoint box enlarged by 10 %."""
    lo, hi = pt2d.min(1), pt2d.max(1)
    pad = 0.1 * (hi - lo)
    return np.round(np.concatenate([lo - pad, hi + pad]))[None].astype(np.int16)


def roi_box_from_landmarks(pts: np.ndarray) -> np.ndarray:
    """3DDFA's ``parse_roi_box_from_landmark``: (2|3, 68) px -> (4,) [x1, y1, x2, y2] px, the
    square of side sqrt(2) x the larger side of the points' box, on its centre."""
    x0, y0, x1, y1 = pts[0].min(), pts[1].min(), pts[0].max(), pts[1].max()
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    r = max(x1 - x0, y1 - y0) / 2
    llength = np.sqrt((2 * r) ** 2 * 2)
    return np.array([cx - llength / 2, cy - llength / 2, cx + llength / 2, cy + llength / 2])
