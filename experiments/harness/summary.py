"""The final metrics table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.console import Console
from rich.table import Table


def metrics_table(metrics: Mapping[str, float], title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in sorted(metrics):
        value = metrics[key]
        table.add_row(key, f"{float(value):.4f}")
    return table


def print_summary(metrics: Mapping[str, float], run_dir: str | Path, best_ckpt: str | None, notes: list[str]) -> None:
    console = Console()
    if metrics:
        console.print(metrics_table(metrics, "Final metrics"))
    for note in notes:
        console.print(note)
    console.print(f"Run directory: {run_dir}")
    if best_ckpt:
        console.print(f"Best checkpoint: {best_ckpt}")
