"""Check a dataset folder: ``python -m datamodules.check --dataset NAME --dir DIR``.

Prints one line per problem (missing file, corrupt image / mat / json / ply, wrong shape,
NaN) starting with the path, then a summary line; exits 1 when problems were found.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from datamodules.formats import dad
from datamodules.formats.matfiles import AFLW2000_SPEC, W300LP_SPEC, read_mat

__all__ = ["check_dataset", "main"]


def _image(path: Path) -> str | None:
    if not path.is_file():
        return f"{path}: missing image"
    try:
        with Image.open(path) as im:
            im.load()
    except OSError as e:
        return f"{path}: corrupt image ({e})"
    return None


def _check_dad(root: Path) -> Iterator[tuple[int, str | None]]:
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
            yield 1, _image(root / e["img_path"])
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
        yield 1, _image(m.with_suffix(".jpg"))


def _check_coma(root: Path) -> Iterator[tuple[int, str | None]]:
    from datamodules.formats.coma import list_coma
    from datamodules.formats.ply import read_ply

    for it in list_coma(root):
        try:
            v, _ = read_ply(it.path)
            yield 1, None if v.shape == (5023, 3) else f"{it.path}: {v.shape[0]} vertices, expected 5023"
        except (OSError, ValueError) as e:
            yield 1, str(e)


def check_dataset(dataset: str, root: str | Path) -> tuple[int, list[str]]:
    """(number of files checked, problem lines)."""
    root = Path(root)
    if not root.is_dir():
        return 0, [f"{root}: directory does not exist"]
    if dataset == "dad3dheads":
        gen = _check_dad(root)
    elif dataset == "w300lp":
        from datamodules.w300lp import list_300wlp

        gen = _check_mats(list_300wlp(root), W300LP_SPEC)
    elif dataset == "aflw2000":
        from datamodules.aflw2000 import list_aflw2000

        gen = _check_mats(list_aflw2000(root), AFLW2000_SPEC)
    elif dataset == "coma":
        gen = _check_coma(root)
    elif dataset == "bfm":
        from datamodules.bfm_synthetic import load_keypoint_basis

        def _bfm():
            try:
                load_keypoint_basis(root)
                yield 3, None
            except (OSError, ValueError, KeyError) as e:
                yield 3, str(e)

        gen = _bfm()
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
    n, problems = 0, []
    try:
        for k, p in gen:
            n += k
            if p:
                problems.append(p)
    except FileNotFoundError as e:
        problems.append(str(e))
    return n, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, choices=["dad3dheads", "w300lp", "aflw2000", "coma", "bfm"])
    ap.add_argument("--dir", required=True)
    a = ap.parse_args(argv)
    n, problems = check_dataset(a.dataset, a.dir)
    for p in problems:
        print(p)
    print(f"{a.dataset} {a.dir}: checked {n} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
