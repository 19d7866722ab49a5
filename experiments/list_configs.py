"""List the configs of a group with their first comment line: `python -m experiments.list_configs model`."""

from __future__ import annotations

import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def describe(path: Path) -> str:
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#") and not line.startswith("# @package"):
            return line.lstrip("# ").strip()
    return ""


def main(argv: list[str]) -> int:
    group = argv[0] if argv else "model"
    folder = CONFIGS / group
    if not folder.is_dir():
        print(f"no config group '{group}' in {CONFIGS}", file=sys.stderr)
        return 2
    files = sorted(folder.glob("*.yaml"))
    width = max((len(f.stem) for f in files), default=0)
    for f in files:
        print(f"  {f.stem:<{width}}  {describe(f)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
