"""Per-paper recipes and report scripts."""
