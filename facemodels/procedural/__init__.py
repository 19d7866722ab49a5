"""Procedural head model: one anatomical world written in FLAME and BFM formats.

``build_world(seed)`` -> arrays; ``write_flame(world, folder)``, ``write_bfm(world, folder)``.
See ``facemodels.world`` for the cached default folders.
"""

from facemodels.procedural.builder import (
    ProceduralWorld,
    build_folders,
    build_world,
    write_bfm,
    write_flame,
)

__all__ = ["ProceduralWorld", "build_folders", "build_world", "write_bfm", "write_flame"]
