"""Identity and expression deformation fields of the procedural head.

Each raw field is a smooth function of 3D position on the mean head, ``D(p) -> (N, 3)`` metres of
displacement per standard deviation. The FLAME-format bases are the principal components of the
raw fields sampled on the FLAME mesh (SVD: orthogonal columns, decreasing norms, coefficients
~ N(0, 1)); the mixing matrix is kept so the same components can be evaluated at any point, e.g.
on the BFM-format mesh: ``components(p) = raw(p) @ mix``.

Eyeballs: identity fields are evaluated at the eyeball centre (eyeballs translate rigidly);
expression fields are zero on them. Expression fields have compact support on the face and are
exactly zero on the scalp, the back of the head, the ears and the lower neck.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from facemodels.procedural import anatomy as A

MIRROR = np.array([-1.0, 1.0, 1.0])
Field = Callable[[np.ndarray], np.ndarray]


def _ss(t: np.ndarray) -> np.ndarray:
    """C1 smoothstep of t clipped to [0, 1]."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bump(p: np.ndarray, c: np.ndarray, s: float | np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * (((p - c) / s) ** 2).sum(-1))


def _bump2(p: np.ndarray, c: np.ndarray, s: float | np.ndarray) -> np.ndarray:
    """Symmetric pair of bumps at c and its mirror."""
    c = np.asarray(c, dtype=np.float64)
    return _bump(p, c, s) + _bump(p, c * MIRROR, s)


def _sx(p: np.ndarray) -> np.ndarray:
    return np.tanh(p[:, 0] / 0.008)


def _front(p: np.ndarray) -> np.ndarray:
    return _ss((p[:, 2] + 0.04) / 0.07)


def _vec(*cols: np.ndarray) -> np.ndarray:
    return np.stack(cols, -1)


def identity_fields(lmk: np.ndarray) -> list[Field]:
    """Anthropometric identity fields (1 sd each); ``lmk`` = (68, 3) mean landmarks."""
    z0 = np.zeros
    chin = np.array([0.0, lmk[8, 1] + 0.01, lmk[8, 2] + 0.004])
    tip = lmk[30]
    eye = A.LEFT_EYE_CENTRE
    ear = A.EAR_CENTRE
    f: list[Field] = [
        # head breadth / length / height, face height (Farkas sds ~5-6 mm)
        lambda p: _vec(
            0.040 * p[:, 0] * (1.0 - 0.6 * _front(p) * _ss((0.06 - p[:, 1]) / 0.03)),
            z0(len(p)),
            z0(len(p)),
        ),
        lambda p: _vec(z0(len(p)), z0(len(p)), 0.045 * np.minimum(p[:, 2] + 0.02, 0)),
        lambda p: _vec(z0(len(p)), 0.040 * np.maximum(p[:, 1] - 0.03, 0), z0(len(p))),
        lambda p: _vec(z0(len(p)), 0.045 * np.minimum(p[:, 1] - 0.03, 0) * _front(p), z0(len(p))),
        # bizygomatic and bigonial width
        lambda p: _vec(
            0.03 * p[:, 0] * _front(p) * np.exp(-0.5 * ((p[:, 1] + 0.005) / 0.03) ** 2),
            z0(len(p)),
            z0(len(p)),
        ),
        lambda p: _vec(
            0.06 * p[:, 0] * _front(p) * np.exp(-0.5 * ((p[:, 1] + 0.06) / 0.02) ** 2),
            z0(len(p)),
            z0(len(p)),
        ),
        # nose protrusion, width, length, bridge height
        lambda p: _vec(z0(len(p)), z0(len(p)), 0.0025 * _bump(p, tip + [0, 0.002, -0.008], 0.012)),
        lambda p: _vec(
            0.12 * p[:, 0] * _bump(p, np.array([0.0, -0.013, 0.088]), 0.011), z0(len(p)), z0(len(p))
        ),
        lambda p: _vec(z0(len(p)), -0.002 * _bump(p, tip + [0, 0, -0.006], 0.012), z0(len(p))),
        lambda p: _vec(z0(len(p)), z0(len(p)), 0.0015 * _bump(p, lmk[28], 0.010)),
        # eye spacing and height (eyeballs follow: evaluated at their centres)
        lambda p: _vec(0.0015 * _sx(p) * _bump2(p, eye, 0.014), z0(len(p)), z0(len(p))),
        lambda p: _vec(z0(len(p)), 0.0015 * _bump2(p, eye, 0.014), z0(len(p))),
        # brow ridge, forehead slope
        lambda p: _vec(
            z0(len(p)), z0(len(p)), 0.002 * _bump2(p, np.array([0.03, 0.05, 0.075]), 0.014)
        ),
        lambda p: _vec(z0(len(p)), z0(len(p)), -0.06 * np.maximum(p[:, 1] - 0.045, 0) * _front(p)),
        # chin protrusion and height
        lambda p: _vec(z0(len(p)), z0(len(p)), 0.003 * _bump(p, chin, 0.014)),
        lambda p: _vec(z0(len(p)), -0.002 * _bump(p, chin, 0.014), z0(len(p))),
        # cheek fullness, zygoma, jaw angle
        lambda p: (
            0.003
            * _bump2(p, np.array([0.045, -0.02, 0.06]), 0.018)[:, None]
            * _vec(0.7 * _sx(p), z0(len(p)), 0.7 + z0(len(p)))
        ),
        lambda p: (
            0.0025
            * _bump2(p, np.array([0.055, 0.012, 0.05]), 0.014)[:, None]
            * _vec(_sx(p), z0(len(p)), 0.5 + z0(len(p)))
        ),
        lambda p: (
            0.003
            * _bump2(p, np.array([0.055, -0.06, 0.03]), 0.015)[:, None]
            * _vec(_sx(p), -0.5 + z0(len(p)), z0(len(p)))
        ),
        # mouth width, lip thickness
        lambda p: _vec(
            0.12 * p[:, 0] * _bump(p, np.array([0.0, lmk[62, 1], 0.08]), 0.016),
            z0(len(p)),
            z0(len(p)),
        ),
        lambda p: _vec(
            z0(len(p)),
            z0(len(p)),
            0.0015
            * (
                _bump(p, lmk[51] + [0, -0.003, 0], 0.008) + _bump(p, lmk[57] + [0, 0.003, 0], 0.008)
            ),
        ),
        # ear size and protrusion
        lambda p: (
            0.12
            * _vec(np.abs(p[:, 0]) - ear[0], p[:, 1] - ear[1], p[:, 2] - ear[2])
            * _vec(_sx(p), 1 + z0(len(p)), 1 + z0(len(p)))
            * _bump2(p, ear, 0.02)[:, None]
        ),
        lambda p: _vec(0.003 * _sx(p) * _bump2(p, ear, 0.018), z0(len(p)), z0(len(p))),
        # midface depth, neck width
        lambda p: _vec(
            z0(len(p)),
            z0(len(p)),
            0.003 * _front(p) * np.exp(-0.5 * ((p[:, 1] + 0.01) / 0.05) ** 2),
        ),
        lambda p: _vec(
            0.05 * p[:, 0] * _ss((-0.09 - p[:, 1]) / 0.03),
            z0(len(p)),
            0.03 * (p[:, 2] + 0.008) * _ss((-0.09 - p[:, 1]) / 0.03),
        ),
    ]
    return f


def random_fields(
    rng: np.random.Generator,
    n: int,
    amp0: float,
    decay: float,
    wavelength: tuple[float, float],
    n_waves: int = 3,
) -> list[Field]:
    """Smooth random vector fields (sums of plane waves), amplitude amp0 / (1 + m / decay)."""
    out: list[Field] = []
    for m in range(n):
        lam = rng.uniform(*wavelength, size=n_waves)
        dirs = rng.normal(size=(n_waves, 3))
        omega = 2 * np.pi * dirs / np.linalg.norm(dirs, axis=1, keepdims=True) / lam[:, None]
        phase = rng.uniform(0, 2 * np.pi, size=n_waves)
        amps = rng.normal(size=(n_waves, 3)) / np.sqrt(3 * n_waves) * (amp0 / (1.0 + m / decay))

        def field(p: np.ndarray, omega=omega, phase=phase, amps=amps) -> np.ndarray:
            return np.sin(p @ omega.T + phase) @ amps

        out.append(field)
    return out


def expression_support(p: np.ndarray) -> np.ndarray:
    """(N,) in [0, 1]; exactly 0 above the hairline, behind z = 0.005 m, beyond |x| = 0.072 m,
    below y = -0.105 m (scalp, back of head, ears and lower neck never move)."""
    return (
        _ss((0.070 - p[:, 1]) / 0.012)
        * _ss((p[:, 2] - 0.005) / 0.02)
        * _ss((0.072 - np.abs(p[:, 0])) / 0.010)
        * _ss((p[:, 1] + 0.105) / 0.012)
    )


def expression_fields(lmk: np.ndarray, rng: np.random.Generator, n_total: int) -> list[Field]:
    """Semantic expression fields then masked random fields; ``lmk`` (68, 3) mean landmarks."""
    z0 = np.zeros
    sto = 0.5 * (lmk[62, 1] + lmk[66, 1])  # stomion height
    mouth = np.array([0.0, sto, 0.085])

    def up_lip(p: np.ndarray) -> np.ndarray:
        return _ss((p[:, 1] - sto) / 0.0015 + 0.5)

    def side(sign: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda p: _ss(sign * p[:, 0] / 0.006 + 0.5)

    L, R = side(1.0), side(-1.0)
    upper_lid = np.array([A.LEFT_EYE_CENTRE[0], 0.0315, 0.071])
    lower_lid = np.array([A.LEFT_EYE_CENTRE[0], 0.0215, 0.070])
    sem: list[Field] = []
    for s, m in ((1.0, L), (-1.0, R)):
        corner = lmk[54] if s > 0 else lmk[48]
        # smile: mouth corner up, back and out, cheek raised
        sem.append(
            lambda p, c=corner, s=s: (
                0.004
                * _bump(p, c, 0.013)[:, None]
                * _vec(0.6 * s + z0(len(p)), 1 + z0(len(p)), -0.4 + z0(len(p)))
                + 0.002
                * _bump(p, c + [0.01 * s, 0.02, -0.01], 0.015)[:, None]
                * _vec(z0(len(p)), 1 + z0(len(p)), 0.3 + z0(len(p)))
            )
        )
        # brow raise
        sem.append(
            lambda p, s=s: (
                0.004
                * _bump(p, np.array([0.034 * s, 0.056, 0.077]), 0.018)[:, None]
                * _vec(z0(len(p)), 1 + z0(len(p)), z0(len(p)))
            )
        )
        # blink: upper lid down over the eye
        sem.append(
            lambda p, s=s: (
                0.006
                * (
                    _bump(p, upper_lid * [s, 1, 1], np.array([0.011, 0.005, 0.02]))
                    * _ss((p[:, 1] - 0.0265) / 0.003)
                )[:, None]
                * _vec(z0(len(p)), -1 + z0(len(p)), 0.2 + z0(len(p)))
            )
        )
        # squint: lower lid up
        sem.append(
            lambda p, s=s: (
                0.003
                * (
                    _bump(p, lower_lid * [s, 1, 1], np.array([0.011, 0.005, 0.02]))
                    * _ss((0.0265 - p[:, 1]) / 0.003)
                )[:, None]
                * _vec(z0(len(p)), 1 + z0(len(p)), z0(len(p)))
            )
        )
        # cheek puff
        sem.append(
            lambda p, s=s: (
                0.004
                * _bump(p, np.array([0.045 * s, -0.03, 0.06]), 0.02)[:, None]
                * _vec(0.8 * s + z0(len(p)), z0(len(p)), 0.6 + z0(len(p)))
            )
        )
        del m
    sem += [
        # pucker: lips forward, mouth narrower
        lambda p: (
            _bump(p, mouth, 0.014)[:, None] * _vec(-0.3 * p[:, 0], z0(len(p)), 0.004 + z0(len(p)))
        ),
        # mouth stretch
        lambda p: (
            _bump(p, mouth, 0.016)[:, None] * _vec(0.25 * p[:, 0], -0.001 + z0(len(p)), z0(len(p)))
        ),
        # upper lip raise / lower lip depress
        lambda p: (
            0.003
            * (_bump(p, lmk[51], 0.010) * up_lip(p))[:, None]
            * _vec(z0(len(p)), 1 + z0(len(p)), 0.2 + z0(len(p)))
        ),
        lambda p: (
            0.003
            * (_bump(p, lmk[57], 0.010) * (1 - up_lip(p)))[:, None]
            * _vec(z0(len(p)), -1 + z0(len(p)), 0.3 + z0(len(p)))
        ),
        # brow furrow
        lambda p: (
            0.003
            * _bump2(p, lmk[22], 0.010)[:, None]
            * _vec(-0.5 * _sx(p), -0.7 + z0(len(p)), z0(len(p)))
        ),
        # nose wrinkle
        lambda p: (
            0.002
            * _bump2(p, np.array([0.013, 0.005, 0.085]), 0.010)[:, None]
            * _vec(z0(len(p)), 1 + z0(len(p)), 0.2 + z0(len(p)))
        ),
        # chin raise, mouth shift
        lambda p: (
            0.002
            * _bump(p, lmk[8] + [0, 0.012, 0.004], 0.015)[:, None]
            * _vec(z0(len(p)), 1 + z0(len(p)), 0.3 + z0(len(p)))
        ),
        lambda p: (
            0.003 * _bump(p, mouth, 0.018)[:, None] * _vec(1 + z0(len(p)), z0(len(p)), z0(len(p)))
        ),
        # lip press (lips towards each other) and funnel
        lambda p: (
            0.0015
            * _bump(p, mouth, 0.010)[:, None]
            * _vec(
                z0(len(p)),
                np.where(up_lip(p) > 0.5, -1.0, 1.0) * np.abs(2 * up_lip(p) - 1),
                z0(len(p)),
            )
        ),
        lambda p: (
            0.002
            * _bump(p, mouth, 0.012)[:, None]
            * _vec(z0(len(p)), (p[:, 1] - sto) * 0.3 / 0.01, 1 + z0(len(p)))
        ),
    ]
    rnd = random_fields(rng, n_total - len(sem), amp0=0.0007, decay=8.0, wavelength=(0.05, 0.10))
    return sem + rnd


def sample(fields: list[Field], p: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) points -> (3N, K) raw matrix, x/y/z interleaved per vertex; rows scaled by mask (N,)."""
    cols = []
    for fn in fields:
        d = fn(p)
        if mask is not None:
            d = d * mask[:, None]
        cols.append(d.reshape(-1))
    return np.stack(cols, 1)


def principal_components(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """raw (3N, K) -> (components (3N, K) orthogonal with decreasing norms, mix (K, K)).

    components = raw @ mix; coefficients of the components ~ N(0, 1) iff raw weights ~ N(0, 1).
    Signs are fixed (largest-magnitude entry positive) so the result is deterministic.
    """
    gram = raw.T @ raw  # (K, K): eigen-decomposition instead of a (3N, K) SVD (much faster)
    ev, vec = np.linalg.eigh(gram)
    mix = vec[:, ::-1].copy()  # decreasing variance
    comp = raw @ mix
    idx = np.abs(comp).argmax(0)
    sign = np.sign(comp[idx, np.arange(comp.shape[1])])
    sign[sign == 0] = 1.0
    return comp * sign, mix * sign
