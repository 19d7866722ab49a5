"""Published facial anthropometry and the same measurements taken on iBUG-68 landmarks.

A ``Measurement`` names a standard anthropometric distance (Farkas' landmark names, e.g. en-en),
the iBUG-68 points that stand for its two landmarks on a 3D face (a tuple of indices is their
mean), and published means / standard deviations per sex and source (``PUBLISHED``).

The absolute scale of a procedural head is a choice, so the comparison is made on ratios to the
biocular width ex-ex (iBUG 36-45): ``ratio = distance / ex-ex``. The published ratio's sd is
propagated from the two published sds as if the two distances were independent,
``sd_r = r sqrt((sd_a / a)^2 + (sd_ex / ex)^2)``; real face distances correlate positively,
so this overstates the spread of a ratio somewhat. Absolute values (mm) are kept alongside.

Correspondences that are approximate are named in ``note``: iBUG 31/35 are the nostril base
(near subalare), a few mm inside alare; iBUG 27 is the top of the nose bridge, about nasion;
iBUG 8 is the lowest chin point (gnathion / menton); the 3D contour points 4/12 stand for gonion
(the skin outline at the mandible angle, a little wider than a caliper go-go). Bizygomatic width
is not an iBUG-68 distance: ``zygomatic_width`` measures it on mesh vertices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Sources (short keys used in the table below).
SOURCES: dict[str, str] = {
    "farkas1994": (
        "Farkas LG (ed.), Anthropometry of the Head and Face, 2nd ed., Raven Press 1994: "
        "North American whites 18-25 y, the NAW norms of Farkas, Katic & Forrest, "
        "J Craniofac Surg 16(4):615-646, 2005 (paywalled; no copy of the table was at hand: "
        "see each row's check)"
    ),
    "jkamprs2019": (
        "Maxillofacial Plastic and Reconstructive Surgery 41 (2019), "
        "doi:10.1186/s40902-019-0191-7, Table 9 (Korean young adults, direct anthropometry), "
        "https://jkamprs.springeropen.com/articles/10.1186/s40902-019-0191-7/tables/9"
    ),
    "kerman": (
        "Bigonial width by calipers, 300 adults 18-30 y of Kerman, Iran, J Med Univ (Kerman), "
        "http://journal.jmu.ac.ir/article-1-489-en.html (abstract, in cm; no ex-ex: ratios use "
        "farkas1994's ex-ex of the same sex)"
    ),
    "jayaratne2013": (
        "Normative Findings for Periocular Anthropometric Measurements among Chinese Young "
        "Adults in Hong Kong, BioMed Research International 2013:821428, Table 2 (51 men, "
        "52 women, 3dMD stereophotogrammetry), http://www.hindawi.com/journals/bmri/2013/821428/tab2/"
    ),
}
# Where each row's numbers were checked against a copy of the published table (``Published.check``).
CHECKED_IN_SOURCE = "read in the source's own table (page named in SOURCES)"
CHECKED_AL_SEBAEI = (
    "matches Farkas 2005 NAW as reprinted in Al-Sebaei 2015, Head Face Med 11:6, Table 4 "
    "(PMC4369102), seen through a public transcription of that table, not the article itself"
)
UNCHECKED = ""  # transcribed from memory of Farkas 1994/2005; no copy of the table was found
# Sources shown beside the others but left out of the pooled ranges: measured by 3D
# stereophotogrammetry, where every pooled source measured with calipers on the face.
NOT_POOLED: frozenset[str] = frozenset({"jayaratne2013"})
# A source without its own biocular width takes it from this one (same sex).
FALLBACK_REFERENCE_SOURCE = "farkas1994"


@dataclass(frozen=True)
class Published:
    """One published mean and sd (mm) of a measurement for one sex in one source."""

    sex: str  # "male" | "female"
    mean_mm: float
    sd_mm: float
    source: str  # key of SOURCES
    check: str = UNCHECKED  # where the numbers were confirmed; "" = not confirmed


@dataclass(frozen=True)
class Measurement:
    """A distance between two (averaged) iBUG-68 point sets and its published values.

    ``a``/``b``: iBUG-68 indices whose mean is the landmark. ``axis``: None for the 3D
    Euclidean distance, or 0/1/2 for the absolute difference along x/y/z only.
    """

    name: str  # Farkas' name, e.g. "en-en"
    label: str
    a: tuple[int, ...]
    b: tuple[int, ...]
    published: tuple[Published, ...]
    axis: int | None = None
    note: str = ""


def _p(*rows: tuple) -> tuple[Published, ...]:
    """Rows ``(sex, mean_mm, sd_mm, source[, check])``; a row without a check takes the
    source's own-table check for sources read here, else UNCHECKED."""
    out = []
    for r in rows:
        check = r[4] if len(r) > 4 else (UNCHECKED if r[3] == "farkas1994" else CHECKED_IN_SOURCE)
        out.append(Published(r[0], r[1], r[2], r[3], check))
    return tuple(out)


_AS = CHECKED_AL_SEBAEI


REFERENCE = "ex-ex"
STOMION = (62, 66)  # midpoint of the inner lips on the midline

MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        "ex-ex", "biocular width", (36,), (45,),
        _p(("male", 91.2, 3.0, "farkas1994"), ("female", 87.8, 3.2, "farkas1994"),
           ("male", 98.2, 3.5, "jkamprs2019"), ("female", 94.4, 4.9, "jkamprs2019"),
           ("male", 93.00, 5.56, "jayaratne2013"), ("female", 88.39, 3.74, "jayaratne2013")),
    ),
    Measurement(
        "en-en", "intercanthal width", (39,), (42,),
        _p(("male", 33.3, 2.7, "farkas1994", _AS), ("female", 31.8, 2.3, "farkas1994", _AS),
           ("male", 32.2, 1.9, "jkamprs2019"), ("female", 32.1, 1.4, "jkamprs2019"),
           ("male", 40.61, 4.91, "jayaratne2013"), ("female", 38.27, 2.61, "jayaratne2013")),
    ),
    Measurement(
        "al-al", "nose width", (31,), (35,),
        _p(("male", 34.9, 2.1, "farkas1994", _AS), ("female", 31.4, 2.0, "farkas1994", _AS),
           ("male", 43.2, 3.8, "jkamprs2019"), ("female", 40.7, 3.7, "jkamprs2019")),
        note="iBUG 31/35 sit at the alar base, a few mm inside alare",
    ),
    Measurement(
        "ch-ch", "mouth width", (48,), (54,),
        _p(("male", 54.5, 3.2, "farkas1994"), ("female", 50.2, 3.2, "farkas1994"),
           ("male", 55.9, 3.3, "jkamprs2019"), ("female", 52.0, 4.0, "jkamprs2019")),
    ),
    Measurement(
        "go-go", "mandible width", (4,), (12,),
        _p(("male", 106.6, 5.9, "jkamprs2019"), ("female", 96.8, 2.9, "jkamprs2019"),
           ("male", 114.7, 8.6, "kerman"), ("female", 101.6, 9.1, "kerman")),
        note="3D contour points 4/12 (the skin outline at the mandible angle)",
    ),
    Measurement(
        "n-gn", "face height", (27,), (8,),
        _p(("male", 121.3, 6.8, "farkas1994"), ("female", 112.4, 5.2, "farkas1994"),
           ("female", 117.1, 5.4, "jkamprs2019")),
        note="iBUG 27 for nasion, 8 for gnathion; the Korean source measures n-me, and its "
             "men's n-me (101.8 mm) is left out: it disagrees with its own n-sn + sn-me (127.4), "
             "where the women's (117.1) equals theirs",
    ),
    Measurement(
        "n-sn", "nose height", (27,), (33,),
        _p(("male", 54.8, 3.3, "farkas1994", _AS), ("female", 50.6, 3.1, "farkas1994"),
           ("male", 51.0, 1.9, "jkamprs2019"), ("female", 47.6, 3.1, "jkamprs2019")),
    ),
    Measurement(
        "sn-gn", "lower face height", (33,), (8,),
        _p(("male", 72.6, 5.9, "farkas1994"), ("female", 64.3, 4.4, "farkas1994"),
           ("male", 76.4, 3.6, "jkamprs2019"), ("female", 69.5, 4.8, "jkamprs2019")),
        note="the Korean source measures sn-me",
    ),
    Measurement(
        "sn-sto", "upper lip height", (33,), STOMION,
        _p(("male", 22.3, 2.0, "farkas1994"), ("female", 19.9, 1.9, "farkas1994"),
           ("male", 25.5, 1.3, "jkamprs2019"), ("female", 24.0, 2.5, "jkamprs2019")),
    ),
    Measurement(
        "sn-prn", "nasal tip protrusion", (33,), (30,),
        _p(("male", 19.8, 2.0, "farkas1994"), ("female", 19.4, 1.6, "farkas1994")),
        note="3D distance subnasale (iBUG 33) to pronasale (iBUG 30)",
    ),
)
BY_NAME: dict[str, Measurement] = {m.name: m for m in MEASUREMENTS}


def _point(lmk: np.ndarray, idx: tuple[int, ...]) -> np.ndarray:
    return lmk[..., list(idx), :].mean(-2)


def distance(lmk: np.ndarray, m: Measurement) -> np.ndarray:
    """``lmk`` (..., 68, 3) in any unit -> (...) the measurement in the same unit."""
    d = _point(lmk, m.a) - _point(lmk, m.b)
    if m.axis is not None:
        return np.abs(d[..., m.axis])
    return np.linalg.norm(d, axis=-1)


def measure(lmk: np.ndarray) -> dict[str, np.ndarray]:
    """Every measurement of ``lmk`` (..., 68, 3): name -> (...) distances (unit of ``lmk``)."""
    return {m.name: distance(lmk, m) for m in MEASUREMENTS}


def ratios(lmk: np.ndarray) -> dict[str, np.ndarray]:
    """Every measurement divided by the biocular width ex-ex: name -> (...) ratios."""
    ref = distance(lmk, BY_NAME[REFERENCE])
    return {m.name: distance(lmk, m) / ref for m in MEASUREMENTS if m.name != REFERENCE}


def zygomatic_width(vertices: np.ndarray, lmk: np.ndarray) -> np.ndarray:
    """Bizygomatic width zy-zy on a mesh: (..., N, 3), (..., 68, 3) -> (...) same unit.

    Twice the largest |x| of the vertices in the band from the lower eyelids (iBUG 40/47) down
    one third of the way to the nose base (iBUG 33), in front of the jaw's contour point 0/16
    (so the ears are left out). Frontal model space: x across the face, y up, z forward.
    """
    top = lmk[..., [40, 47], 1].mean(-1)
    bottom = top - (top - lmk[..., 33, 1]) / 3.0
    front = 0.5 * (lmk[..., 0, 2] + lmk[..., 16, 2])
    y, z = vertices[..., 1], vertices[..., 2]
    band = (y <= top[..., None]) & (y >= bottom[..., None]) & (z >= front[..., None])
    return 2.0 * np.where(band, np.abs(vertices[..., 0]), 0.0).max(-1)


ZYGOMATIC = Measurement(
    "zy-zy", "face width", (), (),
    _p(("male", 137.1, 4.3, "farkas1994"), ("female", 129.9, 4.4, "farkas1994"),
       ("male", 133.8, 4.6, "jkamprs2019"), ("female", 130.1, 3.5, "jkamprs2019")),
    note="measured on mesh vertices (zygomatic_width), not on iBUG-68",
)


@dataclass(frozen=True)
class Range:
    """Published range of a measurement (a ratio to ex-ex, or millimetres), pooled over sexes
    and sources (not NOT_POOLED)."""

    name: str
    mean: float  # mean of the per-(sex, source) values
    sd: float  # mean of their sds (propagated, for a ratio)
    lo: float  # smallest mean - 2 sd over (sex, source)
    hi: float  # largest mean + 2 sd


def _pooled(name: str, values: list[float], sds: list[float]) -> Range:
    r, s = np.array(values), np.array(sds)
    return Range(name, float(r.mean()), float(s.mean()), float((r - 2 * s).min()),
                 float((r + 2 * s).max()))


def published_ratio(m: Measurement) -> Range:
    """The published ratio ``m / ex-ex`` (sd propagated as independent), pooled."""
    ref = {(p.sex, p.source): p for p in BY_NAME[REFERENCE].published}
    rs, sds = [], []
    for p in m.published:
        if p.source in NOT_POOLED:
            continue
        q = ref.get((p.sex, p.source)) or ref.get((p.sex, FALLBACK_REFERENCE_SOURCE))
        if q is None:
            continue
        r = p.mean_mm / q.mean_mm
        rs.append(r)
        sds.append(r * np.hypot(p.sd_mm / p.mean_mm, q.sd_mm / q.mean_mm))
    if not rs:
        raise ValueError(f"{m.name}: no published value shares a (sex, source) with {REFERENCE}")
    return _pooled(m.name, rs, sds)


def published_mm(m: Measurement) -> Range:
    """The published absolute size of ``m`` (mm), pooled like :func:`published_ratio`."""
    rows = [p for p in m.published if p.source not in NOT_POOLED]
    if not rows:
        raise ValueError(f"{m.name}: every published value is from a source left out of the pool")
    return _pooled(m.name, [p.mean_mm for p in rows], [p.sd_mm for p in rows])


def published_ranges() -> dict[str, Range]:
    """name -> published ratio range, for every measurement but the reference (and zy-zy)."""
    out = {m.name: published_ratio(m) for m in MEASUREMENTS if m.name != REFERENCE}
    out[ZYGOMATIC.name] = published_ratio(ZYGOMATIC)
    return out
