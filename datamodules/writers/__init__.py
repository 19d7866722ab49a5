"""Writers of the procedural world in each real dataset layout (FORMATS.md)."""
