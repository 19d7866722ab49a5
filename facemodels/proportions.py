"""The anthropometric proportions of a face model: its mean face and sampled identities.

Works on any FLAME-format folder or BFM-format folder (real or procedural): identities are drawn
from the model's own prior (FLAME: shape coefficients ~ N(0, 1); BFM: Shape_Para ~
N(0, shapeEV^2)), neutral expression, and measured with ``facemodels.anthropometry``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from facemodels import anthropometry as AN
from facemodels.bfm import LinearBFM
from facemodels.flame import FlameModel


@dataclass
class ModelFaces:
    """Neutral faces of a model: the mean (index 0) then ``n`` sampled identities."""

    vertices: np.ndarray  # (1 + n, N, 3) metres
    landmarks68: np.ndarray  # (1 + n, 68, 3) metres


def flame_faces(folder: str | os.PathLike | None = None, n: int = 200, seed: int = 0) -> ModelFaces:
    """The FLAME-format model's mean and ``n`` identities (all 300 shape coefficients)."""
    model = FlameModel(folder, n_shape=300, n_exp=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    betas = torch.cat([torch.zeros(1, model.n_shape, dtype=torch.float64),
                       torch.randn(n, model.n_shape, generator=g, dtype=torch.float64)])
    with torch.no_grad():
        out = model(shape=betas)
    return ModelFaces(out.vertices.numpy(), out.landmarks68.numpy())


def bfm_faces(folder: str | os.PathLike | None = None, n: int = 200, seed: int = 0) -> ModelFaces:
    """The BFM-format model's mean and ``n`` identities (all identity components)."""
    model = LinearBFM(folder, dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, model.n_shape, generator=g, dtype=torch.float64)
    para = torch.cat([torch.zeros(1, model.n_shape, dtype=torch.float64), z * model.shape_std])
    with torch.no_grad():
        v = model(para) * 1e-6  # micrometres -> metres
    return ModelFaces(v.numpy(), v[:, model.keypoints68].numpy())


def proportions(faces: ModelFaces) -> dict[str, np.ndarray]:
    """name -> (1 + n,) ratios to ex-ex (iBUG-68 measurements and zy-zy on the mesh)."""
    out = AN.ratios(faces.landmarks68)
    ref = AN.distance(faces.landmarks68, AN.BY_NAME[AN.REFERENCE])
    out[AN.ZYGOMATIC.name] = AN.zygomatic_width(faces.vertices, faces.landmarks68) / ref
    return out


def absolute_mm(faces: ModelFaces) -> dict[str, np.ndarray]:
    """name -> (1 + n,) distances in millimetres (ex-ex included)."""
    out = {k: 1e3 * v for k, v in AN.measure(faces.landmarks68).items()}
    out[AN.ZYGOMATIC.name] = 1e3 * AN.zygomatic_width(faces.vertices, faces.landmarks68)
    return out
