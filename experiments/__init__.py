"""Per-paper recipes and report scripts, the entry points, and `create_model` / `list_models` (experiments/models.py)."""

from experiments.models import create_model, list_models

__all__ = ["create_model", "list_models"]
