"""Anatomical constants of the procedural head (metres, FLAME model space).

Model space: right-handed, y up, z out of the face, x towards the subject's left. The subject's
right half therefore has x < 0; iBUG landmark 0 (image left in a frontal photo) is on it.

Numbers follow published adult anthropometry (Farkas et al., mixed-sex means, rounded):
head breadth eu-eu ~15.2 cm, head length g-op ~19 cm, face height n-gn ~12 cm,
intercanthal en-en ~3.2 cm, biocular ex-ex ~9 cm, nose width al-al ~3.4 cm,
nose height n-sn ~5 cm, nose protrusion sn-prn ~1.8-2 cm, mouth width ch-ch ~5 cm,
lower face sn-gn ~7 cm, interpupillary ~6.2 cm, eyeball radius ~12 mm.
"""

from __future__ import annotations

import numpy as np

from facemodels.ibug68 import IBUG68_FLIP  # landmark i of a mirrored face is IBUG68_FLIP[i]

# Right-half (x <= 0) and midline landmarks: index -> (x, y, guide z). Guide z shapes the face
# height field; None means "take z from the cranium/cheek body at (x, y)".
_RIGHT: dict[int, tuple[float, float, float | None]] = {
    # jaw, ear to chin (0..8)
    0: (-0.0705, 0.020, None),
    1: (-0.070, 0.000, None),
    2: (-0.0685, -0.020, None),
    3: (-0.0635, -0.040, 0.031),
    4: (-0.0555, -0.058, 0.042),
    5: (-0.0452, -0.072, 0.054),
    6: (-0.033, -0.082, 0.064),
    7: (-0.017, -0.088, 0.074),
    8: (0.000, -0.090, 0.078),
    # right brow, outer -> inner (17..21)
    17: (-0.056, 0.041, 0.052),
    18: (-0.046, 0.048, 0.066),
    19: (-0.034, 0.051, 0.077),
    20: (-0.022, 0.049, 0.083),
    21: (-0.011, 0.045, 0.087),
    # nose bridge (27..30), nose base (31..33)
    27: (0.000, 0.030, 0.084),
    28: (0.000, 0.016, 0.091),
    29: (0.000, 0.003, 0.0975),
    30: (0.000, -0.010, 0.1055),
    31: (-0.016, -0.015, 0.0765),
    32: (-0.008, -0.018, 0.0845),
    33: (0.000, -0.020, 0.0875),
    # right eye (36 outer corner, 37-38 upper lid, 39 inner corner, 40-41 lower lid)
    36: (-0.045, 0.027, 0.056),
    37: (-0.037, 0.031, 0.070),
    38: (-0.024, 0.031, 0.071),
    39: (-0.016, 0.026, 0.068),
    40: (-0.024, 0.022, 0.070),
    41: (-0.037, 0.022, 0.0695),
    # outer lips: 48 right corner, 49-50 upper right, 51 upper centre; 57 lower centre, 58-59 lower right
    48: (-0.025, -0.042, 0.0705),
    49: (-0.016, -0.036, 0.0825),
    50: (-0.006, -0.031, 0.0885),
    51: (0.000, -0.032, 0.0895),
    57: (0.000, -0.055, 0.0855),
    58: (-0.007, -0.054, 0.0845),
    59: (-0.016, -0.050, 0.0805),
    # inner lips: 60 right corner, 61 upper right, 62 upper centre, 66 lower centre, 67 lower right
    60: (-0.021, -0.0425, 0.0735),
    61: (-0.009, -0.0410, 0.0835),
    62: (0.000, -0.0410, 0.0855),
    66: (0.000, -0.0440, 0.0845),
    67: (-0.009, -0.0440, 0.0825),
}


def landmark_guides() -> np.ndarray:
    """All 68 iBUG landmarks as (68, 3) (x, y, guide z); guide z is NaN where the body decides."""
    out = np.full((68, 3), np.nan)
    for i, (x, y, z) in _RIGHT.items():
        out[i] = (x, y, np.nan if z is None else z)
    for i in range(68):
        j = IBUG68_FLIP[i]
        if np.isnan(out[i, 0]):
            out[i] = out[j] * np.array([-1.0, 1.0, 1.0])
    assert not np.isnan(out[:, :2]).any()
    return out


# Extra control points of the face height field (right half + midline; mirrored automatically).
# (x, y, z) with z=None -> "body front minus 4 mm" (lets the cranium decide there).
FACE_CONTROL_RIGHT: list[tuple[float, float, float | None]] = [
    # forehead / temples: just behind the cranium so the skull shapes them
    (0.000, 0.068, None),
    (-0.025, 0.068, None),
    (-0.050, 0.062, None),
    (-0.064, 0.040, None),
    (-0.070, 0.010, None),
    (0.000, 0.045, 0.088),  # glabella
    (-0.018, 0.040, 0.081),  # upper lid fold
    (-0.031, 0.041, 0.075),
    (-0.045, 0.037, 0.062),
    # nose sides and tip width
    (-0.009, 0.016, 0.083),
    (-0.011, 0.003, 0.087),
    (-0.012, -0.007, 0.0895),
    (-0.007, -0.010, 0.0995),
    (-0.021, -0.011, 0.0695),  # alar crease
    # eye socket interior (the eyeball shows through)
    (-0.031, 0.0265, 0.061),
    (-0.038, 0.0265, 0.059),
    (-0.024, 0.0265, 0.062),
    # cheeks
    (-0.031, 0.012, 0.069),
    (-0.045, 0.012, 0.061),
    (-0.056, 0.014, 0.046),
    (-0.040, -0.005, 0.070),
    (-0.028, -0.014, 0.077),
    (-0.046, -0.025, 0.062),
    (-0.033, -0.030, 0.074),  # nasolabial
    (-0.034, -0.045, 0.0655),
    (-0.045, -0.050, 0.055),
    (-0.025, -0.063, 0.074),
    (-0.013, -0.076, 0.080),
    # philtrum, chin
    (0.000, -0.026, 0.0865),
    (0.000, -0.066, 0.080),  # mentolabial sulcus
    (0.000, -0.078, 0.083),  # pogonion
]

# Cranium + neck body: per-height cross-sections. Above Y_EQ the cranium is an ellipsoidal cap.
Y_EQ = 0.045
Y_TOP = 0.135  # vertex (top of head)
CRANIUM = {"a": 0.076, "zm": -0.020, "cf": 0.098, "cb": 0.085}
# y, half-width a, widest-point z zm, front semi-axis cf, back semi-axis cb (below Y_EQ).
# The front semi-axis stays behind the face below the brows: the face block shapes the face.
BODY_PROFILE = np.array(
    [
        [0.045, 0.076, -0.020, 0.098, 0.085],
        [0.030, 0.0745, -0.017, 0.080, 0.086],
        [0.000, 0.0718, -0.010, 0.066, 0.093],
        [-0.020, 0.0705, -0.010, 0.062, 0.085],
        [-0.040, 0.0660, -0.008, 0.058, 0.076],
        [-0.065, 0.058, -0.008, 0.054, 0.064],
        [-0.090, 0.055, -0.008, 0.052, 0.058],
        [-0.300, 0.055, -0.008, 0.052, 0.058],
    ]
)
# The front half of each cross-section is a superellipse |x/a|^n + |(z - zm)/cf|^n = 1: n = 2 on
# the cranium cap and the neck, FRONT_EXPONENT between the heights FRONT_EXPONENT_BAND (metres),
# so the cheeks and the mandible stay broad in front of the ears as on real heads.
FRONT_EXPONENT = 2.6
FRONT_EXPONENT_BAND = (-0.10, 0.040)

# Ears: ellipsoids (centre x>0 for the subject's left ear; mirrored for the right).
EAR_CENTRE = np.array([0.076, 0.004, -0.026])
EAR_AXES = np.array([0.014, 0.030, 0.017])

# Eyeballs (subject's left has x > 0).
EYE_RADIUS = 0.0125
LEFT_EYE_CENTRE = np.array([0.031, 0.0265, 0.0600])
RIGHT_EYE_CENTRE = LEFT_EYE_CENTRE * np.array([-1.0, 1.0, 1.0])

# Joints (model space, metres). The jaw axis joins the two temporomandibular joints.
TMJ = np.array([0.066, 0.004, -0.010])

# Ray-casting centre of the head parametrisation (inside the head, on the midline).
CENTRE = np.array([0.0, 0.010, -0.005])

# Hairline / region heights (metres).
HAIRLINE_Y = 0.074
NECK_Y = -0.108
