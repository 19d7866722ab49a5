"""README pictures: a contact sheet of rendered samples and the mean head with its landmarks.

Usage: ``python -m experiments.pictures --out docs/images [--flame-dir DIR] [--seed 0]``
writes ``contact_sheet.png`` (24 samples across poses and expressions) and
``mean_head.png`` (the mean head, frontal and profile, iBUG-68 landmarks drawn: filled dots
visible, hollow dots self-occluded).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from facemodels.flame import FlameModel
from facemodels.render import BackgroundSpec, Lighting
from facemodels.sampler import RenderedSample, SamplerConfig, Scene, SceneSampler, render_scene
from facemodels.world import default_flame_dir


def _nearest_vertex_visibility(r: RenderedSample) -> np.ndarray:
    """(68,) bool: a landmark counts as visible when its nearest mesh vertex (3D) is."""
    d = np.linalg.norm(r.landmarks68[:, None, :] - r.vertices[None, :, :], axis=-1)  # (68, N)
    return r.visibility[d.argmin(1)]


def draw_landmarks(
    img: np.ndarray, pts: np.ndarray, visible: np.ndarray | None = None, radius: float = 2.5
) -> Image.Image:
    """Draw (68, 2) pixel landmarks on an (H, W, 3) uint8 image; groups get their own colours."""
    im = Image.fromarray(img)
    dr = ImageDraw.Draw(im)
    groups = [
        (0, 17, (255, 220, 0)),
        (17, 27, (255, 120, 0)),
        (27, 36, (0, 200, 255)),
        (36, 48, (0, 255, 120)),
        (48, 68, (255, 60, 160)),
    ]
    for a, b, col in groups:
        for k in range(a, b):
            x, y = float(pts[k, 0]), float(pts[k, 1])
            box = (x - radius, y - radius, x + radius, y + radius)
            if visible is None or visible[k]:
                dr.ellipse(box, fill=col, outline=(0, 0, 0))
            else:
                dr.ellipse(box, outline=col)
    return im


def _mean_scene(sampler: SceneSampler, yaw: float, index: int = 0, identity: bool = False) -> Scene:
    """Scene ``index`` of the sampler, neutral, lit and framed alike; its identity kept when
    ``identity`` (else the mean head)."""
    s = sampler.sample(index)
    return replace(
        s,
        shape=s.shape if identity else np.zeros_like(s.shape),
        expression=np.zeros_like(s.expression),
        jaw_pose=np.zeros(3),
        eye_pose=np.zeros(6),
        neck_pose=np.zeros(3),
        yaw=yaw,
        pitch=0.0,
        roll=0.0,
        focal_scale=1.2,
        fill=0.8,
        shift=np.zeros(2),
        lighting=Lighting(direction=(0.3, -0.3, -0.9), ambient=0.45, diffuse=0.6),
        albedo=replace(s.albedo, skin_tone=0.25, skin_redness=0.2, variation=0.0),
        background=BackgroundSpec("gradient", (0.93, 0.93, 0.95), (0.75, 0.78, 0.85), angle=1.57),
        occluders=[],
        ssaa=2,
    )


def mean_head_picture(
    sampler: SceneSampler, model, size: int = 384, yaws: tuple[float, ...] = (0.0, 80.0)
) -> Image.Image:
    """Renders of the mean head side by side, one per yaw (degrees), landmarks drawn."""
    tiles = []
    for yaw in yaws:
        r = render_scene(_mean_scene(sampler, yaw), model, size)
        tiles.append(
            draw_landmarks(
                r.image, r.landmarks68_px, _nearest_vertex_visibility(r), radius=size / 110
            )
        )
    sheet = Image.new("RGB", (size * len(tiles), size))
    for k, t in enumerate(tiles):
        sheet.paste(t, (k * size, 0))
    return sheet


def identity_sheet(
    sampler: SceneSampler, model, n: int = 12, cols: int = 6, tile: int = 160, yaw: float = 20.0
) -> Image.Image:
    """The sampler's first n identities, neutral, lit and posed alike (yaw degrees)."""
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile))
    for k in range(n):
        r = render_scene(_mean_scene(sampler, yaw, index=k, identity=True), model, tile)
        sheet.paste(Image.fromarray(r.image), ((k % cols) * tile, (k // cols) * tile))
    return sheet


def contact_sheet(
    sampler: SceneSampler, model, n: int = 24, cols: int = 6, tile: int = 128
) -> Image.Image:
    """n samples ordered by yaw, chosen from the first 4n scenes to spread over -90..90 degrees."""
    scenes = [sampler.sample(i) for i in range(4 * n)]
    targets = np.linspace(-88, 88, n)
    chosen: list[int] = []
    for ty in targets:
        best = min(
            (i for i in range(len(scenes)) if i not in chosen),
            key=lambda i: abs(scenes[i].yaw - ty),
        )
        chosen.append(best)
    rows = (n + cols - 1) // cols
    sheet = Image.new("RGB", (cols * tile, rows * tile))
    for k, i in enumerate(chosen):
        r = render_scene(scenes[i], model, tile)
        sheet.paste(Image.fromarray(r.image), ((k % cols) * tile, (k // cols) * tile))
    return sheet


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/images", help="output folder")
    ap.add_argument(
        "--flame-dir", default=None, help="FLAME-format folder (default: the procedural world)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)


    fd = Path(args.flame_dir) if args.flame_dir else default_flame_dir()
    model = FlameModel(fd)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sampler = SceneSampler(fd, args.seed, SamplerConfig(ssaa=2))
    sheet = contact_sheet(sampler, model)
    # 256-colour palette keeps the PNG small (README budget ~300 KB).
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        out / "contact_sheet.png", optimize=True
    )
    mean_head_picture(sampler, model).save(out / "mean_head.png", optimize=True)
    for name in ("contact_sheet.png", "mean_head.png"):
        print(f"wrote {out / name} ({(out / name).stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
