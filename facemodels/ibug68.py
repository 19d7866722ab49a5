"""iBUG-68 conventions: point groups, parts and the horizontal-flip permutation.

Sides are the SUBJECT's: points 36-41 are the subject's right eye (image left for a
frontal face), 42-47 the left eye. ``IBUG68_FLIP`` is the standard hand-written
permutation: ``landmarks_flipped = mirrored(landmarks)[IBUG68_FLIP]``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IBUG68_GROUPS", "IBUG68_PARTS", "IBUG68_FLIP"]

IBUG68_GROUPS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "brows": slice(17, 27),
    "nose": slice(27, 36),
    "eyes": slice(36, 48),
    "mouth": slice(48, 68),
}
IBUG68_PARTS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "right_brow": slice(17, 22),
    "left_brow": slice(22, 27),
    "nose_bridge": slice(27, 31),
    "nostrils": slice(31, 36),
    "right_eye": slice(36, 42),
    "left_eye": slice(42, 48),
    "outer_lips": slice(48, 60),
    "inner_lips": slice(60, 68),
}


def _ibug68_flip() -> np.ndarray:
    pairs = (
        [(i, 16 - i) for i in range(8)]  # jaw 0<->16 ... 7<->9, 8 centre (chin)
        + [(17 + i, 26 - i) for i in range(5)]  # brows 17<->26 ... 21<->22
        + [(31, 35), (32, 34)]  # nostrils, 33 centre; bridge 27-30 centre
        + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]  # eyes
        + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]  # outer lips; 51, 57 centre
        + [(60, 64), (61, 63), (65, 67)]  # inner lips; 62, 66 centre
    )
    perm = np.arange(68)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


IBUG68_FLIP: np.ndarray = _ibug68_flip()
IBUG68_FLIP.setflags(write=False)
