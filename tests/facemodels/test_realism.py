"""The procedural face models against published anthropometry (facemodels.anthropometry): the
mean face's proportions inside the published ranges and near their means, the identity spread
within a factor of the published sd, for the FLAME-format and the BFM-format models alike."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.reports.realism import (
    MAX_OPENING_MM,
    markdown,
    model_stats,
    mouth_gaps,
    mouth_lines,
    plot,
)
from facemodels import anthropometry as AN
from facemodels.procedural.builder import cached_world, write_bfm
from facemodels.proportions import bfm_faces, flame_faces, proportions

pytest.importorskip("smplx")


@pytest.fixture(scope="module")
def bfm_dir(tmp_path_factory):
    return write_bfm(cached_world(0), tmp_path_factory.mktemp("bfm"))


@pytest.fixture(scope="module", params=["flame", "bfm"])
def model_proportions(request, flame_dir, bfm_dir):
    faces = flame_faces(flame_dir, n=150) if request.param == "flame" else bfm_faces(bfm_dir, n=150)
    return request.param, proportions(faces)


def test_distance_and_ratio_hand_computed():
    lmk = np.zeros((68, 3))
    lmk[36], lmk[45] = [-0.045, 0.0, 0.0], [0.045, 0.0, 0.0]  # ex-ex 9 cm
    lmk[39], lmk[42] = [-0.016, 0.0, 0.01], [0.016, 0.0, 0.01]  # en-en 3.2 cm
    lmk[33], lmk[30] = [0.0, -0.02, 0.09], [0.0, -0.01, 0.108]  # sn-prn sqrt(1 + 1.8^2) cm
    lmk[62], lmk[66] = [0.0, -0.041, 0.0], [0.0, -0.045, 0.0]  # stomion (0, -0.043, 0)
    r = AN.ratios(lmk)
    assert r["en-en"] == pytest.approx(0.032 / 0.090)
    assert AN.distance(lmk, AN.BY_NAME["sn-prn"]) == pytest.approx(np.hypot(0.01, 0.018))
    assert AN.distance(lmk, AN.BY_NAME["sn-sto"]) == pytest.approx(np.hypot(0.023, 0.09))
    # a batch of two faces, the second twice the size: ratios unchanged
    both = np.stack([lmk, 2 * lmk])
    np.testing.assert_allclose(AN.ratios(both)["en-en"], [0.032 / 0.090] * 2)


def test_published_ratio_propagates_sds():
    m = AN.Measurement("x-x", "test", (0,), (1,), AN._p(("male", 45.6, 2.0, "farkas1994")))
    rng = AN.published_ratio(m)
    ex = next(p for p in AN.BY_NAME["ex-ex"].published
              if p.sex == "male" and p.source == "farkas1994")
    r = 45.6 / ex.mean_mm
    sd = r * np.hypot(2.0 / 45.6, ex.sd_mm / ex.mean_mm)
    assert rng.mean == pytest.approx(r) and rng.sd == pytest.approx(sd)
    assert rng.lo == pytest.approx(r - 2 * sd) and rng.hi == pytest.approx(r + 2 * sd)
    # every published row names a known source
    for meas in (*AN.MEASUREMENTS, AN.ZYGOMATIC):
        assert all(p.source in AN.SOURCES and p.sex in ("male", "female") for p in meas.published)
        # every row says whether (and where) its numbers were checked against a copy of the table
        assert all(p.check in (AN.CHECKED_IN_SOURCE, AN.CHECKED_AL_SEBAEI, AN.UNCHECKED)
                   for p in meas.published)
    # rows of the sources read here carry that check; Farkas rows only where corroborated
    assert all(p.check == AN.CHECKED_IN_SOURCE for p in AN.BY_NAME["go-go"].published)
    assert AN.BY_NAME["ex-ex"].published[0].check == AN.UNCHECKED


def test_published_mm_pools_rows_hand_computed():
    m = AN.Measurement("x-x", "test", (0,), (1,), AN._p(
        ("male", 50.0, 2.0, "farkas1994"), ("female", 46.0, 3.0, "jkamprs2019"),
        ("male", 80.0, 1.0, "jayaratne2013")))  # a NOT_POOLED source: left out
    rng = AN.published_mm(m)
    assert (rng.mean, rng.sd, rng.lo, rng.hi) == pytest.approx((48.0, 2.5, 40.0, 54.0))
    only_unpooled = AN.Measurement("y-y", "test", (0,), (1,), AN._p(("male", 1.0, 0.1, "jayaratne2013")))
    with pytest.raises(ValueError, match="y-y"):
        AN.published_mm(only_unpooled)


def test_not_pooled_sources_leave_the_range_unchanged():
    m = AN.BY_NAME["en-en"]
    assert any(p.source in AN.NOT_POOLED for p in m.published)
    kept = AN.Measurement(m.name, m.label, m.a, m.b,
                          tuple(p for p in m.published if p.source not in AN.NOT_POOLED))
    assert AN.published_ratio(kept) == AN.published_ratio(m)


def test_mean_face_inside_published_ranges(model_proportions):
    name, props = model_proportions
    for k, rng in AN.published_ranges().items():
        mean = props[k][0]
        assert rng.lo < mean < rng.hi, (name, k, mean, rng)
        assert abs(mean - rng.mean) < 2.0 * rng.sd, (name, k, mean, rng)


def test_identity_spread_like_published(model_proportions):
    name, props = model_proportions
    for k, rng in AN.published_ranges().items():
        sd = props[k][1:].std()
        assert rng.sd / 2.0 < sd < 2.0 * rng.sd, (name, k, sd, rng.sd)


def test_realism_report_table_and_plot(tmp_path, flame_dir, bfm_dir):
    """experiments.reports.realism: one table row per published range with the models' mean-face
    ratios as measured, every published row listed with its check, and the plot written."""
    stats = {"FLAME-format": model_stats(flame_faces(flame_dir, n=20)),
             "BFM-format": model_stats(bfm_faces(bfm_dir, n=20))}
    props = proportions(flame_faces(flame_dir, n=0))
    assert stats["FLAME-format"]["en-en"]["mean_ratio"] == pytest.approx(props["en-en"][0])
    assert stats["FLAME-format"]["ex-ex"]["mean_ratio"] == 1.0
    images = {"plot": "images/p.png", "mean": "images/m.png", "identities": "images/i.png"}
    text = markdown(stats, 20, images)
    for name, rng in AN.published_ranges().items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} ("))
        assert f"[{rng.lo:.3f}, {rng.hi:.3f}]" in row
        assert f"{stats['BFM-format'][name]['mean_ratio']:.3f}" in row
    n_rows = sum(len(m.published) for m in (*AN.MEASUREMENTS, AN.ZYGOMATIC))
    assert text.count("**unconfirmed** |") + text.count("checked in the source |") \
        + text.count("matches Al-Sebaei 2015 Table 4 |") == n_rows
    out = plot(stats, tmp_path / "images" / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_realism_report_mouths(flame_dir, bfm_dir):
    """Every data writer's faces open their mouths over a realistic range: a good share open
    (inner-lip gap > 5 mm), others closed, none beyond the published maximal opening; the report's
    mouth table carries the measured medians."""
    gaps = mouth_gaps(flame_dir, bfm_dir, n=120, seed=1)
    assert len(gaps) == 3
    for name, g in gaps.items():
        assert g.shape == (120,) and 0.3 < (g > 5.0).mean() < 0.95, (name, np.percentile(g, [10, 50, 90]))
        assert 12.0 < g.max() < MAX_OPENING_MM[1], (name, g.max())
    text = "\n".join(mouth_lines(gaps))
    for name, g in gaps.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {np.median(g):.1f} |" in row and f"| {(g > 5.0).mean():.0%} |" in row
