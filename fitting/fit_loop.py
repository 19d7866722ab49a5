"""The fit-evaluate-write loop: landmarks predicted batch by batch -> FLAME fits -> metrics and meshes.

:func:`fit_batches` runs a :class:`~fitting.flame_fit.LandmarkFitter` over batches in the batch contract
(docs/ARCHITECTURE.md) and writes ``meshes/<index>.obj|ply`` (model space, metres), ``per_image.csv`` and
``summary.json``; :func:`write_fit_metrics` writes ``fit_metrics.json`` last (the marker of a finished
fit), keyed ``<split>/<metric>`` (:func:`report_metrics`). The command line is ``experiments.fit``.

Metrics per image (where the batch has the ground truth): MRLE px (re-projected fit vs
predicted landmarks), MLME px (predicted vs GT landmarks), MVE face / head-without-neck mm
with and without similarity alignment, and the DAD-3DHeads benchmark metrics as the released
benchmark computes them (docs/PROTOCOLS.md): NME (x100, 68 landmarks re-projected from the
fitted mesh, in original-image px, normalised by sqrt(w h) of the batch's ``bbox``; batches
without ``bbox`` / ``crop_matrix`` use the box of the projected GT head vertices in crop px),
Z5 as released (``z5``) and as defined in the paper (``z5_paper``) on the camera-frame head
vertices, Chamfer (normalised units^2, the Procrustes may reflect), pose error; these
benchmark columns are averaged over every image (a failed fit scores with the fallback mesh
it returns), the others over the valid ones; ``n_valid`` counts the valid fits. With
``item_id`` and ``crop_matrix`` in the batches (DAD-3DHeads) the loop also writes
``dad_submission.json``, the benchmark's submission format (fitting.dad3dheads_benchmark).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from facemodels.flame_files import FlameArrays
from facemodels.landmark_sets import landmark_vertex_indices

from .builder import flame_selection
from .dad3dheads_benchmark import DadVertexSets, write_submission
from .flame_fit import LandmarkFitter
from .mesh_io import write_mesh
from .mesh_metrics import (
    DAD_SEVEN,
    chamfer_dad,
    mrle,
    mve,
    nme_box,
    pose_error,
    summarize,
    write_per_image_csv,
    z_n_accuracy,
)
from .reprojection import project

log = logging.getLogger("fitting.fit_loop")

__all__ = ["fit_batches", "subset_columns", "report_metrics", "write_fit_metrics", "embed68", "BENCHMARK_COLUMNS"]

#: per-image columns averaged over every image (benchmark protocol), not only the valid fits
BENCHMARK_COLUMNS = ("nme", "z5", "z5_paper", "chamfer", "pose_error")
SUBMISSION_FILE = "dad_submission.json"


def embed68(verts: Tensor, flame: FlameArrays, folder) -> Tensor:
    """(B, V, 3) -> (B, 68, 3) iBUG-68 points by the FLAME barycentric embeddings."""
    sel = flame_selection("ibug68", flame, folder)
    tri = torch.as_tensor(np.asarray(flame.faces)[sel.face_idx], device=verts.device)  # (68, 3)
    bary = torch.as_tensor(sel.bary, dtype=verts.dtype, device=verts.device)
    return torch.einsum("lk,blkd->bld", bary, verts[:, tri])


def subset_columns(model_set: str, fit_set: str, flame_dir: str | os.PathLike) -> np.ndarray | None:
    """Positions of ``fit_set``'s landmarks among ``model_set``'s, (L_fit,) int64; None if equal.

    Both are vertex-based FLAME sets (face1609, face805, ...): the network predicts ``model_set``
    and the fit uses the columns ``pred[:, cols]`` (in ``fit_set``'s own order).
    """
    if fit_set == model_set:
        return None
    if "ibug68" in (model_set, fit_set):
        raise ValueError(
            f"fitting.fit_loop: cannot fit landmark set {fit_set!r} with a network predicting {model_set!r} "
            "(ibug68 is not a vertex subset); use the network's own set or a face* subset of it"
        )
    have = landmark_vertex_indices(model_set, flame_dir)
    want = landmark_vertex_indices(fit_set, flame_dir)
    pos = {int(v): i for i, v in enumerate(have)}
    missing = [int(v) for v in want if int(v) not in pos]
    if missing:
        raise ValueError(
            f"fitting.fit_loop: {len(missing)} of the {len(want)} vertices of {fit_set!r} are not in the "
            f"network's landmark set {model_set!r} (e.g. vertex {missing[0]}); expected a subset"
        )
    return np.asarray([pos[int(v)] for v in want], dtype=np.int64)


def report_metrics(summary: dict[str, float], split: str) -> dict[str, float]:
    """The summary's numeric entries keyed ``<split>/<name>`` (the names the reports read)."""
    return {
        f"{split}/{k}": float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    }


def write_fit_metrics(path: str | Path, metrics: dict[str, float]) -> Path:
    """Write ``metrics`` as JSON atomically (temp file + rename): the file marks a finished fit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path


def fit_batches(
    fitter: LandmarkFitter,
    batches: Iterable[dict[str, Any]],
    predict: Callable[[dict[str, Any]], dict[str, Tensor]],
    flame: FlameArrays,
    flame_dir,
    face_idx: np.ndarray,
    head_idx: np.ndarray,
    out_dir: str | Path,
    write_meshes: int = 16,
    mesh_format: str = "obj",
    use_camera_from_batch: bool = True,
    device: torch.device | str = "cpu",
    columns: np.ndarray | None = None,
    use_confidences: bool = True,
    dad_sets: DadVertexSets | None = None,
) -> dict[str, float]:
    """Fit and evaluate every batch; writes meshes, per_image.csv, summary.json and, for
    batches with ``item_id`` and ``crop_matrix``, the DAD-3DHeads submission json.

    Args:
        batches: dicts following the batch contract (docs/ARCHITECTURE.md).
        predict: batch -> {"landmarks_px": (B, L, 2), "confidences": (B, L) optional}.
        columns: (L_fit,) landmark columns the fitter uses (a subset, :func:`subset_columns`);
            applied to the prediction and to ``batch["landmarks_px"]``; None: all.
        use_confidences: weight the landmarks by the predicted confidences (False: unit weights).
        face_idx, head_idx: the suite's MVE vertex sets (face1609, head without neck).
        dad_sets: the DAD-3DHeads benchmark's vertex sets for Z5 / Chamfer
            (:func:`fitting.dad3dheads_benchmark.dad_vertex_sets`); None: ``head_idx`` / ``face_idx``.
    Returns:
        the summary (means over valid images; :data:`BENCHMARK_COLUMNS` over every image), plus ``time_landmarks_ms_per_image`` and
        ``time_fit_s_per_image`` (wall clock over all images, including invalid ones).
    """
    out = Path(out_dir)
    rows: dict[str, list] = {}
    n_written = 0
    faces = np.asarray(flame.faces)

    def add(name: str, values: Tensor | np.ndarray | list) -> None:
        v = values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)
        rows.setdefault(name, []).extend(v.tolist())

    sel = None if columns is None else torch.as_tensor(np.asarray(columns), dtype=torch.long)
    z_idx = head_idx if dad_sets is None else dad_sets.head
    ch_idx = face_idx if dad_sets is None else dad_sets.face
    sub: dict[str, list] = {"ids": [], "lm68": [], "verts": [], "seven": [], "R": []}
    t_predict = t_fit = 0.0
    for batch in batches:
        with torch.no_grad():
            t0 = time.perf_counter()
            pred = predict(batch)
            lm = pred["landmarks_px"].to(device).float()
            _sync(lm.device)
            t1 = time.perf_counter()
            conf = pred.get("confidences")
            conf = None if conf is None else conf.to(device).float()
            gt_lm = batch.get("landmarks_px")
            if sel is not None:
                if gt_lm is not None and gt_lm.shape[1] == lm.shape[1]:
                    gt_lm = gt_lm[:, sel.to(gt_lm.device)]
                lm = lm[:, sel.to(lm.device)]
                conf = None if conf is None else conf[:, sel.to(conf.device)]
            if conf is not None:
                add("confidence_mean", conf.mean(-1))
            cam = batch.get("camera") if use_camera_from_batch else None
            K = cam["K"].to(device).float() if cam is not None and "K" in cam else None
            res = fitter.fit(lm, conf if use_confidences else None, K)
            _sync(res.vertices.device)
            t2 = time.perf_counter()
            t_predict, t_fit = t_predict + (t1 - t0), t_fit + (t2 - t1)
        B = lm.shape[0]
        index = batch.get("index", torch.arange(B) + len(rows.get("valid", [])))
        add("index", torch.as_tensor(index))
        add("valid", res.valid)
        add("cost", res.cost)
        add("mrle_px", mrle(res.landmarks2d, lm))
        if gt_lm is not None and gt_lm.shape == lm.shape:
            add("mlme_px", mrle(lm, gt_lm.to(device).float()))
        if "vertices" in batch:
            gt = batch["vertices"].to(device).float()
            for name, idx in (("face", face_idx), ("head", head_idx)):
                add(f"mve_{name}_mm", mve(res.vertices, gt, idx))
                add(f"mve_{name}_aligned_mm", mve(res.vertices, gt, idx, align=True))
            add(
                "chamfer",
                chamfer_dad(
                    res.vertices,
                    gt,
                    embed68(res.vertices, flame, flame_dir),
                    embed68(gt, flame, flame_dir),
                    ch_idx,
                    reflection=True,
                ),
            )
            if cam is not None and "R" in cam and "t" in cam:
                R, t = cam["R"].to(device).float(), cam["t"].to(device).float()
                gt_cam = gt @ R.transpose(1, 2) + t[:, None]
                hi = torch.as_tensor(z_idx, device=gt.device)
                p_head, g_head = res.vertices_camera[:, hi], gt_cam[:, hi]
                add("z5", z_n_accuracy(p_head, g_head, rule="released"))
                add("z5_paper", z_n_accuracy(p_head, g_head, rule="paper"))
                add("pose_error", pose_error(res.R, R))
                if "landmarks68_px" in batch and K is not None:
                    pred68 = project(embed68(res.vertices_camera, flame, flame_dir), res.K)
                    gt68 = batch["landmarks68_px"].to(device).float()
                    if "bbox" in batch and "crop_matrix" in batch:  # the benchmark: original px, annotation box
                        to_src = torch.linalg.inv(batch["crop_matrix"].to(device).float())
                        pred68, gt68 = _apply_affine(to_src, pred68), _apply_affine(to_src, gt68)
                        box = batch["bbox"].to(device).float()
                    else:  # no annotation box: the box of the projected GT head vertices, crop px
                        head_px = project(gt_cam[:, torch.as_tensor(head_idx, device=gt.device)], K)
                        lo, hi_ = head_px.min(1).values, head_px.max(1).values
                        box = torch.cat([lo, hi_ - lo], -1)  # (B, 4) x, y, w, h
                    add("nme", nme_box(pred68, gt68, box))
        if "item_id" in batch and "crop_matrix" in batch:
            to_src = torch.linalg.inv(batch["crop_matrix"].to(device).float())
            cam68 = embed68(res.vertices_camera, flame, flame_dir)
            sub["ids"] += [str(i) for i in batch["item_id"]]
            sub["lm68"].append(_apply_affine(to_src, project(cam68, res.K)).cpu())
            sub["verts"].append(res.vertices_camera.cpu())
            sub["seven"].append(cam68[:, list(DAD_SEVEN)].cpu())
            sub["R"].append(res.R.cpu())
        for b in range(B):
            if write_meshes >= 0 and n_written >= write_meshes:
                break
            i = int(torch.as_tensor(index)[b])
            write_mesh(
                out / "meshes" / f"{i:06d}.{mesh_format}", res.vertices[b].cpu().numpy(), faces
            )
            n_written += 1
    cols = {k: np.asarray(v) for k, v in rows.items()}
    write_per_image_csv(out / "per_image.csv", cols)
    if sub["ids"]:
        write_submission(out / SUBMISSION_FILE, sub["ids"], *(torch.cat(sub[k]) for k in ("lm68", "verts", "seven", "R")))
    summary = summarize(cols, valid=cols["valid"].astype(bool), every_image=BENCHMARK_COLUMNS)
    n = max(len(cols["valid"]), 1)
    summary["time_landmarks_ms_per_image"] = 1000.0 * t_predict / n
    summary["time_fit_s_per_image"] = t_fit / n
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True))
    log.info("fit summary: %s", summary)
    return summary


def _apply_affine(M: Tensor, pts: Tensor) -> Tensor:
    """(B, 3, 3) homogeneous 2D maps applied to (B, L, 2) points."""
    return pts @ M[:, :2, :2].transpose(1, 2) + M[:, None, :2, 2]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
