"""CoMA layout (FORMATS.md): ``<root>/FaceTalk_<date>_<id>_TA/<expression>/<expression>.<frame:06d>.ply``.

12 subjects x 12 expressions, FLAME topology (5023 vertices), metres, scanner-world
coordinates (not centred; y around 1.4-1.55).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COMA_EXPRESSIONS", "ComaItem", "list_coma", "coma_path", "LAYOUT"]

COMA_EXPRESSIONS = (
    "bareteeth", "cheeks_in", "eyebrow", "high_smile", "lips_back", "lips_up",
    "mouth_down", "mouth_extreme", "mouth_middle", "mouth_open", "mouth_side", "mouth_up",
)
LAYOUT = (
    "expected CoMA layout: <root>/FaceTalk_<date>_<id>_TA/<expression>/<expression>.<frame:06d>.ply"
)
_SUBJECT = re.compile(r"^FaceTalk_\d+_\d+_TA$")
_FILE = re.compile(r"^(?P<expr>[a-z_]+)\.(?P<frame>\d{6})\.ply$")


@dataclass(frozen=True)
class ComaItem:
    path: Path
    subject: str
    expression: str
    frame: int


def coma_path(root: str | Path, subject: str, expression: str, frame: int) -> Path:
    return Path(root) / subject / expression / f"{expression}.{frame:06d}.ply"


def list_coma(root: str | Path) -> list[ComaItem]:
    """All meshes under ``root`` sorted by (subject, expression, frame)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CoMA root {root} does not exist; {LAYOUT}")
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and _SUBJECT.match(p.name)):
        for expr_dir in sorted(p for p in sub.iterdir() if p.is_dir()):
            for f in sorted(expr_dir.glob("*.ply")):
                m = _FILE.match(f.name)
                if m and m["expr"] == expr_dir.name:
                    items.append(ComaItem(f, sub.name, expr_dir.name, int(m["frame"])))
    if not items:
        raise FileNotFoundError(f"no CoMA meshes under {root}; {LAYOUT}")
    return items
