"""The layer contracts of pyproject.toml ([tool.importlinter]) hold for the tree, and they catch an
upward import, also one hidden inside a function, and an import cycle between sibling modules; every
entry point (``if __name__ == "__main__"``) lives in experiments/."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("facemodels", "fitting", "datamodules", "lightning_modules", "experiments", "benchmarks")


def _lint(root: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root,
                          capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(root)})


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The packages' Python files and pyproject.toml copied to a folder of their own."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(REPO / "pyproject.toml", root)
    for pkg in PACKAGES:
        for f in (REPO / pkg).rglob("*.py"):
            dst = root / f.relative_to(REPO)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst)
    return root


def test_the_tree_keeps_every_contract() -> None:
    proc = _lint(REPO)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "0 broken" in proc.stdout or " broken" not in proc.stdout.split("Contracts:")[-1]


def _lint_with(tree: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    """lint-imports on ``tree`` with ``files`` (path relative to the tree -> source) added for the run."""
    paths = [tree / rel for rel in files]
    for path, text in zip(paths, files.values(), strict=True):
        path.write_text(text)
    try:
        return _lint(tree)
    finally:
        for path in paths:
            path.unlink()


def test_an_import_inside_a_function_that_goes_up_is_caught(tree: Path) -> None:
    proc = _lint_with(tree, {"facemodels/zz_upward.py": "def f():\n    from experiments import train\n    return train\n"})
    assert proc.returncode != 0
    assert "facemodels.zz_upward -> experiments.train" in proc.stdout


def test_datamodules_and_lightning_modules_stay_independent(tree: Path) -> None:
    proc = _lint_with(tree, {"lightning_modules/zz_sideways.py": "import datamodules.base\n"})
    assert proc.returncode != 0
    assert "lightning_modules.zz_sideways -> datamodules.base" in proc.stdout


def test_a_cycle_between_sibling_modules_is_caught(tree: Path) -> None:
    proc = _lint_with(tree, {"fitting/zz_a.py": "from fitting import zz_b\n",
                             "fitting/zz_b.py": "def f():\n    from fitting import zz_a\n    return zz_a\n"})
    assert proc.returncode != 0
    assert "No cycles are allowed in fitting" in proc.stdout


LIBRARIES = ("facemodels", "fitting", "datamodules", "lightning_modules")


def _entry_points(path: Path) -> list[int]:
    """Line numbers of ``if __name__ == "__main__"`` blocks in one Python file."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        test = getattr(node, "test", None) if isinstance(node, ast.If) else None
        if (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
                and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)):
            lines.append(node.lineno)
    return lines


def test_every_entry_point_lives_in_experiments(tmp_path: Path) -> None:
    found = [f"{f.relative_to(REPO)}:{n}" for pkg in LIBRARIES for f in sorted((REPO / pkg).rglob("*.py"))
             for n in _entry_points(f)]
    found += [str(f.relative_to(REPO)) for pkg in LIBRARIES for f in (REPO / pkg).rglob("__main__.py")]
    assert found == [], f"entry points belong in experiments/: {found}"
    # the check sees one when there is one
    probe = tmp_path / "probe.py"
    probe.write_text("def main():\n    pass\n\n\nif __name__ == '__main__':\n    main()\n")
    assert _entry_points(probe) == [5]
    assert _entry_points(REPO / "experiments" / "train.py") != []
