"""Write procedural scenes in the DAD-3DHeads layout (see datamodules/formats/dad.py).

Images are full frames (``image_size`` px, head inside), PNG. Annotations hold the FLAME
vertices (model space, metres), the OpenGL-style model-view / projection pair made from
the renderer's camera by ``facemodels.cameras.krt_to_gl`` (so the DAD projection formula
gives exactly the renderer's pixels), and the renderer's per-vertex visibility under the
suite-only key ``suite_visibility``. The test split has images + test.json only.
Item ids are 8-digit scene numbers; train / val / test draw disjoint scene numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from datamodules.formats import dad

__all__ = ["write_dad3dheads", "scene_attributes"]


def scene_attributes(yaw_deg: float, pitch_deg: float, expression: bool, occluded: bool) -> dict:
    """DAD attribute dict from scene facts (pose: front |yaw| < 30, sided < 60, else atypical)."""
    a = max(abs(yaw_deg), abs(pitch_deg))
    pose = "front" if a < 30 else ("sided" if a < 60 else "atypical")
    return {"quality": "hq", "gender": "undefined", "expression": bool(expression),
            "age": "young", "occlusions": bool(occluded), "pose": pose, "standard light": True}


def _render(sampler, model, i: int, size: int):
    from facemodels.sampler import render_scene

    scene = sampler.sample(i)
    return scene, render_scene(scene, model, size)


def write_dad3dheads(
    out: str | Path,
    n_train: int = 1500,
    n_val: int = 300,
    n_test: int = 50,
    image_size: int = 320,
    seed: int = 0,
    flame_dir: str | None = None,
) -> Path:
    """Write n_train / n_val / n_test procedural images in the DAD-3DHeads layout."""
    from facemodels.flame import FlameModel
    from facemodels.world import default_flame_dir

    from facemodels.cameras import krt_to_gl
    from facemodels.sampler import SceneSampler

    out = Path(out)
    fd = Path(flame_dir) if flame_dir else default_flame_dir()
    model = FlameModel(fd)
    sampler = SceneSampler(fd, seed)
    start = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        if split != "test":
            (out / split / "annotations").mkdir(parents=True, exist_ok=True)
        entries = []
        for i in range(start, start + n):
            scene, r = _render(sampler, model, i, image_size)
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
            entries.append(e)
        dad.write_index(out, split, entries)
        start += n
    return out


def _scene_facts(scene, r) -> tuple[float, float, bool, bool]:
    """(yaw deg, pitch deg, has expression, occluded) from whatever the scene exposes."""
    from facemodels.rotations import matrix_to_euler

    R_model = np.diag([1.0, -1.0, -1.0]) @ np.asarray(r.R, np.float64)
    yaw, pitch, _ = matrix_to_euler(torch.from_numpy(R_model)[None])[0].tolist()
    expr = getattr(scene, "expression", None)
    has_expr = expr is not None and float(np.abs(np.asarray(expr)).max(initial=0.0)) > 0.5
    occ = bool(getattr(scene, "occluders", None))
    return yaw, pitch, has_expr, occ
