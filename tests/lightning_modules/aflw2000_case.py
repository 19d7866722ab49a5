"""A small AFLW2000-3D benchmark case built in the tests (not a package module): 3DDFA's
test.configs arrays and a prediction in 3DDFA's 120 px crop frame, deterministic from a seed.
Scored by 3DDFA's benchmark_aflw2000.py in tests/lightning_modules/test_landmark_metrics.py."""

from __future__ import annotations

import numpy as np


def make_aflw_case(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """-> {"pose" (n,) signed yaw deg, 4 per |yaw| bin; "pts68" (n, 3, 68) original GT px;
    "pts68_re" (n, 2, 68) re-annotated GT px; "roi" (n, 4) [sx, sy, ex, ey];
    "fit" (n, 2, 68) predictions in the 120 px crop of roi (3DDFA's pts68_fit_all)}."""
    g = np.random.default_rng(seed)
    yaw = np.concatenate([g.uniform(0, 30, n // 3), g.uniform(30.5, 60, n // 3), g.uniform(60.5, 95, n - 2 * (n // 3))])
    yaw *= np.where(g.random(n) < 0.5, -1.0, 1.0)
    base = np.stack([np.cos(np.linspace(0, 2 * np.pi, 68, endpoint=False)),
                     0.8 * np.sin(np.linspace(0, 2 * np.pi, 68, endpoint=False))])  # (2, 68)
    size = g.uniform(80, 160, n)
    centre = g.uniform(180, 270, (n, 2))
    xy = centre[:, :, None] + size[:, None, None] * (base[None] + 0.05 * g.normal(size=(n, 2, 68)))
    pts68 = np.concatenate([xy, g.normal(0, 20, (n, 1, 68))], 1).astype(np.float32)
    pts68_re = (xy + g.normal(0, 2.0, xy.shape)).astype(np.float32)
    half = 1.2 * size
    roi = np.stack([centre[:, 0] - half, centre[:, 1] - half, centre[:, 0] + half, centre[:, 1] + half], 1)
    roi = roi.astype(np.float32)
    pred = xy + g.normal(0, 3.0, xy.shape)
    scale = (roi[:, 2:] - roi[:, :2]) / 120.0  # (n, 2)
    fit = (pred - roi[:, :2, None]) / scale[:, :, None]
    return {"pose": yaw.astype(np.float32), "pts68": pts68, "pts68_re": pts68_re, "roi": roi,
            "fit": fit.astype(np.float32)}
