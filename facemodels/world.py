"""Where the suite's face models live: the default procedural world or real files.

``default_flame_dir()`` / ``default_bfm_dir()`` return folders in the real on-disk formats.
Environment variables:
- ``FACESUITE_FLAME_DIR``: a real FLAME folder (FLAME_NEUTRAL.pkl, embeddings, masks); used as is.
- ``FACESUITE_BFM_DIR``: a real BFM folder (01_MorphableModel.mat, Model_Expression.mat,
  model_info.mat); used as is.
- ``FACESUITE_DATA_ROOT``: the root of everything the suite writes once (default ``<repo>/data``):
  the procedural world in ``facemodels/flame_procedural_seed0`` and ``facemodels/bfm_procedural_seed0``,
  the procedural datasets in ``procedural/`` (datamodules/cache.py), DAD-3DHeads split caches in ``cache/``.
The procedural folders are built once (seed 0), under a file lock, into a temporary folder that
is renamed into place atomically, so parallel processes never see a half-written folder. A folder
written by an older builder version (``procedural_version.txt``) is rebuilt.
"""

from __future__ import annotations

import os
from pathlib import Path

from facemodels.cache import build_folder_once
from facemodels.procedural.builder import (
    BUILD_VERSION,
    VERSION_FILE,
    build_world,
    write_bfm,
    write_flame,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
FLAME_FILES = (
    "FLAME_NEUTRAL.pkl",
    "flame_static_embedding.pkl",
    "flame_dynamic_embedding.npy",
    "FLAME_masks.pkl",
)
BFM_FILES = ("01_MorphableModel.mat", "Model_Expression.mat", "model_info.mat")


def data_root() -> Path:
    """``$FACESUITE_DATA_ROOT`` or ``<repo>/data``."""
    env = os.environ.get("FACESUITE_DATA_ROOT")
    return Path(env).expanduser() if env else REPO_ROOT / "data"


def _env_dir(var: str, files: tuple[str, ...]) -> Path | None:
    env = os.environ.get(var)
    if not env:
        return None
    path = Path(env).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"{var}={env}: folder does not exist (expected a folder with {', '.join(files)})"
        )
    return path


def _complete(folder: Path, files: tuple[str, ...]) -> bool:
    """All files present and written by the current builder version."""

    if not (folder.is_dir() and all((folder / f).is_file() for f in files)):
        return False
    stamp = folder / VERSION_FILE
    return stamp.is_file() and stamp.read_text().split()[0] == BUILD_VERSION


def _build_once(target: Path, files: tuple[str, ...], seed: int, kind: str) -> Path:
    def build(tmp: Path) -> None:
        (write_flame if kind == "flame" else write_bfm)(build_world(seed), tmp)

    return build_folder_once(target, build, lambda folder: _complete(folder, files))


#: files only the procedural FLAME folder has: the DAD-3DHeads benchmark's vertex sets
#: (facemodels.procedural.masks.dad_benchmark_sets); a folder without them is rebuilt.
PROCEDURAL_FLAME_EXTRA = ("head_indices.npy", "flame_indices/face.npy")


def procedural_flame_dir(seed: int = 0) -> Path:
    """Build (once) and return ``<data_root>/facemodels/flame_procedural_seed<seed>``."""
    return _build_once(
        data_root() / "facemodels" / f"flame_procedural_seed{seed}",
        FLAME_FILES + PROCEDURAL_FLAME_EXTRA,
        seed,
        "flame",
    )


def procedural_bfm_dir(seed: int = 0) -> Path:
    """Build (once) and return ``<data_root>/facemodels/bfm_procedural_seed<seed>``."""
    return _build_once(
        data_root() / "facemodels" / f"bfm_procedural_seed{seed}", BFM_FILES, seed, "bfm"
    )


def default_flame_dir() -> Path:
    """The FLAME-format folder the suite uses: ``$FACESUITE_FLAME_DIR`` or the procedural seed 0."""
    return _env_dir("FACESUITE_FLAME_DIR", FLAME_FILES) or procedural_flame_dir(0)


def default_bfm_dir() -> Path:
    """The BFM-format folder the suite uses: ``$FACESUITE_BFM_DIR`` or the procedural seed 0."""
    return _env_dir("FACESUITE_BFM_DIR", BFM_FILES) or procedural_bfm_dir(0)
