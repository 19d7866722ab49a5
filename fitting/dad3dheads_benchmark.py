"""The DAD-3DHeads benchmark as released (PinataFarms/DAD-3DHeads, ``dad_3dheads_benchmark/``):
its ground-truth and submission json formats, its vertex sets, and a scorer that computes
its four metrics on a (ground truth, submission) pair with the functions of fitting.mesh_metrics.

Ground truth (``generate_gt.py``): a json list, one dict per image::

    {"id": item_id, "bbox": [x, y, w, h] px, "vertices": (5023, 3) model space,
     "model_view_matrix": (4, 4), "projection_matrix": (4, 4), "image_height": H,
     ["attributes": {...}]}

Submission (the benchmark README; ``benchmark.py`` reads it): a json dict item_id -> ::

    {"68_landmarks_2d": (68, 2) original-image px, "N_landmarks_3d": (N, 3),
     "7_landmarks_3d": (7, 3), "rotation_matrix": (3, 3)}

``N_landmarks_3d`` and ``7_landmarks_3d`` must be in one frame whose z grows away from the
camera (Z5 compares their z with the GT's ``-(MV v)``; the suite writes the cv camera frame);
``rotation_matrix`` is the cv model -> camera rotation (the benchmark compares it with
``diag(1, -1, -1) MV[:3, :3]``).

Metrics per image, as ``benchmark.py`` computes them (docs/PROTOCOLS.md):
- ``nme``: mean_l ||gt68 - pred68|| / sqrt(bbox_w bbox_h) * 100, gt68 = the iBUG-68 points
  of the GT vertices projected with MV, P and y -> H - y;
- ``z5``: :func:`fitting.mesh_metrics.z_n_accuracy` ``rule="released"`` on the head vertices of
  ``-(MV v)`` and of ``N_landmarks_3d``; ``z5_paper``: the same with ``rule="paper"``;
- ``chamfer``: :func:`fitting.mesh_metrics.chamfer_dad` with ``reflection=True`` on the face
  vertices of ``MV v`` and all of ``N_landmarks_3d``, aligned by ``7_landmarks_3d``;
- ``pose_error``: ||I - R_pred R_gt^T||_F.
Images without a submission are skipped, as the benchmark skips them.

Vertex sets: the benchmark reads ``head_indices.npy`` and ``flame_indices/face.npy`` from the
DAD-3DHeads folder ``model_training/model/static`` (:func:`dad_vertex_sets`); the procedural
FLAME folder holds equivalents under the same names (facemodels/procedural/masks.py).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .mesh_metrics import chamfer_dad, nme_box, pose_error, z_n_accuracy

__all__ = [
    "SUBMISSION_KEYS",
    "HEAD_INDICES_FILE",
    "FACE_INDICES_FILE",
    "DadVertexSets",
    "dad_vertex_sets",
    "find_static_dir",
    "resolve_static_dir",
    "write_submission",
    "read_submission",
    "write_ground_truth",
    "ground_truth_from_root",
    "read_ground_truth",
    "gt_rotation",
    "project_gl",
    "score_submission",
]

SUBMISSION_KEYS = ("68_landmarks_2d", "N_landmarks_3d", "7_landmarks_3d", "rotation_matrix")
HEAD_INDICES_FILE = "head_indices.npy"
FACE_INDICES_FILE = "flame_indices/face.npy"
_STATIC_SUBDIR = Path("model_training") / "model" / "static"
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class DadVertexSets:
    """The benchmark's vertex subsets of FLAME (int64 indices) and the folder they came from."""

    head: np.ndarray  # Z5 (real FLAME: 3669, the list of face_w_ears.npy)
    face: np.ndarray  # Chamfer (real FLAME: 2094)
    source: str


def find_static_dir(path: str | os.PathLike) -> Path | None:
    """:func:`resolve_static_dir`, or None where there is no ``head_indices.npy``."""
    p = Path(path)
    for cand in (p, p / _STATIC_SUBDIR, p.parent / _STATIC_SUBDIR):
        if (cand / HEAD_INDICES_FILE).is_file():
            return cand
    return None


def resolve_static_dir(path: str | os.PathLike) -> Path:
    """The folder holding ``head_indices.npy``: ``path`` itself, or ``path``'s
    ``model_training/model/static`` (``path`` = a DAD-3DHeads checkout or its benchmark folder)."""
    p = Path(path)
    found = find_static_dir(p)
    if found is not None:
        return found
    raise FileNotFoundError(
        f"{p}: no {HEAD_INDICES_FILE} there nor under {_STATIC_SUBDIR}; point at DAD-3DHeads' "
        f"model_training/model/static (holds {HEAD_INDICES_FILE} and {FACE_INDICES_FILE}) or at the "
        "checkout's root"
    )


def dad_vertex_sets(static_dir: str | os.PathLike, n_vertices: int = 5023) -> DadVertexSets:
    """Read the benchmark's head (Z5) and face (Chamfer) vertex indices from ``static_dir``
    (:func:`resolve_static_dir`; the procedural FLAME folder holds the same two files)."""
    d = resolve_static_dir(static_dir)
    out = []
    for name in (HEAD_INDICES_FILE, FACE_INDICES_FILE):
        path = d / name
        if not path.is_file():
            raise FileNotFoundError(f"{d}: missing {name} (the DAD-3DHeads benchmark's vertex set)")
        idx = np.asarray(np.load(path), dtype=np.int64).reshape(-1)
        if idx.size == 0 or idx.min() < 0 or idx.max() >= n_vertices:
            raise ValueError(f"{path}: expected vertex indices in [0, {n_vertices}), got {idx.size} values")
        out.append(idx)
    return DadVertexSets(head=out[0], face=out[1], source=str(d))


def _rows(a) -> list:
    return np.asarray(a.detach().cpu() if torch.is_tensor(a) else a, dtype=np.float64).tolist()


def write_submission(
    path: str | Path,
    ids: Sequence[str],
    landmarks68_2d,
    vertices3d,
    seven3d,
    rotation,
    append: dict | None = None,
) -> Path:
    """Write the benchmark's submission json.

    Args:
        ids: (B,) item ids.  landmarks68_2d: (B, 68, 2) original-image px.
        vertices3d: (B, N, 3) camera frame (z away from the camera).  seven3d: (B, 7, 3) same
        frame.  rotation: (B, 3, 3) cv model -> camera.
        append: entries already written (item_id -> dict), kept before the new ones.
    """
    sub = dict(append or {})
    for i, item in enumerate(ids):
        sub[str(item)] = {
            "68_landmarks_2d": _rows(landmarks68_2d[i]),
            "N_landmarks_3d": _rows(vertices3d[i]),
            "7_landmarks_3d": _rows(seven3d[i]),
            "rotation_matrix": _rows(rotation[i]),
        }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sub))
    return path


def read_submission(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read a submission json -> item_id -> {key: float64 array} (the keys present)."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a submission is a dict item_id -> prediction, got {type(raw).__name__}")
    shapes = {"68_landmarks_2d": (68, 2), "7_landmarks_3d": (7, 3), "rotation_matrix": (3, 3)}
    out = {}
    for item, pred in raw.items():
        entry = {}
        for k in SUBMISSION_KEYS:
            if k not in pred:
                continue
            a = np.asarray(pred[k], np.float64)
            want = shapes.get(k)
            if (want is not None and a.shape != want) or (want is None and (a.ndim != 2 or a.shape[1] != 3)):
                raise ValueError(f"{path}: item {item!r} key {k!r} has shape {a.shape}, expected {want or '(N, 3)'}")
            entry[k] = a
        out[str(item)] = entry
    return out


def write_ground_truth(path: str | Path, items: Sequence[dict]) -> Path:
    """Write the benchmark's ground-truth json (``generate_gt.py``'s format) from dicts with
    id, bbox, vertices (5023, 3), model_view_matrix, projection_matrix, image_height
    [, attributes]."""
    out = []
    for it in items:
        d = {
            "id": str(it["id"]),
            "bbox": _rows(it["bbox"]) if isinstance(it["bbox"], np.ndarray) else list(it["bbox"]),
            "vertices": _rows(it["vertices"]),
            "model_view_matrix": _rows(it["model_view_matrix"]),
            "projection_matrix": _rows(it["projection_matrix"]),
            "image_height": int(it["image_height"]),
        }
        if it.get("attributes") is not None:
            d["attributes"] = it["attributes"]
        out.append(d)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return path


def ground_truth_from_root(root: str | Path, split: str = "val", with_attributes: bool = False) -> list[dict]:
    """The benchmark's ground-truth entries of a DAD-3DHeads split, as ``generate_gt.py``
    builds them: ``<root>/<split>/<split>.json`` in index order, the annotation
    ``<root>/<split>/annotations/<item_id>.json``, the height of ``<root>/<split>/images/<item_id>.png``.
    ``root`` is the ``DAD-3DHeadsDataset`` folder (generate_gt's ``base_path`` + ``/DAD-3DHeadsDataset``)."""
    root = Path(root)
    index = json.loads((root / split / f"{split}.json").read_text())
    items = []
    for el in index:
        item = str(el["item_id"])
        anno = json.loads((root / split / "annotations" / f"{item}.json").read_text())
        with Image.open(root / split / "images" / f"{item}.png") as im:
            height = im.size[1]
        d = {"id": item, "bbox": el["bbox"], "vertices": anno["vertices"],
             "model_view_matrix": anno["model_view_matrix"], "projection_matrix": anno["projection_matrix"],
             "image_height": height}
        if with_attributes:
            d["attributes"] = el["attributes"]
        items.append(d)
    return items


def read_ground_truth(path: str | Path) -> list[dict]:
    """Read a ground-truth json -> list of dicts with float64 arrays (vertices (5023, 3),
    model_view_matrix / projection_matrix (4, 4), bbox (4,)), id, image_height, attributes."""
    raw = json.loads(Path(path).read_text())
    if not isinstance(raw, list):
        raise ValueError(f"{path}: the ground truth is a list of dicts, got {type(raw).__name__}")
    out = []
    for i, d in enumerate(raw):
        for k in ("id", "bbox", "vertices", "model_view_matrix", "projection_matrix", "image_height"):
            if k not in d:
                raise ValueError(f"{path}: entry {i} lacks key {k!r}")
        out.append({
            "id": str(d["id"]),
            "bbox": np.asarray(d["bbox"], np.float64),
            "vertices": np.asarray(d["vertices"], np.float64),
            "model_view_matrix": np.asarray(d["model_view_matrix"], np.float64),
            "projection_matrix": np.asarray(d["projection_matrix"], np.float64),
            "image_height": int(d["image_height"]),
            "attributes": d.get("attributes"),
        })
    return out


def gt_rotation(model_view: np.ndarray) -> np.ndarray:
    """The benchmark's GT rotation: ``(diag(1, -1, -1, 1) MV)[:3, :3]`` (cv model -> camera)."""
    return _GL_TO_CV @ np.asarray(model_view)[..., :3, :3]


def project_gl(points: np.ndarray, model_view: np.ndarray, projection: np.ndarray, height: int) -> np.ndarray:
    """(N, 3) model space -> (N, 2) image px: ``p = P MV [v, 1]``, ``xy = p[:2] / p[3]``, y -> H - y."""
    hom = np.concatenate([points, np.ones((len(points), 1))], 1)
    p = hom @ (np.asarray(projection) @ np.asarray(model_view)).T
    xy = p[:, :2] / p[:, 3:4]
    return np.stack([xy[:, 0], height - xy[:, 1]], 1)


def score_submission(
    ground_truth: Sequence[dict],
    submission: dict[str, dict[str, np.ndarray]],
    landmarks68: Callable[[Tensor], Tensor],
    sets: DadVertexSets,
    dtype: torch.dtype = torch.float64,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Score a submission as ``benchmark.py`` does (the functions of fitting.mesh_metrics).

    Args:
        ground_truth: :func:`read_ground_truth` or :func:`ground_truth_from_root` entries.  submission: :func:`read_submission`.
        landmarks68: (B, 5023, 3) -> (B, 68, 3) iBUG-68 points (FLAME's embeddings, e.g.
            fitting.fit_loop.embed68 with the FLAME folder bound).
        sets: the benchmark's vertex sets.
    Returns:
        per-image columns (id, nme, z5, z5_paper, chamfer, pose_error; the images that have a
        submission, in ground-truth order) and their means, plus ``n_images`` / ``n_missing``.
    """
    rows: dict[str, list] = {k: [] for k in ("id", "nme", "z5", "z5_paper", "chamfer", "pose_error")}
    missing = 0
    head = torch.as_tensor(sets.head)
    for a in ground_truth:
        pred = submission.get(a["id"])
        if pred is None:
            missing += 1
            continue
        verts = np.asarray(a["vertices"], np.float64)
        mv = np.asarray(a["model_view_matrix"], np.float64)
        V = torch.as_tensor(verts, dtype=dtype)[None]
        gt68 = landmarks68(V)[0].numpy()
        gt68_px = project_gl(gt68, mv, np.asarray(a["projection_matrix"], np.float64), a["image_height"])
        mv32 = mv.astype(np.float32)  # the benchmark's float32 world frame (Z5 rests on its rounding)
        v32 = verts.astype(np.float32)
        world32 = np.matmul(mv32, np.concatenate([v32, np.ones_like(v32[:, :1])], 1).T).T[:, :3]
        world = torch.as_tensor(world32, dtype=dtype)[None]
        world68 = landmarks68(world)
        pv = torch.as_tensor(pred["N_landmarks_3d"], dtype=dtype)[None]
        p7 = torch.as_tensor(pred["7_landmarks_3d"], dtype=dtype)[None]
        rows["id"].append(a["id"])
        rows["nme"].append(float(nme_box(
            torch.as_tensor(pred["68_landmarks_2d"], dtype=dtype)[None],
            torch.as_tensor(gt68_px, dtype=dtype)[None],
            torch.as_tensor(np.asarray(a["bbox"], np.float64), dtype=dtype)[None],
        )))
        g_head, p_head = -torch.as_tensor(world32)[None, head], pv[:, head].float()
        rows["z5"].append(float(z_n_accuracy(p_head, g_head, rule="released")))
        rows["z5_paper"].append(float(z_n_accuracy(p_head, g_head, rule="paper")))
        rows["chamfer"].append(float(chamfer_dad(pv, world, p7, world68, sets.face, reflection=True)))
        rows["pose_error"].append(float(pose_error(
            torch.as_tensor(pred["rotation_matrix"], dtype=dtype)[None],
            torch.as_tensor(gt_rotation(mv), dtype=dtype)[None],
        )))
    cols = {k: np.asarray(v) for k, v in rows.items()}
    summary = {k: float(np.mean(v)) if len(v) else float("nan") for k, v in cols.items() if k != "id"}
    summary["n_images"] = len(cols["id"])
    summary["n_missing"] = missing
    return cols, summary

