"""PLY for CoMA: the registered meshes are PLY files of FLAME topology (5023 vertices, 9976
triangles), written like psbody-mesh does (``binary_little_endian 1.0``, ``property float
x/y/z``, ``property list uchar int vertex_indices``; the exact header of the real files is
unconfirmed). Reading and writing are the suite's one mesh IO, :mod:`fitting.mesh_io`,
re-exported here for the CoMA loader, writer and checker.
"""

from __future__ import annotations

from fitting.mesh_io import PlyError, read_ply, write_ply

__all__ = ["read_ply", "write_ply", "PlyError"]
