"""What is wrong with a dataset folder: one checker per format.

A checker ``check_X(root)`` yields ``(files checked, problem line or None)`` pairs, one per
file or group of files; a problem line starts with the offending path (missing file, corrupt
image / mat / json / ply, wrong shape, NaN). :func:`run_check` gathers them for one folder.
The dataset registry (datamodules/registry.py) names the checker of each dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image

from datamodules.aflw2000 import list_aflw2000
from datamodules.formats import dad
from datamodules.formats.coma import list_coma
from datamodules.formats.matfiles import AFLW2000_SPEC, W300LP_SPEC, read_mat
from datamodules.w300lp import list_300wlp
from facemodels.bfm import load_bfm_arrays
from fitting.mesh_io import read_ply

__all__ = ["Checker", "run_check", "check_image", "check_dad3dheads", "check_w300lp", "check_aflw2000",
           "check_coma", "check_bfm"]

Checker = Callable[[Path], Iterator[tuple[int, str | None]]]


def check_image(path: Path) -> str | None:
    """None when ``path`` is an image PIL decodes, else the problem line."""
    if not path.is_file():
        return f"{path}: missing image"
    try:
        with Image.open(path) as im:
            im.load()
    except OSError as e:
        return f"{path}: corrupt image ({e})"
    return None


def check_dad3dheads(root: Path) -> Iterator[tuple[int, str | None]]:
    """Every split index, image and (train / val) annotation json of a DAD-3DHeads folder."""
    splits = [s for s in dad.DAD_SPLITS if dad.index_path(root, s).is_file()]
    if not splits:
        yield 1, f"{root}: no DAD-3DHeads index found; {dad.LAYOUT}"
    for split in splits:
        try:
            entries = dad.read_index(root, split)
        except (OSError, ValueError) as e:
            yield 1, str(e)
            continue
        for e in entries:
            yield 1, check_image(root / e["img_path"])
            if split != "test":
                try:
                    dad.read_annotation(root / e["annotation_path"])
                    yield 1, None
                except (OSError, ValueError) as err:
                    yield 1, str(err)


def _check_mats(mats: list[Path], spec: dict) -> Iterator[tuple[int, str | None]]:
    for m in mats:
        try:
            read_mat(m, spec)
            yield 1, None
        except (OSError, ValueError) as e:
            yield 1, str(e)
        yield 1, check_image(m.with_suffix(".jpg"))


def check_w300lp(root: Path) -> Iterator[tuple[int, str | None]]:
    """Every .mat (keys, shapes, dtypes) and its .jpg of a 300W-LP folder."""
    return _check_mats(list_300wlp(root), W300LP_SPEC)


def check_aflw2000(root: Path) -> Iterator[tuple[int, str | None]]:
    """Every .mat (keys, shapes, dtypes) and its .jpg of an AFLW2000-3D folder."""
    return _check_mats(list_aflw2000(root), AFLW2000_SPEC)


def check_coma(root: Path) -> Iterator[tuple[int, str | None]]:
    """Every CoMA PLY mesh reads and has FLAME's 5023 vertices."""
    for it in list_coma(root):
        try:
            v, _ = read_ply(it.path)
            yield 1, None if v.shape == (5023, 3) else f"{it.path}: {v.shape[0]} vertices, expected 5023"
        except (OSError, ValueError) as e:
            yield 1, str(e)


def check_bfm(root: Path) -> Iterator[tuple[int, str | None]]:
    """The three BFM files (model, expression basis, model info) load and agree in shape
    (facemodels.bfm.load_bfm_arrays; its errors name the file, the key and the expected shape)."""
    try:
        load_bfm_arrays(root)
        yield 3, None
    except (OSError, ValueError) as e:
        yield 3, str(e)


def run_check(checker: Checker, root: str | Path) -> tuple[int, list[str]]:
    """(number of files checked, problem lines) of ``checker`` on the folder ``root``."""
    root = Path(root)
    if not root.is_dir():
        return 0, [f"{root}: directory does not exist"]
    n, problems = 0, []
    try:
        for k, p in checker(root):
            n += k
            if p:
                problems.append(p)
    except FileNotFoundError as e:
        problems.append(str(e))
    return n, problems
