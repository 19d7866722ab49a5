"""Per-vertex albedo for FLAME-topology heads: skin over a realistic tone range, darker brows,
red lips, white sclera with a coloured iris and a black pupil on the eyeballs, hair colour on
the scalp. Colours are RGB in [0, 1] (display space; the renderer shades them directly).

Regions come from ``facemodels.flame_regions.vertex_regions(folder)`` (dict name -> vertex indices);
names are matched loosely so real ``FLAME_masks.pkl`` keys work too (see :func:`region_roles`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix

from facemodels.cache import Memo, content_key

# Skin palette from very light to very dark (approximate reflectance of real skin tones,
# sRGB [0, 1]); ``AlbedoParams.skin_tone`` interpolates along it.
SKIN_PALETTE = np.array(
    [
        [0.96, 0.84, 0.76],
        [0.91, 0.74, 0.63],
        [0.80, 0.60, 0.47],
        [0.66, 0.46, 0.33],
        [0.48, 0.32, 0.22],
        [0.32, 0.21, 0.15],
    ]
)

HAIR_COLORS = np.array(
    [
        [0.06, 0.05, 0.05],  # black
        [0.22, 0.14, 0.09],  # dark brown
        [0.42, 0.28, 0.17],  # brown
        [0.72, 0.58, 0.36],  # blond
        [0.55, 0.25, 0.12],  # red
        [0.62, 0.62, 0.60],  # grey
    ]
)

IRIS_COLORS = np.array(
    [
        [0.25, 0.15, 0.08],  # brown
        [0.12, 0.08, 0.05],  # dark brown
        [0.30, 0.45, 0.65],  # blue
        [0.35, 0.45, 0.30],  # green
        [0.45, 0.40, 0.30],  # hazel
    ]
)


@dataclass
class AlbedoParams:
    """Appearance parameters of one subject.

    Attributes:
        skin_tone: 0 (very light) .. 1 (very dark), position along ``SKIN_PALETTE``.
        skin_redness: -1 .. 1 shift towards yellow (-) or red (+).
        hair_color: (3,) RGB of scalp hair; brows are a darker version of it.
        iris_color: (3,) RGB.
        lip_redness: 0 .. 1 how strongly lips differ from skin.
        brow_strength: 0 .. 1 how dark the brows are relative to the skin.
        variation: std of per-vertex multiplicative noise (blotches), e.g. 0.03.
        seed: seed of that noise.
    """

    skin_tone: float = 0.3
    skin_redness: float = 0.0
    hair_color: tuple[float, float, float] = (0.22, 0.14, 0.09)
    iris_color: tuple[float, float, float] = (0.25, 0.15, 0.08)
    lip_redness: float = 0.6
    brow_strength: float = 0.7
    variation: float = 0.03
    seed: int = 0


def skin_color(tone: float, redness: float = 0.0) -> np.ndarray:
    """(3,) RGB for a tone in [0, 1] along ``SKIN_PALETTE`` with a red/yellow shift."""
    x = float(np.clip(tone, 0.0, 1.0)) * (len(SKIN_PALETTE) - 1)
    i = min(int(x), len(SKIN_PALETTE) - 2)
    c = SKIN_PALETTE[i] * (1 - (x - i)) + SKIN_PALETTE[i + 1] * (x - i)
    shift = np.array([0.04, -0.01, -0.03]) * float(np.clip(redness, -1, 1))
    return np.clip(c + shift * c / c.max(), 0.0, 1.0)


def region_roles(regions: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """Group region names by role: 'brows', 'lips', 'eyeballs', 'hair', 'skin' (rest).

    Matching is by substring: 'brow' -> brows, 'lip' -> lips, 'eyeball' (or exactly 'eyes'
    when no 'eyeball' region exists) -> eyeballs, 'scalp'/'hair' -> hair.
    """
    roles: dict[str, list[str]] = {"brows": [], "lips": [], "eyeballs": [], "hair": [], "skin": []}
    has_eyeball = any("eyeball" in k.lower() for k in regions)
    for name in regions:
        k = name.lower()
        if "brow" in k:
            roles["brows"].append(name)
        elif "lip" in k:
            roles["lips"].append(name)
        elif "eyeball" in k or (k == "eyes" and not has_eyeball):
            roles["eyeballs"].append(name)
        elif "scalp" in k or "hair" in k:
            roles["hair"].append(name)
        else:
            roles["skin"].append(name)
    return roles


def _eyeball_colors(
    verts: np.ndarray,
    idx: np.ndarray,
    iris: np.ndarray,
    iris_deg: float = 31.0,
    pupil_deg: float = 8.0,
) -> np.ndarray:
    """Sclera / iris / pupil colours for the eyeball vertices ``idx`` (both eyes at once).

    Each eyeball is split by the sign of x; the angle of a vertex from its eyeball's forward
    axis (+z, model space, rest pose) decides: < pupil_deg black, < iris_deg iris, else sclera.
    Returns (len(idx), 3).
    """
    out = np.tile(np.array([0.93, 0.92, 0.90]), (idx.size, 1))
    p = verts[idx]
    for side in (p[:, 0] < 0, p[:, 0] >= 0):
        if side.sum() < 4:
            continue
        q = p[side]
        c = 0.5 * (q.min(0) + q.max(0))  # eyeball centre
        d = q - c
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        ang = np.degrees(np.arccos(np.clip(d[:, 2], -1.0, 1.0)))  # from +z
        col = out[side]
        ring = ang < iris_deg
        # darker limbal ring at the iris edge
        col[ring] = iris * np.where(ang[ring] > iris_deg - 8, 0.6, 1.0)[:, None]
        col[ang < pupil_deg] = np.array([0.02, 0.02, 0.02])
        out[side] = col
    return out


_ONE_RING: Memo[tuple] = Memo(maxsize=8)


def _one_ring(faces: np.ndarray, N: int) -> tuple:
    """(N, N) CSR one-ring adjacency incl. self loops and its row sums; cached by content."""

    def build() -> tuple:
        e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        e = np.concatenate([e, e[:, ::-1], np.repeat(np.arange(N)[:, None], 2, 1)])
        A = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(N, N)).tocsr()
        A.data[:] = 1.0  # duplicate edges count once
        return A, np.asarray(A.sum(1)).reshape(-1, 1)

    return _ONE_RING.get(content_key(faces, extra=str(N)), build)


def _smooth(alb: np.ndarray, faces: np.ndarray, iters: int) -> np.ndarray:
    """``iters`` rounds of one-ring averaging (vertex + neighbours) over the mesh edges."""
    A, deg = _one_ring(faces, alb.shape[0])
    for _ in range(iters):
        alb = (A @ alb) / deg
    return alb


def vertex_albedo(
    regions: Mapping[str, np.ndarray],
    template: np.ndarray,
    params: AlbedoParams,
    faces: np.ndarray | None = None,
    smooth_iters: int = 2,
) -> np.ndarray:
    """Per-vertex albedo.

    Args:
        regions: name -> vertex indices (see :func:`region_roles`); unlisted vertices get skin.
        template: (N, 3) rest-pose vertices in model space, metres (eyeball orientation, noise).
        params: :class:`AlbedoParams`.
        faces: (F, 3) mesh faces; when given, region borders and noise are softened by
            ``smooth_iters`` rounds of one-ring averaging (eyeballs keep their exact colours).
    Returns:
        (N, 3) float32 RGB in [0, 1].
    """
    N = template.shape[0]
    roles = region_roles(regions)
    skin = skin_color(params.skin_tone, params.skin_redness)
    alb = np.tile(skin, (N, 1))

    def idx_of(role: str) -> np.ndarray:
        parts = [np.asarray(regions[k], dtype=np.int64).reshape(-1) for k in roles[role]]
        idx = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= N):
            raise ValueError(f"facemodels.albedo: region(s) {roles[role]} index outside 0..{N - 1}")
        return idx

    hair = np.asarray(params.hair_color, dtype=np.float64)
    lips = idx_of("lips")
    lip_col = np.array([0.72, 0.28, 0.30]) * (0.55 + 0.45 * skin.mean() / SKIN_PALETTE[0].mean())
    alb[lips] = (1 - params.lip_redness) * skin + params.lip_redness * lip_col
    brows = idx_of("brows")
    brow_col = np.minimum(hair, skin) * 0.7
    alb[brows] = (1 - params.brow_strength) * skin + params.brow_strength * brow_col
    alb[idx_of("hair")] = hair
    eyes = idx_of("eyeballs")
    if eyes.size:
        alb[eyes] = _eyeball_colors(template, eyes, np.asarray(params.iris_color, dtype=np.float64))

    if params.variation > 0:
        # Smooth-ish blotches: hashed noise on a 1.5 cm lattice, looked up per vertex
        # (uniform in [-1, 1] scaled to std = variation).
        keys = np.floor(template / 0.015).astype(np.int64)  # (N, 3)
        h = (keys[:, 0] * 73856093) ^ (keys[:, 1] * 19349663) ^ (keys[:, 2] * 83492791)
        h = (h ^ (params.seed * 2654435761)) & 0xFFFFFFFF
        h = (h * 2246822519 + 3266489917) & 0xFFFFFFFF
        u = (h >> 8).astype(np.float64) / float(1 << 24) * 2.0 - 1.0  # (N,) in [-1, 1)
        not_eye = np.ones(N, dtype=bool)
        not_eye[eyes] = False
        alb[not_eye] *= (1.0 + params.variation * math.sqrt(3.0) * u[not_eye])[:, None]
    if faces is not None and smooth_iters > 0:
        eye_cols = alb[eyes].copy()
        alb = _smooth(alb, np.asarray(faces, dtype=np.int64), smooth_iters)
        alb[eyes] = eye_cols
    return np.clip(alb, 0.0, 1.0).astype(np.float32)
