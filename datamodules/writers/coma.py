"""Write procedural CoMA: 12 subjects x 12 expressions, each a sequence neutral -> extreme.

``<out>/FaceTalk_<date>_<id>_TA/<expression>/<expression>.<frame:06d>.ply`` (binary
little-endian PLY as psbody.mesh writes by default - whether the published files are binary
or ascii is unconfirmed; the reader takes both), FLAME topology, metres. Each subject has its own FLAME shape; each expression follows a
fixed path in expression-coefficient + jaw space (seeded by the expression name), scaled
by an ease-in ramp from 0 (neutral, frame 0) to 1 (extreme, last frame), with a per-subject
intensity. Vertices are placed in a scanner world: translated by (x0, y0, z0) with y0 in
[1.40, 1.55] m per subject and small per-frame head motion.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch

from datamodules.formats.coma import COMA_EXPRESSIONS, coma_path
from facemodels.flame import FlameModel
from facemodels.world import default_flame_dir
from fitting.mesh_io import write_ply

__all__ = ["write_coma", "SUBJECTS"]

SUBJECTS = tuple(f"FaceTalk_1707{25 + k // 4:02d}_{137 + 13 * k:05d}_TA" for k in range(12))


def _expression_path(name: str, n_expr: int) -> tuple[np.ndarray, float]:
    """Fixed direction in expression space (n_expr,) and jaw opening (rad) of an expression."""
    r = np.random.default_rng(zlib.crc32(name.encode()))
    direction = r.normal(0.0, 1.0, n_expr) / np.sqrt(np.arange(1, n_expr + 1))
    direction *= 2.5 / np.abs(direction).max()
    jaw = {"mouth_open": 0.35, "mouth_extreme": 0.45, "bareteeth": 0.08, "mouth_down": 0.15,
           "mouth_middle": 0.12}.get(name, 0.03)
    return direction, jaw


def write_coma(
    out: str | Path,
    n_subjects: int = 12,
    n_expressions: int = 12,
    n_frames: int = 10,
    seed: int = 0,
    flame_dir: str | None = None,
) -> Path:
    """Write n_subjects x n_expressions sequences of n_frames meshes each."""

    out = Path(out)
    fd = Path(flame_dir) if flame_dir else default_flame_dir()
    model = FlameModel(fd)
    faces = model.faces.cpu().numpy().astype(np.int64)  # (9976, 3)
    n_shape, n_expr = model.n_shape, model.n_exp
    rng = np.random.default_rng(seed)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n_frames))  # (T,) 0 -> 1
    for subject in SUBJECTS[:n_subjects]:
        betas = torch.tensor(rng.normal(0, 1, (1, n_shape)), dtype=torch.float32)
        origin = np.array([rng.uniform(-0.05, 0.05), rng.uniform(1.40, 1.55), rng.uniform(-0.05, 0.05)])
        intensity = rng.uniform(0.7, 1.0)
        for expr_name in COMA_EXPRESSIONS[:n_expressions]:
            direction, jaw = _expression_path(expr_name, n_expr)
            e = torch.tensor(ramp[:, None] * direction[None] * intensity, dtype=torch.float32)
            jaw_pose = torch.zeros(n_frames, 3)
            jaw_pose[:, 0] = torch.tensor(ramp * jaw * intensity, dtype=torch.float32)
            with torch.no_grad():
                verts = _forward(model, betas.expand(n_frames, -1), e, jaw_pose)  # (T, 5023, 3)
            wobble = rng.normal(0, 0.002, (n_frames, 3)).cumsum(0)
            for f in range(n_frames):
                p = coma_path(out, subject, expr_name, f)
                p.parent.mkdir(parents=True, exist_ok=True)
                write_ply(p, verts[f] + origin + wobble[f], faces)
    return out


def _forward(model, betas, expression, jaw_pose) -> np.ndarray:
    """(T, 5023, 3) metres: ``facemodels.flame.FlameModel`` for a batch of T frames."""
    out = model(shape=betas, expression=expression, jaw_pose=jaw_pose)
    return out.vertices.detach().cpu().numpy().astype(np.float64)
