"""The BFM "dataset": the BFM model files (01_MorphableModel.mat, Model_Expression.mat,
model_info.mat) that BfmSyntheticDataModule samples its faces from on the fly."""

from __future__ import annotations

import shutil
from pathlib import Path

from facemodels.world import default_bfm_dir

__all__ = ["write_bfm"]


def write_bfm(out: str | Path, bfm_dir: str | Path | None = None) -> Path:
    """Copy the ``*.mat`` files of ``bfm_dir`` (None -> $FACESUITE_BFM_DIR or the procedural
    BFM folder) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(bfm_dir or default_bfm_dir()).glob("*.mat")):
        shutil.copy2(f, out / f.name)
    return out
