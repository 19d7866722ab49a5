"""FLAME: a batch-agnostic smplx wrapper with iBUG-68 landmarks.

The folder is read and validated by :mod:`facemodels.flame_files` before smplx loads it
(smplx itself unpickles the model file; real FLAME pickles hold chumpy arrays, read here as
numpy without chumpy installed). Units: metres; model space y up, z out of the face, x to
the subject's left. Landmarks: iBUG-68 = cat(17 dynamic contour, 51 static), as smplx
computes them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from facemodels.flame_files import (
    N_JOINTS,
    ChumpyFreeUnpickler,
    FlameFormatError,
    load_flame_arrays,
    unstub_dict,
)
from facemodels.world import default_flame_dir

__all__ = ["FlameOutput", "FlameModel"]


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------
@dataclass
class FlameOutput:
    vertices: Tensor  # (B, 5023, 3) metres
    landmarks68: Tensor  # (B, 68, 3) metres, iBUG order (17 contour + 51 static)
    joints: Tensor  # (B, 5, 3) metres (root, neck, jaw, left eye, right eye)


class FlameModel(nn.Module):
    """smplx.FLAME with any batch size at call time and iBUG-68 landmarks.

    Args:
        folder: FLAME folder (default: ``facemodels.world.default_flame_dir()``).
        n_shape: identity coefficients used (<= 300).
        n_exp: expression coefficients used (<= 100).
    """

    def __init__(
        self,
        folder: str | os.PathLike | None = None,
        n_shape: int = 300,
        n_exp: int = 100,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        import smplx

        if folder is None:
            folder = default_flame_dir()
        arr = load_flame_arrays(folder)  # validates before smplx asserts
        self.folder = Path(folder)
        self.n_shape = min(int(n_shape), arr.n_shape)
        self.n_exp = min(int(n_exp), arr.n_expression)
        ext = arr.model_file.suffix.lstrip(".")
        gender = arr.model_file.stem.replace("FLAME_", "").lower()
        if gender not in ("neutral", "male", "female"):
            raise FlameFormatError(f"{arr.model_file}: smplx needs FLAME_NEUTRAL/MALE/FEMALE.{ext}")
        with _chumpy_free():
            self.flame = smplx.FLAME(
                model_path=str(self.folder),
                gender=gender,
                ext=ext,
                num_betas=self.n_shape,
                num_expression_coeffs=self.n_exp,
                use_face_contour=True,
                batch_size=1,
                dtype=dtype,
            )
        self.register_buffer(
            "faces", torch.as_tensor(arr.faces, dtype=torch.long), persistent=False
        )

    def forward(
        self,
        shape: Tensor | None = None,
        expression: Tensor | None = None,
        global_orient: Tensor | None = None,
        neck_pose: Tensor | None = None,
        jaw_pose: Tensor | None = None,
        eye_pose: Tensor | None = None,
        transl: Tensor | None = None,
    ) -> FlameOutput:
        """shape (B, n_shape), expression (B, n_exp), global_orient/neck_pose/jaw_pose (B, 3)
        axis-angle rad, eye_pose (B, 6) = [left eye, right eye], transl (B, 3) metres.
        Missing arguments are zeros; B is taken from the given ones (1 if none)."""
        given = [
            t
            for t in (shape, expression, global_orient, neck_pose, jaw_pose, eye_pose, transl)
            if t is not None
        ]
        b = given[0].shape[0] if given else 1
        ref = self.flame.v_template
        dev, dt = ref.device, ref.dtype

        def arg(t: Tensor | None, n: int, name: str) -> Tensor:
            if t is None:
                return torch.zeros(b, n, device=dev, dtype=dt)
            if t.ndim != 2 or t.shape[0] != b or t.shape[1] != n:
                raise ValueError(
                    f"FlameModel: {name} has shape {tuple(t.shape)}, expected ({b}, {n})"
                )
            return t.to(device=dev, dtype=dt)

        eyes = arg(eye_pose, 6, "eye_pose")
        out = self.flame(
            betas=arg(shape, self.n_shape, "shape"),
            expression=arg(expression, self.n_exp, "expression"),
            global_orient=arg(global_orient, 3, "global_orient"),
            neck_pose=arg(neck_pose, 3, "neck_pose"),
            jaw_pose=arg(jaw_pose, 3, "jaw_pose"),
            leye_pose=eyes[:, :3],
            reye_pose=eyes[:, 3:],
            transl=arg(transl, 3, "transl"),
        )
        j = out.joints  # (B, 5 + 51 + 17, 3)
        lmk = torch.cat([j[:, N_JOINTS + 51 :], j[:, N_JOINTS : N_JOINTS + 51]], dim=1)
        return FlameOutput(vertices=out.vertices, landmarks68=lmk, joints=j[:, :N_JOINTS])


class _ChumpyFreePickle:
    """Stands in for the ``pickle`` module inside ``smplx.body_models`` while a model loads, so
    real FLAME pickles holding chumpy arrays load as numpy without chumpy installed."""

    @staticmethod
    def load(fh: object, encoding: str = "latin1", **kwargs: object) -> object:
        return unstub_dict(ChumpyFreeUnpickler(fh, encoding=encoding).load())


class _chumpy_free:  # noqa: N801 - a context manager
    def __enter__(self) -> None:
        import smplx.body_models as bm

        self._bm, self._saved = bm, bm.pickle
        bm.pickle = _ChumpyFreePickle  # type: ignore[assignment]

    def __exit__(self, *exc: object) -> None:
        self._bm.pickle = self._saved
