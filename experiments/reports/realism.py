"""The procedural face models beside published anthropometry: write docs/realism.md (`make realism`).

    python -m experiments.reports.realism [--n 200] [--out docs/realism.md]

Each measurement of facemodels.anthropometry as published (per source and sex: mean and sd in mm, and
as a ratio to the biocular width ex-ex) beside the procedural FLAME-format and BFM-format models' mean
face and identity spread (facemodels.proportions: ``n`` identities from each model's own prior, neutral
expression); a plot of the same; the mean face in three views with its iBUG-68 landmarks; a sample of
identities (experiments.pictures' renderings); the mouths of the data writers' faces (inner-lip gaps)
beside the published maximal mouth opening.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from datamodules.landmarks3d import bfm_landmarks68, flame_landmarks68
from datamodules.writers.threeddfa import load_bfm, sample_expression
from experiments.harness.resolvers import REPO_ROOT
from experiments.pictures import identity_sheet, mean_head_picture
from facemodels import anthropometry as AN
from facemodels.flame import FlameModel
from facemodels.proportions import ModelFaces, absolute_mm, bfm_faces, flame_faces, proportions
from facemodels.sampler import SamplerConfig, SceneSampler
from facemodels.world import default_bfm_dir, default_flame_dir

MODELS = ("FLAME-format", "BFM-format")
LANDMARKS3D_CONFIG = REPO_ROOT / "configs" / "data" / "landmarks3d.yaml"
# Maximal (interincisal) mouth opening of healthy adults, as commonly reported: ~40-50 mm.
MAX_OPENING_MM = (40.0, 50.0)
OPEN_MM = 5.0  # an inner-lip gap above this counts as an open mouth


def mouth_gaps(flame_dir: Path, bfm_dir: Path, n: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Inner-lip gaps (iBUG 62-66, mm; (n,) each) of the faces each data writer draws: the lifting
    data's FLAME- and BFM-format sources (configs/data/landmarks3d.yaml's kwargs) and the 300W-LP /
    AFLW2000-3D-format writers' Shape_Para / Exp_Para (threeddfa.sample_expression) on the BFM keypoints."""
    cfg = OmegaConf.load(LANDMARKS3D_CONFIG)
    fk, bk = OmegaConf.to_container(cfg.flame_kwargs), OmegaConf.to_container(cfg.bfm_kwargs)
    out = {}
    for name, lm in (("FLAME-format lifting data", flame_landmarks68(n, seed, folder=str(flame_dir), **fk)),
                     ("BFM-format lifting data", bfm_landmarks68(n, seed, folder=str(bfm_dir), **bk))):
        out[name] = (lm[:, 66] - lm[:, 62]).double().norm(dim=-1).numpy() * 1e3
    bfm, rng = load_bfm(bfm_dir), np.random.default_rng(seed)
    gaps = []
    for _ in range(n):
        shape = rng.normal(0.0, 1.0, bfm.shape_ev.size) * bfm.shape_ev
        v = bfm.vertices(shape, sample_expression(rng, bfm))[bfm.keypoints]  # (68, 3) um
        gaps.append(np.linalg.norm(v[66] - v[62]) * 1e-3)
    out["300W-LP / AFLW2000-3D-format writers"] = np.array(gaps)
    return out


def mouth_lines(gaps: dict[str, np.ndarray]) -> list[str]:
    """The report's mouth section: per source the inner-lip gap's quartiles, 90th percentile and
    maximum (mm) and the share of open mouths (gap > OPEN_MM)."""
    lines = [
        "## Mouths",
        "",
        "Inner-lip gap (iBUG 62-66, mm) of the faces the data writers draw (expressions neutral to strong;",
        "`mouth_gaps`): the FLAME-format head opens its mouth with its jaw joint, the BFM-format one with its",
        "expression basis' mouth-opening mode (the same jaw). Published: healthy adults open their mouths",
        f"{MAX_OPENING_MM[0]:.0f}-{MAX_OPENING_MM[1]:.0f} mm at most (interincisal); speech and facial "
        "expressions much less. Closed lips",
        "of the mean faces are ~3 mm apart at these landmarks.",
        "",
        f"| faces | n | median | quartiles | 90 % | max | open (> {OPEN_MM:g} mm) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, g in gaps.items():
        q1, q2, q3, q9 = np.percentile(g, [25, 50, 75, 90])
        lines.append(f"| {name} | {g.size} | {q2:.1f} | {q1:.1f}-{q3:.1f} | {q9:.1f} | {g.max():.1f} | "
                     f"{(g > OPEN_MM).mean():.0%} |")
    return [*lines, ""]


def _all_measurements() -> list[AN.Measurement]:
    return [*AN.MEASUREMENTS, AN.ZYGOMATIC]


def model_stats(faces: ModelFaces) -> dict[str, dict[str, float]]:
    """name -> {mean_ratio, sd_ratio, mean_mm, sd_mm}: the mean face's value (index 0) and the
    identities' sd (indices 1:), as ratios to ex-ex and in mm."""
    r, mm = proportions(faces), absolute_mm(faces)
    out = {}
    for m in _all_measurements():
        ratio = r.get(m.name, np.ones(len(faces.landmarks68)))  # ex-ex / ex-ex
        out[m.name] = {"mean_ratio": float(ratio[0]), "sd_ratio": float(ratio[1:].std()),
                       "mean_mm": float(mm[m.name][0]), "sd_mm": float(mm[m.name][1:].std())}
    return out


def published_rows(m: AN.Measurement) -> list[tuple[AN.Published, float | None, float | None]]:
    """(row, ratio, ratio sd) per published row of ``m``; the ratio against the same source's and sex's
    ex-ex (else the fallback source's), None for ex-ex itself."""
    ref = {(p.sex, p.source): p for p in AN.BY_NAME[AN.REFERENCE].published}
    out = []
    for p in m.published:
        q = ref.get((p.sex, p.source)) or ref.get((p.sex, AN.FALLBACK_REFERENCE_SOURCE))
        if m.name == AN.REFERENCE or q is None:
            out.append((p, None, None))
            continue
        r = p.mean_mm / q.mean_mm
        out.append((p, r, r * float(np.hypot(p.sd_mm / p.mean_mm, q.sd_mm / q.mean_mm))))
    return out


def plot(stats: dict[str, dict[str, dict[str, float]]], out: Path) -> Path:
    """Ratios to ex-ex: published rows (mean +- sd, grey; hollow: not pooled), the pooled range
    (band) and each model's mean face +- identity sd -> PNG at ``out``."""
    import matplotlib  # the backend must be chosen before pyplot is imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranges = AN.published_ranges()
    names = list(ranges)
    fig, axes = plt.subplots(1, len(names), figsize=(1.55 * len(names), 4.2))
    colours = {"FLAME-format": "tab:blue", "BFM-format": "tab:orange"}
    for ax, name in zip(axes, names, strict=True):
        m = AN.ZYGOMATIC if name == AN.ZYGOMATIC.name else AN.BY_NAME[name]
        rng = ranges[name]
        ax.axhspan(rng.lo, rng.hi, color="0.92", zorder=0)
        ax.axhline(rng.mean, color="0.6", lw=1, zorder=1)
        rows = [(p, r, s) for p, r, s in published_rows(m) if r is not None]
        for k, (p, r, s) in enumerate(rows):
            x = -0.4 + 0.35 * k / max(len(rows) - 1, 1)
            pooled = p.source not in AN.NOT_POOLED
            ax.errorbar([x], [r], [2 * s], fmt="o" if pooled else "D", ms=4, color="0.35",
                        mfc="0.35" if pooled and p.check else "white", capsize=2, lw=1)
        for k, model in enumerate(MODELS):
            st = stats[model][name]
            ax.errorbar([0.25 + 0.2 * k], [st["mean_ratio"]], [2 * st["sd_ratio"]], fmt="s", ms=5,
                        color=colours[model], capsize=2, lw=1.2)
        ax.set_xlim(-0.6, 0.6)
        ax.set_xticks([])
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].set_ylabel("ratio to ex-ex (mean +- 2 sd)")
    handles = [plt.Line2D([], [], marker="o", ls="", color="0.35", mfc="0.35", label="published (checked)"),
               plt.Line2D([], [], marker="o", ls="", color="0.35", mfc="white", label="published (unconfirmed)"),
               plt.Line2D([], [], marker="D", ls="", color="0.35", mfc="white", label="published, not pooled"),
               *[plt.Line2D([], [], marker="s", ls="", color=c, label=f"procedural {k}") for k, c in colours.items()]]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _check_word(p: AN.Published) -> str:
    if p.check == AN.CHECKED_IN_SOURCE:
        return "checked in the source"
    if p.check == AN.CHECKED_AL_SEBAEI:
        return "matches Al-Sebaei 2015 Table 4"
    return "**unconfirmed**"


def markdown(stats: dict[str, dict[str, dict[str, float]]], n: int, images: dict[str, str],
             mouths: dict[str, np.ndarray] | None = None) -> str:
    ranges = AN.published_ranges()
    lines = [
        "# The procedural faces beside published anthropometry",
        "",
        "Written by `make realism` (`python -m experiments.reports.realism`). Published values:",
        "`facemodels/anthropometry.py`; the models' faces: `facemodels/proportions.py` (the mean face,",
        f"and {n} identities drawn from each model's own prior, neutral expression). The absolute size of",
        "a procedural head is a choice, so proportions are compared as ratios to the biocular width ex-ex",
        "(iBUG 36-45); a published ratio's sd is propagated from its two sds as if independent (an",
        "overstatement: real face distances correlate).",
        "",
        "## Proportions",
        "",
        "Published: the pooled range is the smallest mean - 2 sd to the largest mean + 2 sd over the pooled",
        "(source, sex) rows; pooled mean and sd: the rows' means. Procedural: the mean face's ratio, and the",
        "sd over identities. `inside`: the mean face inside the pooled range and within 2 pooled sd of the",
        "pooled mean, and the identity sd within a factor 2 of the pooled sd (what tests/facemodels/",
        "test_realism.py holds).",
        "",
        "| measurement | published ratio: mean (sd) [range] | FLAME-format: mean face (identity sd) | "
        "BFM-format: mean face (identity sd) | inside |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rng in ranges.items():
        cells, ok = [], True
        for model in MODELS:
            st = stats[model][name]
            cells.append(f"{st['mean_ratio']:.3f} ({st['sd_ratio']:.3f})")
            ok &= rng.lo < st["mean_ratio"] < rng.hi and abs(st["mean_ratio"] - rng.mean) < 2 * rng.sd
            ok &= rng.sd / 2 < st["sd_ratio"] < 2 * rng.sd
        m = AN.ZYGOMATIC if name == AN.ZYGOMATIC.name else AN.BY_NAME[name]
        lines.append(f"| {name} ({m.label}) | {rng.mean:.3f} ({rng.sd:.3f}) [{rng.lo:.3f}, {rng.hi:.3f}] | "
                     f"{cells[0]} | {cells[1]} | {'yes' if ok else '**no**'} |")
    far = []
    for name, rng in ranges.items():
        z = [(stats[m][name]["mean_ratio"] - rng.mean) / rng.sd for m in MODELS]
        if max(abs(v) for v in z) > 1.0:
            far.append(f"{name} ({', '.join(f'{v:+.1f}' for v in z)})")
    lines += [
        "",
        "More than one pooled sd from the pooled mean (FLAME-format, BFM-format; in pooled sd): "
        + (", ".join(far) if far else "none") + ".",
        "",
        f"![proportions]({images['plot']})",
        "",
        "Grey: published rows (filled: checked against a copy of the table; white: unconfirmed; diamonds:",
        "shown, not pooled), the band the pooled range, the line the pooled mean. Squares: the procedural",
        "mean face +- 2 identity sd.",
        "",
        "## Every published row",
        "",
        "In mm, beside the procedural mean face in mm (the FLAME-format folder's scale; BFM-format in",
        "brackets) and the identity sd.",
        "",
        "| measurement | source | sex | published mm: mean (sd) | ratio to ex-ex (sd) | pooled | check | "
        "procedural mm: mean face (identity sd) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in _all_measurements():
        f, b = stats["FLAME-format"][m.name], stats["BFM-format"][m.name]
        proc = f"{f['mean_mm']:.1f} ({f['sd_mm']:.1f}) [{b['mean_mm']:.1f} ({b['sd_mm']:.1f})]"
        for k, (p, r, s) in enumerate(published_rows(m)):
            ratio = "-" if r is None else f"{r:.3f} ({s:.3f})"
            lines.append(f"| {m.name if k == 0 else ''} | {p.source} | {p.sex} | {p.mean_mm:.1f} ({p.sd_mm:.1f}) | "
                         f"{ratio} | {'no' if p.source in AN.NOT_POOLED else 'yes'} | {_check_word(p)} | "
                         f"{proc if k == 0 else ''} |")
    lines += ["", "Notes on the iBUG-68 stand-ins:", ""]
    lines += [f"- {m.name}: {m.note}" for m in _all_measurements() if m.note]
    lines += ["", "## Sources", ""]
    lines += [f"- `{k}`: {v}" for k, v in AN.SOURCES.items()]
    lines += [
        "",
        "Checks: *checked in the source*: the numbers were read in the source's own table (the page named",
        f"above); *matches Al-Sebaei 2015 Table 4*: {AN.CHECKED_AL_SEBAEI}; *unconfirmed*: transcribed from",
        "memory of Farkas' tables, no copy of which was at hand; treat them as approximate.",
        "",
        *(mouth_lines(mouths) if mouths is not None else []),
        "## The mean face",
        "",
        "Frontal, three-quarter and profile, with its iBUG-68 landmarks (filled: visible, hollow: hidden).",
        "",
        f"![mean face]({images['mean']})",
        "",
        "## Identities",
        "",
        "The FLAME-format model's first identities of the picture sampler (seed 0), neutral, posed and lit alike.",
        "",
        f"![identities]({images['identities']})",
        "",
    ]
    return "\n".join(lines)


def write(out: Path, n: int = 200, seed: int = 0, pictures: bool = True) -> Path:
    """Measure both default procedural models and write ``out`` (and its images under
    ``out.parent / 'images'``)."""
    stats = {"FLAME-format": model_stats(flame_faces(default_flame_dir(), n=n, seed=seed)),
             "BFM-format": model_stats(bfm_faces(default_bfm_dir(), n=n, seed=seed))}
    img_dir = out.parent / "images"
    images = {"plot": "images/realism_proportions.png", "mean": "images/realism_mean_face.png",
              "identities": "images/realism_identities.png"}
    plot(stats, out.parent / images["plot"])
    if pictures:
        fd = default_flame_dir()
        model, sampler = FlameModel(fd), SceneSampler(fd, seed, SamplerConfig(ssaa=2))
        img_dir.mkdir(parents=True, exist_ok=True)
        mean_head_picture(sampler, model, size=320, yaws=(0.0, 45.0, 90.0)).save(
            out.parent / images["mean"], optimize=True)
        identity_sheet(sampler, model, n=12, cols=6, tile=160).save(out.parent / images["identities"], optimize=True)
    mouths = mouth_gaps(default_flame_dir(), default_bfm_dir(), n=n, seed=seed)
    out.write_text(markdown(stats, n, images, mouths))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200, help="identities per model")
    ap.add_argument("--out", default=str(REPO_ROOT / "docs" / "realism.md"))
    args = ap.parse_args(argv)
    print(f"wrote {write(Path(args.out), n=args.n)}")


if __name__ == "__main__":
    main()
