"""Write procedural scenes in the DAD-3DHeads layout (see datamodules/formats/dad.py).

Images are full frames (``image_size`` px, head inside), PNG. Annotations hold the FLAME
vertices (model space, metres), the OpenGL-style model-view / projection pair made from
the renderer's camera by ``facemodels.cameras.krt_to_gl`` (so the DAD projection formula
gives exactly the renderer's pixels), and the renderer's per-vertex visibility under the
suite-only key ``suite_visibility``. The test split has images + test.json only.
Item ids are 8-digit scene numbers; train / val / test draw disjoint scene numbers
(train 0.., then val, then test), scene i = ``SceneSampler(flame_dir, seed).sample(i)``.

Speed: FLAME is evaluated for a chunk of scenes in one batched forward (a single-scene
forward costs ~20x more per scene), then each scene is rendered by
``facemodels.sampler.render_scene`` with those vertices; ``n_jobs`` processes render
disjoint chunks in parallel (default: the CPU count, at most 16) as fresh interpreters. The output
does not depend on ``n_jobs`` (tested byte for byte).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from datamodules.formats import dad
from datamodules.writers.parallel import run_workers
from facemodels.cameras import krt_to_gl
from facemodels.flame import FlameModel
from facemodels.sampler import SceneSampler, render_scene, scene_geometry
from facemodels.world import default_flame_dir

__all__ = ["write_dad3dheads", "scene_attributes", "render_scenes"]

_CHUNK = 32


def scene_attributes(yaw_deg: float, pitch_deg: float, expression: bool, occluded: bool) -> dict:
    """DAD attribute dict from scene facts (pose: front |yaw| < 30, sided < 60, else atypical)."""
    a = max(abs(yaw_deg), abs(pitch_deg))
    pose = "front" if a < 30 else ("sided" if a < 60 else "atypical")
    return {"quality": "hq", "gender": "undefined", "expression": bool(expression),
            "age": "young", "occlusions": bool(occluded), "pose": pose, "standard light": True}


class _Recorder:
    """Stands in for the FLAME model inside ``scene_geometry``: records the call's
    arguments (the sampler's own mapping of a scene to FLAME inputs)."""

    def __init__(self, model):
        self.n_shape, self.n_exp = model.n_shape, model.n_exp
        self.calls: list[dict] = []

    def __call__(self, **kw):
        self.calls.append(kw)
        return SimpleNamespace(vertices=torch.zeros(1, 1, 3), landmarks68=torch.zeros(1, 68, 3))


class _Precomputed:
    """Returns the batched FLAME output of scene ``k`` when ``render_scene`` calls it."""

    def __init__(self, model, vertices: torch.Tensor, landmarks68: torch.Tensor):
        self.n_shape, self.n_exp = model.n_shape, model.n_exp
        self.v, self.l, self.k = vertices, landmarks68, 0

    def __call__(self, **_):
        return SimpleNamespace(vertices=self.v[self.k : self.k + 1], landmarks68=self.l[self.k : self.k + 1])


def render_scenes(sampler, model, indices: list[int], size: int) -> list:
    """[(scene, RenderedSample)] for scene ``indices``, FLAME evaluated in one batch."""

    scenes = [sampler.sample(i) for i in indices]
    rec = _Recorder(model)
    for s in scenes:
        scene_geometry(s, rec)
    batch = {k: torch.cat([c[k] for c in rec.calls]) for k in rec.calls[0]}
    with torch.no_grad():
        out = model(**batch)
    pre = _Precomputed(model, out.vertices, out.landmarks68)
    res = []
    for k, s in enumerate(scenes):
        pre.k = k
        res.append((s, render_scene(s, pre, size)))
    return res


def _write_chunk(job: tuple) -> list[dict]:
    """Render + write (split, scene index) items, FLAME batched by ``chunk``; returns their
    (split, index entry) pairs."""
    out, items, image_size, seed, flame_dir, chunk = job

    model = _model(flame_dir)
    sampler = SceneSampler(flame_dir, seed)
    entries = []
    # one torch thread, as in the worker processes: torch's threaded reductions could change
    # float roundings with the thread count
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _render_items(out, items, image_size, chunk, model, sampler, entries)
    finally:
        torch.set_num_threads(n_threads)
    return entries


def _render_items(out: Path, items: list, image_size: int, chunk: int, model, sampler, entries: list) -> None:

    for s0 in range(0, len(items), chunk):
        part = items[s0 : s0 + chunk]
        for (split, i), (scene, r) in zip(part, render_scenes(sampler, model, [i for _, i in part], image_size),
                                          strict=True):
            item = f"{i:08d}"
            Image.fromarray(r.image).save(out / split / "images" / f"{item}.png", compress_level=1)
            e = {"item_id": item, "img_path": f"{split}/images/{item}.png",
                 "bbox": [float(v) for v in np.asarray(r.bbox)],
                 "attributes": scene_attributes(*_scene_facts(scene, r))}
            if split != "test":
                K, R, t = (torch.as_tensor(np.asarray(x, np.float64))[None] for x in (r.K, r.R, r.t))
                MV, P = krt_to_gl(K, R, t, image_size, image_size)
                e["annotation_path"] = f"{split}/annotations/{item}.json"
                dad.write_annotation(out / e["annotation_path"], np.asarray(r.vertices),
                                     MV[0].numpy(), P[0].numpy(), np.asarray(r.visibility))
            entries.append((split, e))


_MODELS: dict[str, object] = {}


def _model(flame_dir: str):

    if flame_dir not in _MODELS:
        _MODELS[flame_dir] = FlameModel(flame_dir)
    return _MODELS[flame_dir]


def _run_workers(out: Path, items: list, image_size: int, seed: int, fd: str, n_jobs: int,
                 chunk: int) -> list:
    """Worker w takes chunks w, w + n_jobs, ... (see datamodules/writers/parallel.py)."""
    chunks = [items[k : k + chunk] for k in range(0, len(items), chunk)]
    jobs = [{"out": str(out), "items": [it for c in chunks[w::n_jobs] for it in c], "image_size": image_size,
             "seed": seed, "flame_dir": fd, "chunk": chunk} for w in range(n_jobs)]
    res = run_workers(_job, jobs, out / ".jobs")
    return [[tuple(x) for x in r] for r in res]


def _job(spec: dict) -> list:
    items = [tuple(x) for x in spec["items"]]
    return _write_chunk((Path(spec["out"]), items, spec["image_size"], spec["seed"], spec["flame_dir"],
                         spec["chunk"]))


def write_dad3dheads(
    out: str | Path,
    n_train: int = 1500,
    n_val: int = 300,
    n_test: int = 50,
    image_size: int = 320,
    seed: int = 0,
    flame_dir: str | None = None,
    n_jobs: int | None = None,
    chunk: int = _CHUNK,
) -> Path:
    """Write n_train / n_val / n_test procedural images in the DAD-3DHeads layout.

    n_jobs: worker processes (None -> the CPU count, at most 16; 1 -> in this process; at most one
    per ``chunk`` items); does not change the output. chunk: scenes per batched FLAME forward
    (the batch size can change float32 roundings of the vertices, ~1e-7 m).
    """

    out = Path(out)
    fd = str(Path(flame_dir) if flame_dir else default_flame_dir())
    items, start = [], 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        if split != "test":
            (out / split / "annotations").mkdir(parents=True, exist_ok=True)
        items += [(split, i) for i in range(start, start + n)]
        start += n
    n_jobs = min(16, os.cpu_count() or 1) if n_jobs is None else max(1, int(n_jobs))
    chunk = max(1, int(chunk))
    n_jobs = min(n_jobs, max(1, len(items) // chunk))
    if n_jobs == 1:
        results = [_write_chunk((out, items, image_size, seed, fd, chunk))]
    else:
        results = _run_workers(out, items, image_size, seed, fd, n_jobs, chunk)
    by_split: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for res in results:
        for split, e in res:
            by_split[split].append(e)
    for split, entries in by_split.items():
        dad.write_index(out, split, sorted(entries, key=lambda e: e["item_id"]))
    return out


def _scene_facts(scene, r) -> tuple[float, float, bool, bool]:
    """(yaw deg, pitch deg, has expression, occluded) of a scene."""
    has_expr = float(np.abs(np.asarray(scene.expression)).max(initial=0.0)) > 0.5 or float(scene.jaw_pose[0]) > 0.05
    return float(scene.yaw), float(scene.pitch), has_expr, bool(scene.occluders)

