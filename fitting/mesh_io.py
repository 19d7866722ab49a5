"""Triangle-mesh files: PLY (ascii, binary little / big endian) and Wavefront OBJ.

PLY is written like psbody-mesh writes CoMA's registered meshes (``property float x/y/z``,
``property list uchar int vertex_indices``; binary little endian by default); the reader
accepts any of the three encodings, extra vertex properties (normals, colours) and
float / double coordinates, and returns the x, y, z columns. OBJ holds ``v x y z`` and
``f a b c`` lines (1-based; ``a/t/n`` index triples and negative indices are read, polygons
are fan-triangulated). Coordinates are stored as written (the suite's meshes: metres,
model space).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["read_ply", "write_ply", "read_obj", "write_obj", "read_mesh", "write_mesh", "PlyError"]

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


class PlyError(ValueError):
    """A PLY file that cannot be parsed; the message names the file."""


def write_ply(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray | None = None, ascii: bool = False
) -> None:
    """Write (V, 3) float vertices (stored float32) and optional (F, 3) 0-based int faces as PLY
    (``binary_little_endian``, or ``ascii`` with the float32 values' shortest exact repr)."""
    v, f = _check_mesh(path, vertices, faces)
    v = v.astype("<f4")
    f = None if f is None else f.astype("<i4")
    enc = "ascii" if ascii else "binary_little_endian"
    head = ["ply", f"format {enc} 1.0", f"element vertex {len(v)}",
            "property float x", "property float y", "property float z"]
    if f is not None:
        head += [f"element face {len(f)}", "property list uchar int vertex_indices"]
    head.append("end_header")
    data = ("\n".join(head) + "\n").encode("ascii")
    if ascii:
        body = "\n".join(" ".join(repr(float(c)) for c in row) for row in v.astype(np.float64))
        if f is not None:
            body += "\n" + "\n".join("3 " + " ".join(str(int(i)) for i in row) for row in f)
        data += (body + "\n").encode("ascii")
    else:
        data += v.tobytes()
        if f is not None:
            rec = np.zeros(len(f), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
            rec["n"], rec["idx"] = 3, f
            data += rec.tobytes()
    Path(path).write_bytes(data)


def _parse_header(raw: bytes, path: Path) -> tuple[str, list[dict], int]:
    end = raw.find(b"end_header")
    if not raw.startswith(b"ply") or end < 0:
        raise PlyError(f"{path}: not a PLY file (missing 'ply' magic or 'end_header')")
    nl = raw.find(b"\n", end)
    body_start = nl + 1 if nl >= 0 else len(raw)
    fmt, elements = None, []
    for line in raw[:end].decode("ascii", errors="replace").splitlines()[1:]:
        parts = line.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            elements.append({"name": parts[1], "count": int(parts[2]), "props": []})
        elif parts[0] == "property":
            if not elements:
                raise PlyError(f"{path}: property before any element")
            if parts[1] == "list":
                elements[-1]["props"].append((parts[4], "list", _TYPES[parts[2]], _TYPES[parts[3]]))
            else:
                elements[-1]["props"].append((parts[2], _TYPES[parts[1]]))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise PlyError(f"{path}: unknown PLY format {fmt!r}")
    return fmt, elements, body_start


def read_ply(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read a PLY mesh. Returns vertices (V, 3) float64 and faces (F, 3) int64 or None.

    Raises PlyError naming the file when it is truncated or malformed.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        fmt, elements, pos = _parse_header(raw, path)
    except (KeyError, IndexError, ValueError) as e:
        raise PlyError(f"{path}: malformed PLY header ({e})") from e
    verts, faces = None, None
    if fmt == "ascii":
        tokens = raw[pos:].split()
        k = 0
        for el in elements:
            rows = []
            for _ in range(el["count"]):
                row = {}
                for p in el["props"]:
                    if k >= len(tokens):
                        raise PlyError(f"{path}: truncated ascii body in element {el['name']!r}")
                    if p[1] == "list":
                        n = int(tokens[k])
                        row[p[0]] = [float(x) for x in tokens[k + 1 : k + 1 + n]]
                        k += 1 + n
                    else:
                        row[p[0]] = float(tokens[k])
                        k += 1
                rows.append(row)
            if el["name"] == "vertex":
                verts = np.array([[r["x"], r["y"], r["z"]] for r in rows], dtype=np.float64)
            elif el["name"] == "face" and rows:
                key = el["props"][0][0]
                faces = np.array([r[key][:3] for r in rows], dtype=np.int64)
    else:
        end = "<" if fmt == "binary_little_endian" else ">"
        for el in elements:
            lists = [p for p in el["props"] if p[1] == "list"]
            if not lists:
                dt = np.dtype([(p[0], end + p[1]) for p in el["props"]])
                need = dt.itemsize * el["count"]
                if pos + need > len(raw):
                    raise PlyError(f"{path}: truncated binary body in element {el['name']!r}")
                arr = np.frombuffer(raw, dtype=dt, count=el["count"], offset=pos)
                pos += need
                if el["name"] == "vertex":
                    verts = np.stack([arr["x"], arr["y"], arr["z"]], 1).astype(np.float64)
            elif len(el["props"]) == 1 and el["name"] == "face":
                _, _, ct, it = lists[0]
                cnt = np.dtype(end + ct)
                first = np.frombuffer(raw, dtype=cnt, count=1, offset=pos) if pos < len(raw) else []
                n = int(first[0]) if len(first) else 3
                dt = np.dtype([("n", end + ct), ("idx", end + it, (n,))])
                need = dt.itemsize * el["count"]
                if pos + need > len(raw):
                    raise PlyError(f"{path}: truncated binary body in element 'face'")
                arr = np.frombuffer(raw, dtype=dt, count=el["count"], offset=pos)
                if el["count"] and not np.all(arr["n"] == n):
                    raise PlyError(f"{path}: mixed polygon sizes are not supported")
                faces = arr["idx"][:, :3].astype(np.int64)
                pos += need
            else:
                raise PlyError(f"{path}: unsupported list layout in element {el['name']!r}")
    if verts is None:
        raise PlyError(f"{path}: no 'vertex' element")
    if not np.all(np.isfinite(verts)):
        raise PlyError(f"{path}: non-finite vertex coordinates")
    return verts, faces


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray | None = None) -> None:
    """Write (V, 3) vertices (``%.6f``) and optional (F, 3) 0-based int faces as OBJ."""
    v, f = _check_mesh(path, vertices, faces)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
    if f is not None:
        lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in f]
    Path(path).write_text("\n".join(lines) + "\n")


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an OBJ mesh. Returns vertices (V, 3) float64 and faces (F, 3) int64 (0-based) or None.

    Only ``v`` and ``f`` lines count (texture / normal indices after ``/`` are ignored).
    Raises ValueError naming the file and line when a line cannot be parsed.
    """
    path = Path(path)
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] not in ("v", "f"):
            continue
        try:
            if parts[0] == "v":
                verts.append([float(c) for c in parts[1:4]])
                if len(verts[-1]) != 3:
                    raise ValueError("a vertex needs x, y, z")
            else:
                idx = [int(p.split("/")[0]) for p in parts[1:]]
                if len(idx) < 3:
                    raise ValueError("a face needs at least 3 vertices")
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]  # 1-based; negative: relative
                faces += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
        except ValueError as e:
            raise ValueError(f"{path}:{no}: cannot parse OBJ line {line!r} ({e})") from e
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) if faces else None
    if f is not None and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"{path}: OBJ face indices outside [0, {len(v)})")
    return v, f


def write_mesh(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray, ascii: bool = True
) -> Path:
    """vertices (V, 3) float, faces (F, 3) int (0-based); the suffix picks .obj or .ply
    (``ascii`` PLY by default). Creates the parent folder; returns the path."""
    path = Path(path)
    if path.suffix not in (".obj", ".ply"):
        raise ValueError(f"write_mesh({path}): suffix must be .obj or .ply")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".obj":
        write_obj(path, vertices, faces)
    else:
        write_ply(path, vertices, faces, ascii=ascii)
    return path


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`read_obj` or :func:`read_ply` by the suffix: vertices (V, 3) float64, faces (F, 3) int64 or None."""
    path = Path(path)
    if path.suffix == ".obj":
        return read_obj(path)
    if path.suffix == ".ply":
        return read_ply(path)
    raise ValueError(f"read_mesh({path}): suffix must be .obj or .ply")


def _check_mesh(
    path: str | Path, vertices: np.ndarray, faces: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(V, 3) float64 vertices and (F, 3) int64 faces (or None), checked; errors name the file."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"{path}: vertices must be (V, 3), got {v.shape}")
    if faces is None:
        return v, None
    f = np.asarray(faces, dtype=np.int64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"{path}: faces must be (F, 3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"{path}: face indices outside [0, {len(v)})")
    return v, f
