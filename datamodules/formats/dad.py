"""DAD-3DHeads on-disk format (FORMATS.md): index json, per-image annotation json, projection.

Layout::

    <root>/{train,val}/images/<ID>.png
    <root>/{train,val}/annotations/<ID>.json   {vertices (5023, 3), model_view_matrix (4, 4),
                                               projection_matrix (4, 4)}
    <root>/{train,val,test}/<split>.json       [{item_id, annotation_path, img_path, bbox,
                                                 attributes}, ...]
    <root>/test/images/<ID>.png                (no annotations)

Paths in the index are relative to ``<root>``. ``bbox`` is [x, y, w, h] in image px.
The suite's writer adds one optional annotation key, ``suite_visibility`` (5023,) 0/1 from
the renderer's z-buffer; real files lack it and readers must not require it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

__all__ = [
    "DAD_SPLITS",
    "DAD_ATTRIBUTES",
    "LAYOUT",
    "DadFormatError",
    "read_index",
    "write_index",
    "read_annotation",
    "write_annotation",
    "project_dad",
]

DAD_SPLITS = ("train", "val", "test")
N_VERTICES = 5023
DAD_ATTRIBUTES = {
    "quality": ("hq", "lq"),
    "gender": ("female", "male", "undefined"),
    "expression": (True, False),
    "age": ("child", "young", "middle_aged", "senior"),
    "occlusions": (True, False),
    "pose": ("front", "sided", "atypical"),
    "standard light": (True, False),
}
LAYOUT = (
    "expected DAD-3DHeads layout: <root>/{train,val}/images/<ID>.png, "
    "<root>/{train,val}/annotations/<ID>.json, <root>/<split>/<split>.json (index), "
    "<root>/test/images/<ID>.png + <root>/test/test.json"
)
_INDEX_KEYS = ("item_id", "img_path", "bbox")


class DadFormatError(ValueError):
    """A DAD-3DHeads file that does not match the format; the message names file and key."""


def index_path(root: str | Path, split: str) -> Path:
    return Path(root) / split / f"{split}.json"


def read_index(root: str | Path, split: str) -> list[dict]:
    """Read ``<root>/<split>/<split>.json``; checks every entry's keys and bbox."""
    if split not in DAD_SPLITS:
        raise ValueError(f"DAD-3DHeads split must be one of {DAD_SPLITS}, got {split!r}")
    path = index_path(root, split)
    if not Path(root).is_dir():
        raise FileNotFoundError(f"DAD-3DHeads root {root} does not exist; {LAYOUT}")
    if not path.is_file():
        raise FileNotFoundError(f"missing index {path}; {LAYOUT}")
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DadFormatError(f"{path}: corrupt json ({e})") from e
    if not isinstance(entries, list):
        raise DadFormatError(f"{path}: expected a list of entries, got {type(entries).__name__}")
    for i, e in enumerate(entries):
        for k in _INDEX_KEYS + (() if split == "test" else ("annotation_path",)):
            if k not in e:
                raise DadFormatError(f"{path}: entry {i} lacks key {k!r}")
        if len(e["bbox"]) != 4:
            raise DadFormatError(f"{path}: entry {i} 'bbox' must be [x, y, w, h], got {e['bbox']}")
    return entries


def write_index(root: str | Path, split: str, entries: list[dict]) -> Path:
    path = index_path(root, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1))
    return path


def write_annotation(
    path: str | Path,
    vertices: np.ndarray,
    model_view: np.ndarray,
    projection: np.ndarray,
    visibility: np.ndarray | None = None,
) -> None:
    """Write one annotation json: vertices (5023, 3) metres, MV (4, 4), P (4, 4)."""
    d = {
        "vertices": np.round(np.asarray(vertices, np.float64), 7).tolist(),
        "model_view_matrix": np.asarray(model_view, np.float64).tolist(),
        "projection_matrix": np.asarray(projection, np.float64).tolist(),
    }
    if visibility is not None:
        d["suite_visibility"] = np.asarray(visibility).astype(int).tolist()
    Path(path).write_text(json.dumps(d))


def read_annotation(path: str | Path, n_vertices: int = N_VERTICES) -> dict:
    """Read one annotation json.

    Returns vertices (V, 3) float32 metres, model_view (4, 4) float64, projection (4, 4)
    float64, visibility (V,) float32 or None. Raises DadFormatError naming file and key.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing DAD-3DHeads annotation {path}")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DadFormatError(f"{path}: corrupt json ({e})") from e
    out = {}
    for key, name, shape in (
        ("vertices", "vertices", (n_vertices, 3)),
        ("model_view_matrix", "model_view", (4, 4)),
        ("projection_matrix", "projection", (4, 4)),
    ):
        if key not in d:
            raise DadFormatError(f"{path}: missing key {key!r}")
        try:
            arr = np.asarray(d[key], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DadFormatError(f"{path}: key {key!r} is not a numeric array ({e})") from e
        if arr.shape != shape:
            raise DadFormatError(
                f"{path}: key {key!r} has shape {arr.shape}, expected {shape}"
                + (" (FLAME topology has 5023 vertices)" if key == "vertices" else "")
            )
        if not np.all(np.isfinite(arr)):
            raise DadFormatError(f"{path}: key {key!r} contains NaN or inf")
        out[name] = arr.astype(np.float32) if key == "vertices" else arr
    vis = d.get("suite_visibility")
    out["visibility"] = None if vis is None else np.asarray(vis, dtype=np.float32)
    return out


def project_dad(vertices: np.ndarray, model_view: np.ndarray, projection: np.ndarray,
                image_height: int) -> tuple[np.ndarray, np.ndarray]:
    """DAD-3DHeads projection: v_w = MV [v, 1]; p = P v_w; xy = p[:2] / p[3]; y = H - y.

    vertices (N, 3) model space. Returns (N, 2) image px (y down) and the (N,) depth
    ``p[3]`` (= distance along the optical axis for a pinhole P).
    """
    v = np.asarray(vertices, np.float64)
    hom = np.concatenate([v, np.ones((len(v), 1))], 1)  # (N, 4)
    p = hom @ (np.asarray(projection) @ np.asarray(model_view)).T  # (N, 4)
    xy = p[:, :2] / p[:, 3:4]
    xy[:, 1] = image_height - xy[:, 1]
    return xy, p[:, 3]
