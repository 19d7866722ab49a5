"""Assemble the procedural head (one world) and write it in FLAME and BFM formats.

``build_world(seed)`` is deterministic: the same seed gives the same arrays, and the writers give
the same bytes (pickle protocol 4, fixed .mat header). The seed drives the random smooth fields
of the identity/expression/texture bases; the mean head is the same for every seed.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.io

from facemodels.procedural import anatomy as A
from facemodels.procedural import bases as B
from facemodels.procedural import embedding as E
from facemodels.procedural import rig as R
from facemodels.procedural import topology as T
from facemodels.procedural.masks import _inside_polygon, build_masks, dad_benchmark_sets
from facemodels.procedural.surface import HeadSurface, angles, directions

# Bump when the generated geometry or bases change: cached default folders are rebuilt.
BUILD_VERSION = "6"
VERSION_FILE = "procedural_version.txt"
N_SHAPE, N_EXPR = 300, 100
N_BFM_SHAPE, N_BFM_EXPR = 199, 29
STATIC_IDX = np.arange(17, 68)
# The BFM-format expression basis' mouth-opening mode: column MOUTH_OPEN_MODE of w_exp opens the
# jaw of the FLAME-format rig (rig.jaw_opening), positive coefficients open, MOUTH_OPEN_DEG degrees
# at +MOUTH_OPEN_SD standard deviations (a linear mode: the chord of that rotation, scaled).
MOUTH_OPEN_MODE = 0
MOUTH_OPEN_DEG = 12.0
MOUTH_OPEN_SD = 3.0


@dataclass
class ProceduralWorld:
    seed: int
    v_template: np.ndarray  # (5023, 3) metres
    faces: np.ndarray  # (9976, 3) int64
    shapedirs: np.ndarray  # (5023, 3, 400) metres per unit coefficient
    posedirs: np.ndarray  # (5023, 3, 36)
    J_regressor: np.ndarray  # (5, 5023)
    weights: np.ndarray  # (5023, 5)
    static_faces: np.ndarray  # (51,)
    static_bary: np.ndarray  # (51, 3)
    dynamic_faces: np.ndarray  # (79, 17)
    dynamic_bary: np.ndarray  # (79, 17, 3)
    masks: dict[str, np.ndarray]
    landmarks68: np.ndarray  # (68, 3) mean iBUG-68 on the mesh (metres)
    # the fields that define the bases, for evaluation on other meshes
    id_fields: list = field(repr=False, default_factory=list)
    id_mix: np.ndarray | None = field(repr=False, default=None)
    ex_fields: list = field(repr=False, default_factory=list)
    ex_mix: np.ndarray | None = field(repr=False, default=None)
    surface: HeadSurface | None = field(repr=False, default=None)


def _field_points(verts: np.ndarray) -> np.ndarray:
    """Where identity fields are evaluated: vertices, eyeballs at their centres (rigid)."""
    p = verts.copy()
    p[T.LEFT_EYE_SLICE] = A.LEFT_EYE_CENTRE
    p[T.RIGHT_EYE_SLICE] = A.RIGHT_EYE_CENTRE
    return p


def _single_thread():
    """Single-threaded BLAS: faster on a shared CPU and bit-reproducible."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1)


def build_world(seed: int = 0) -> ProceduralWorld:
    """The procedural head for ``seed`` (deterministic; about a few seconds)."""
    with _single_thread():
        return _build_world(seed)


@functools.lru_cache(maxsize=2)
def cached_world(seed: int = 0) -> ProceduralWorld:
    """``build_world(seed)`` memoised in this process (treat the result as read-only)."""
    return build_world(seed)


def _build_world(seed: int) -> ProceduralWorld:
    rng = np.random.default_rng(seed)
    surf = HeadSurface()
    topo = T.FlameTopology.build()
    head = surf.cast(topo.head_directions())
    eye = T.eyeball_unit() * A.EYE_RADIUS
    verts = np.concatenate([head, A.LEFT_EYE_CENTRE + eye, A.RIGHT_EYE_CENTRE + eye], 0)
    # landmarks: anatomical (x, y) seen from the front, embedded in the mesh
    anat = surf.cast_front(A.landmark_guides()[:, :2])
    sf, sb = E.embed(topo, anat[STATIC_IDX])
    df, db = E.dynamic_contour(surf, topo, anat[:17])
    lmk = np.concatenate(
        [
            (verts[topo.faces[df[0]]] * db[0][..., None]).sum(1),
            (verts[topo.faces[sf]] * sb[..., None]).sum(1),
        ],
        0,
    )
    # identity basis
    id_rng, ex_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**31, size=2))
    id_fields = B.identity_fields(lmk)
    id_fields += B.random_fields(
        id_rng, N_SHAPE - len(id_fields), amp0=0.0008, decay=10.0, wavelength=(0.06, 0.16)
    )
    id_comp, id_mix = B.principal_components(B.sample(id_fields, _field_points(verts)))
    # expression basis (zero on eyeballs and outside the face support)
    ex_fields = B.expression_fields(lmk, ex_rng, N_EXPR)
    supp = B.expression_support(verts)
    supp[T.N_HEAD :] = 0.0
    ex_comp, ex_mix = B.principal_components(B.sample(ex_fields, verts, supp))
    shapedirs = np.concatenate([id_comp, ex_comp], 1).reshape(T.N_VERTS, 3, N_SHAPE + N_EXPR)
    sto = 0.5 * (lmk[62, 1] + lmk[66, 1])
    return ProceduralWorld(
        seed=seed,
        v_template=verts,
        faces=topo.faces,
        shapedirs=shapedirs,
        posedirs=R.posedirs(),
        J_regressor=R.j_regressor(topo, verts),
        weights=R.lbs_weights(verts, sto),
        static_faces=sf,
        static_bary=sb,
        dynamic_faces=df,
        dynamic_bary=db,
        masks=build_masks(verts, lmk),
        landmarks68=lmk,
        id_fields=id_fields,
        id_mix=id_mix,
        ex_fields=ex_fields,
        ex_mix=ex_mix,
        surface=surf,
    )


# ------------------------------------------------------------------------------------------
# FLAME format
# ------------------------------------------------------------------------------------------
def _dump_pickle(obj: object, path: Path) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)


def write_flame(world: ProceduralWorld, out: Path) -> Path:
    """Write FLAME_NEUTRAL.pkl, flame_static_embedding.pkl, flame_dynamic_embedding.npy,
    FLAME_masks.pkl (+ suite files face_region_1609.npy, head_without_neck.npy, and the
    DAD-3DHeads benchmark's vertex sets head_indices.npy, flame_indices/face.npy) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = {
        "v_template": world.v_template.astype(np.float64),
        "f": world.faces.astype(np.uint32),
        "shapedirs": world.shapedirs.astype(np.float64),
        "posedirs": world.posedirs.astype(np.float64),
        "J_regressor": world.J_regressor.astype(np.float64),
        "J": world.J_regressor @ world.v_template,
        "weights": world.weights.astype(np.float64),
        "kintree_table": R.KINTREE.copy(),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    _dump_pickle(model, out / "FLAME_NEUTRAL.pkl")
    _dump_pickle(
        {
            "lmk_face_idx": world.static_faces.astype(np.uint32),
            "lmk_b_coords": world.static_bary.astype(np.float64),
        },
        out / "flame_static_embedding.pkl",
    )
    np.save(
        out / "flame_dynamic_embedding.npy",
        {
            "lmk_face_idx": world.dynamic_faces.astype(np.int64),
            "lmk_b_coords": world.dynamic_bary.astype(np.float64),
        },
        allow_pickle=True,
    )
    _dump_pickle(world.masks, out / "FLAME_masks.pkl")
    np.save(out / "face_region_1609.npy", world.masks["face"])
    keep = np.setdiff1d(np.arange(T.N_VERTS), world.masks["neck"])
    np.save(out / "head_without_neck.npy", keep.astype(np.int64))
    for name, idx in dad_benchmark_sets(world.masks).items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(out / name, idx)
    (out / VERSION_FILE).write_text(f"{BUILD_VERSION} seed={world.seed}\n")
    return out


# ------------------------------------------------------------------------------------------
# BFM format (Basel Face Model 2009 files + 3DDFA's expression / model_info)
# ------------------------------------------------------------------------------------------
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by facemodels.procedural (deterministic header)"


def _savemat(path: Path, data: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    scipy.io.savemat(buf, data, format="5", do_compression=False, oned_as="column")
    raw = bytearray(buf.getvalue())
    raw[:116] = _MAT_HEADER.ljust(116, b" ")
    path.write_bytes(bytes(raw))


@dataclass
class BfmArraysOut:
    vertices: np.ndarray  # (N, 3) metres
    tri: np.ndarray  # (T, 3) 0-based
    keypoints: np.ndarray  # (68,) 0-based vertex indices
    shape_pc: np.ndarray  # (3N, 199) unit columns
    shape_ev: np.ndarray  # (199,) micrometres
    exp_pc: np.ndarray  # (3N, 29) unit columns
    exp_ev: np.ndarray  # (29,) micrometres


def build_bfm(world: ProceduralWorld) -> BfmArraysOut:
    """The BFM-format mesh (front of the same head, eyes closed by the eyeballs) and bases."""
    surf = copy.copy(world.surface) if world.surface is not None else HeadSurface()
    surf.with_eyes = True
    topo = T.BfmTopology.build()
    th, ph = topo.params()
    # snap the nearest free grid vertex of each landmark onto the landmark's parameters
    lth, lph = angles(world.landmarks68)
    kp = np.zeros(68, dtype=np.int64)
    used: set[int] = set()
    for i in range(68):
        dt = (topo.theta - lth[i])[:, None]
        dp = (topo.phi - lph[i])[None, :] * np.sin(lth[i])
        order = np.argsort((dt**2 + dp**2).ravel(), kind="stable")
        kp[i] = next(int(v) for v in order if int(v) not in used)
        used.add(int(kp[i]))
    th[kp], ph[kp] = lth, lph
    verts = surf.cast(directions(th, ph))
    p = verts.copy()
    # the same raw fields as the FLAME bases (same distribution of heads), principal components
    # taken on this mesh so the PCs are orthonormal with decreasing sds as in the real files
    id_c = B.principal_components(B.sample(world.id_fields, p))[0][:, :N_BFM_SHAPE]
    supp = B.expression_support(p)
    mouth = bfm_mouth_mode(world, p)
    unit = mouth / np.linalg.norm(mouth)
    raw = B.sample(world.ex_fields, p, supp)
    raw -= np.outer(unit, unit @ raw)  # the other modes orthogonal to the mouth mode
    ex_c = B.principal_components(raw)[0][:, : N_BFM_EXPR - 1]
    ex_c = np.insert(ex_c, MOUTH_OPEN_MODE, mouth, axis=1)
    id_n = np.linalg.norm(id_c, axis=0)
    ex_n = np.linalg.norm(ex_c, axis=0)
    return BfmArraysOut(verts, topo.tri, kp, id_c / id_n, id_n * 1e6, ex_c / ex_n, ex_n * 1e6)


def bfm_mouth_mode(world: ProceduralWorld, p: np.ndarray) -> np.ndarray:
    """(3N,) metres per standard deviation, x/y/z interleaved: the mouth-opening mode at the points
    p (N, 3): the FLAME-format rig's jaw (its mean jaw joint and skinning weights) opened by
    MOUTH_OPEN_DEG, divided by MOUTH_OPEN_SD. The real 3DDFA basis opens the mouth in its leading
    modes; the FLAME-format head does it with its jaw joint instead."""
    lm = world.landmarks68
    joint = world.J_regressor[2] @ world.v_template
    sto = 0.5 * (lm[62, 1] + lm[66, 1])
    d = R.jaw_opening(p, joint, sto, np.radians(MOUTH_OPEN_DEG)) / MOUTH_OPEN_SD
    return d.reshape(-1)


def _bfm_texture(
    v: np.ndarray, lmk: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Per-vertex albedo (RGB 0..255) mean, 199 smooth colour components, their sds."""
    col = np.tile(np.array([205.0, 160.0, 140.0]), (len(v), 1))
    lips = _inside_polygon(v[:, :2], lmk[48:60, :2]) & (v[:, 2] > 0.05)
    col[lips] = [175.0, 95.0, 95.0]
    eye_d = np.minimum(
        np.linalg.norm(v - A.LEFT_EYE_CENTRE, axis=1),
        np.linalg.norm(v - A.RIGHT_EYE_CENTRE, axis=1),
    )
    col[eye_d < A.EYE_RADIUS + 2e-4] = [235.0, 235.0, 230.0]
    col[v[:, 1] > A.HAIRLINE_Y] = [70.0, 50.0, 40.0]
    fields = B.random_fields(rng, N_BFM_SHAPE, amp0=1.0, decay=10.0, wavelength=(0.03, 0.2))
    comp, _ = B.principal_components(B.sample(fields, v))
    q = comp / np.linalg.norm(comp, axis=0)
    ev = 2500.0 / (1.0 + np.arange(N_BFM_SHAPE) / 5.0)
    return col.reshape(-1, 1), q, ev


def write_bfm(world: ProceduralWorld, out: Path) -> Path:
    with _single_thread():
        return _write_bfm(world, out)


def _write_bfm(world: ProceduralWorld, out: Path) -> Path:
    """Write 01_MorphableModel.mat, Model_Expression.mat and model_info.mat into ``out``.

    Layout as the real files: interleaved x, y, z; micrometres; float32; 1-based triangles and
    keypoints. ``shapePC`` columns have unit norm and ``shapeEV`` holds standard deviations, so
    ``v = shapeMU + shapePC @ Shape_Para`` with ``Shape_Para ~ N(0, shapeEV^2)``.
    One world: the bases are the leading principal components (199 identity, 29 expression) of
    the same raw deformation fields as the FLAME-format bases, evaluated on this mesh, so both
    formats describe the same distribution of heads (coefficients do not map one to one).
    One exception: the FLAME-format head opens its mouth with the jaw joint, the BFM-format one
    with expression mode MOUTH_OPEN_MODE (:func:`bfm_mouth_mode`, the same jaw; the other 28
    modes are taken orthogonal to it). ``mu_exp`` is zero.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bfm = build_bfm(world)
    n = len(bfm.vertices)
    mu = (bfm.vertices * 1e6).reshape(-1, 1)
    tex_mu, tex_pc, tex_ev = _bfm_texture(
        bfm.vertices, world.landmarks68, np.random.default_rng(world.seed + 7919)
    )
    seg = np.zeros((n, 4))
    lm = world.landmarks68
    v = bfm.vertices
    eye_d = np.minimum(
        np.linalg.norm(v - A.LEFT_EYE_CENTRE, axis=1),
        np.linalg.norm(v - A.RIGHT_EYE_CENTRE, axis=1),
    )
    seg[:, 0] = eye_d < 0.02
    seg[:, 1] = (
        (np.abs(v[:, 0]) < 0.022)
        & (v[:, 1] < lm[27, 1])
        & (v[:, 1] > lm[33, 1] - 0.004)
        & (seg[:, 0] == 0)
    )
    seg[:, 2] = (
        (np.abs(v[:, 0]) < 0.032) & (v[:, 1] <= lm[33, 1] - 0.004) & (v[:, 1] > lm[8, 1] + 0.02)
    )
    seg[:, 3] = seg[:, :3].sum(1) == 0
    f32 = np.float32
    _savemat(
        out / "01_MorphableModel.mat",
        {
            "shapeMU": mu.astype(f32),
            "shapePC": bfm.shape_pc.astype(f32),
            "shapeEV": bfm.shape_ev.reshape(-1, 1).astype(f32),
            "texMU": tex_mu.astype(f32),
            "texPC": tex_pc.astype(f32),
            "texEV": tex_ev.reshape(-1, 1).astype(f32),
            "tl": (bfm.tri + 1).astype(np.float64),
            "segbin": seg.astype(np.uint8),
        },
    )
    _savemat(
        out / "Model_Expression.mat",
        {
            "mu_exp": np.zeros((3 * n, 1), dtype=f32),
            "w_exp": bfm.exp_pc.astype(f32),
            "sigma_exp": bfm.exp_ev.reshape(-1, 1).astype(f32),
            "suite_mouth_open_mode": np.array([[MOUTH_OPEN_MODE]], dtype=np.int32),  # facemodels.bfm.MOUTH_KEY
        },
    )
    mirror = _bfm_mirror(bfm.vertices)
    pairs = np.array([(i, mirror[i]) for i in range(n) if i < mirror[i]], dtype=np.float64).T + 1
    _savemat(
        out / "model_info.mat",
        {
            "keypoints": (bfm.keypoints + 1).astype(np.float64).reshape(1, -1),
            "trimIndex": np.arange(1, n + 1, dtype=np.float64).reshape(-1, 1),
            "tri": (bfm.tri + 1).astype(np.float64).T,
            "symlist": pairs,
            "segbin": seg.astype(np.float64).T,
        },
    )
    (out / VERSION_FILE).write_text(f"{BUILD_VERSION} seed={world.seed}\n")
    return out


def _bfm_mirror(v: np.ndarray) -> np.ndarray:
    """Index of the nearest vertex to each vertex's mirror image."""
    from scipy.spatial import cKDTree

    _, idx = cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))
    return idx.astype(np.int64)


def build_folders(flame_out: Path | None, bfm_out: Path | None, seed: int = 0) -> ProceduralWorld:
    """Build the world once and write the requested formats."""
    world = build_world(seed)
    if flame_out is not None:
        write_flame(world, Path(flame_out))
    if bfm_out is not None:
        write_bfm(world, Path(bfm_out))
    return world
