"""Seeded scene sampler and scene renderer for the procedural face world.

``SceneSampler(flame_dir, seed).sample(i)`` draws every parameter of scene ``i`` (identity,
expression incl. jaw opening and gaze, head pose, camera, lighting, albedo, background,
occluders) from ``np.random.default_rng([seed, i])``: scenes are deterministic per
(seed, i) and can be generated in any order or in parallel.

``render_scene(scene, model, size)`` evaluates FLAME, places the camera and renders with
:mod:`facemodels.render`, returning the image with exact labels (:class:`RenderedSample`).

Pose convention: the head's rotation is carried by the camera (``global_orient = 0`` in
FLAME, ``R = diag(1, -1, -1) @ euler_to_matrix([yaw, pitch, roll])``), so ``vertices``
are in model space as DAD-3DHeads stores them and the 68 landmarks use the zero-pose
dynamic contour (as DAD-3DHeads does).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from facemodels.albedo import HAIR_COLORS, IRIS_COLORS, AlbedoParams, vertex_albedo
from facemodels.cameras import default_focal, intrinsics, model_to_cv_rotation, project_perspective
from facemodels.flame import FlameModel
from facemodels.flame_files import load_flame_arrays
from facemodels.flame_regions import vertex_regions
from facemodels.render import BACKGROUND_KINDS, BackgroundSpec, Lighting, Occluder, render_mesh
from facemodels.rotations import euler_to_matrix


@dataclass
class SamplerConfig:
    """Distributions of :class:`SceneSampler` (angles in degrees, lengths in metres).

    Attributes:
        n_shape, n_exp: number of identity / expression coefficients drawn.
        shape_std, exp_std: std of the N(0, std) coefficients.
        p_neutral: probability of a neutral expression (all expression parameters zero).
        jaw_open_max: maximal jaw opening (rotation about x), degrees; p_jaw_open: probability.
        gaze_max: maximal eye rotation (yaw and pitch), degrees.
        yaw_range, pitch_range, roll_range: hard limits (+-).
        yaw_dist: "uniform" over +-yaw_range or "normal" with yaw_std (clipped).
        pitch_std, roll_std: std of the clipped normals for pitch and roll.
        focal_scale: (lo, hi) focal length as a multiple of ``default_focal`` (log-uniform).
        fill: (lo, hi) head diameter / image size.
        shift: maximal off-centre shift of the head centre, fraction of the image size.
        p_occluder: probability of having occluders; max_occluders per image.
        background_kinds: kinds drawn uniformly.
        ssaa: supersampling factor of the renderer.
    """

    n_shape: int = 50
    n_exp: int = 20
    shape_std: float = 1.0
    exp_std: float = 1.0
    p_neutral: float = 0.15
    jaw_open_max: float = 25.0
    p_jaw_open: float = 0.5
    gaze_max: float = 20.0
    yaw_range: float = 90.0
    pitch_range: float = 45.0
    roll_range: float = 30.0
    yaw_dist: str = "uniform"
    yaw_std: float = 40.0
    pitch_std: float = 15.0
    roll_std: float = 10.0
    focal_scale: tuple[float, float] = (0.7, 1.8)
    fill: tuple[float, float] = (0.55, 0.8)
    shift: float = 0.06
    p_occluder: float = 0.3
    max_occluders: int = 2
    background_kinds: tuple[str, ...] = BACKGROUND_KINDS
    ssaa: int = 1


@dataclass
class Scene:
    """Every parameter of one rendered sample.

    Attributes:
        index, seed: the (seed, i) pair it was drawn from.
        flame_dir: the FLAME-format folder (str) the scene is meant for.
        shape: (n_shape,) identity coefficients.  expression: (n_exp,).
        jaw_pose: (3,) axis-angle radians.  eye_pose: (6,) axis-angle radians (left, right).
        neck_pose: (3,) axis-angle radians.
        yaw, pitch, roll: head pose in degrees (model Euler, facemodels.rotations).
        focal_scale: focal / default_focal(size, size).
        fill: head diameter / image size.
        shift: (2,) head-centre offset from the image centre, fraction of the image size.
        lighting, albedo, background, occluders: appearance.
    """

    index: int
    seed: int
    flame_dir: str
    shape: np.ndarray
    expression: np.ndarray
    jaw_pose: np.ndarray
    eye_pose: np.ndarray
    neck_pose: np.ndarray
    yaw: float
    pitch: float
    roll: float
    focal_scale: float
    fill: float
    shift: np.ndarray
    lighting: Lighting
    albedo: AlbedoParams
    background: BackgroundSpec
    occluders: list[Occluder] = field(default_factory=list)
    ssaa: int = 1


@dataclass
class RenderedSample:
    """A rendered scene with its labels.

    Attributes:
        image: (H, W, 3) uint8.
        vertices: (5023, 3) float32 model space, metres.
        K: (3, 3) pixels.  R: (3, 3).  t: (3,) metres (model -> CV camera), float64.
        landmarks68_px: (68, 2) float32 pixels.  landmarks68: (68, 3) model space, metres.
        vertex_px: (5023, 2) float32 pixels.  vertex_depth: (5023,) metres.
        visibility: (5023,) bool (self-occlusion z-test; occluders not counted).
        depth: (H, W) float32 metres, +inf background.
        bbox: (4,) float32 [x, y, w, h] pixels of the projected head vertices.
        occluder_mask: (H, W) bool.
    """

    image: np.ndarray
    vertices: np.ndarray
    K: np.ndarray
    R: np.ndarray
    t: np.ndarray
    landmarks68_px: np.ndarray
    landmarks68: np.ndarray
    vertex_px: np.ndarray
    vertex_depth: np.ndarray
    visibility: np.ndarray
    depth: np.ndarray
    bbox: np.ndarray
    occluder_mask: np.ndarray


def _clipped_normal(rng: np.random.Generator, std: float, lim: float) -> float:
    return float(np.clip(rng.normal(0.0, std), -lim, lim))


def _random_color(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(v) for v in rng.random(3))


class SceneSampler:
    """Deterministic sampler of :class:`Scene` objects.

    Args:
        flame_dir: FLAME-format folder the scenes are for (stored in each scene).
        seed: base seed; scene i uses ``np.random.default_rng([seed, i])``.
        config: :class:`SamplerConfig` (defaults cover yaw +-90, pitch +-45, roll +-30).
    """

    def __init__(
        self, flame_dir: str | Path, seed: int = 0, config: SamplerConfig | None = None
    ) -> None:
        self.flame_dir = str(flame_dir)
        self.seed = int(seed)
        self.config = config or SamplerConfig()
        if self.config.yaw_dist not in ("uniform", "normal"):
            raise ValueError(
                f"facemodels.sampler.SamplerConfig.yaw_dist must be 'uniform' or 'normal', got {self.config.yaw_dist!r}"
            )

    def sample(self, i: int) -> Scene:
        """Scene ``i`` (any non-negative int), identical on every call and machine."""
        if i < 0:
            raise ValueError(f"facemodels.sampler.SceneSampler.sample: index must be >= 0, got {i}")
        c = self.config
        rng = np.random.default_rng([self.seed, int(i)])
        shape = rng.normal(0.0, c.shape_std, c.n_shape)
        neutral = rng.random() < c.p_neutral
        expression = np.zeros(c.n_exp) if neutral else rng.normal(0.0, c.exp_std, c.n_exp)
        jaw = np.zeros(3)
        if not neutral and rng.random() < c.p_jaw_open:
            jaw[0] = math.radians(rng.uniform(0.0, c.jaw_open_max))
            jaw[1] = math.radians(rng.normal(0.0, 2.0))
        g_yaw, g_pitch = (math.radians(v) for v in rng.uniform(-c.gaze_max, c.gaze_max, 2))
        eye = np.array([g_pitch, g_yaw, 0.0] * 2)
        neck = np.zeros(3)

        if c.yaw_dist == "uniform":
            yaw = float(rng.uniform(-c.yaw_range, c.yaw_range))
        else:
            yaw = _clipped_normal(rng, c.yaw_std, c.yaw_range)
        pitch = _clipped_normal(rng, c.pitch_std, c.pitch_range)
        roll = _clipped_normal(rng, c.roll_std, c.roll_range)

        lo, hi = c.focal_scale
        focal_scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        fill = float(rng.uniform(*c.fill))
        shift = rng.uniform(-c.shift, c.shift, 2)

        # Light mostly from the camera's hemisphere: azimuth/elevation within +-70 degrees.
        az, el = (math.radians(v) for v in rng.uniform(-70.0, 70.0, 2))
        direction = (math.sin(az) * math.cos(el), -math.sin(el) * 0.8, -math.cos(az) * math.cos(el))
        warm = rng.uniform(-0.08, 0.08)
        lighting = Lighting(
            direction=direction,
            ambient=float(rng.uniform(0.25, 0.6)),
            diffuse=float(rng.uniform(0.4, 0.85)),
            color=(1.0 + warm, 1.0, 1.0 - warm),
        )
        albedo = AlbedoParams(
            skin_tone=float(rng.random()),
            skin_redness=float(rng.uniform(-1, 1)),
            hair_color=tuple(
                float(v)
                for v in HAIR_COLORS[rng.integers(len(HAIR_COLORS))] * rng.uniform(0.85, 1.15)
            ),
            iris_color=tuple(float(v) for v in IRIS_COLORS[rng.integers(len(IRIS_COLORS))]),
            lip_redness=float(rng.uniform(0.3, 0.8)),
            brow_strength=float(rng.uniform(0.5, 0.9)),
            variation=float(rng.uniform(0.01, 0.05)),
            seed=int(rng.integers(2**31)),
        )
        background = BackgroundSpec(
            kind=str(c.background_kinds[rng.integers(len(c.background_kinds))]),
            color_a=_random_color(rng),
            color_b=_random_color(rng),
            angle=float(rng.uniform(0, 2 * math.pi)),
            frequency=float(rng.uniform(2, 12)),
            seed=int(rng.integers(2**31)),
            grain=float(rng.choice([0.0, 0.0, rng.uniform(0.0, 0.04)])),
        )
        occluders: list[Occluder] = []
        if rng.random() < c.p_occluder:
            for _ in range(int(rng.integers(1, c.max_occluders + 1))):
                occluders.append(
                    Occluder(
                        shape=str(rng.choice(["rect", "ellipse"])),
                        center=tuple(float(v) for v in 0.5 + rng.uniform(-0.35, 0.35, 2)),
                        size=tuple(float(v) for v in rng.uniform(0.08, 0.3, 2)),
                        angle=float(rng.uniform(0, math.pi)),
                        color=_random_color(rng),
                    )
                )
        return Scene(
            index=int(i),
            seed=self.seed,
            flame_dir=self.flame_dir,
            shape=shape,
            expression=expression,
            jaw_pose=jaw,
            eye_pose=eye,
            neck_pose=neck,
            yaw=yaw,
            pitch=pitch,
            roll=roll,
            focal_scale=focal_scale,
            fill=fill,
            shift=shift,
            lighting=lighting,
            albedo=albedo,
            background=background,
            occluders=occluders,
            ssaa=c.ssaa,
        )


# --------------------------------------------------------------------------------------- render


@dataclass
class _Assets:
    faces: np.ndarray  # (F, 3) int64
    regions: dict[str, np.ndarray]
    template: np.ndarray  # (N, 3) rest-pose vertices, metres


@functools.lru_cache(maxsize=4)
def _assets(flame_dir: str) -> _Assets:

    arrays = load_flame_arrays(flame_dir)
    faces = np.asarray(arrays.faces, dtype=np.int64)
    template = getattr(arrays, "v_template", None)
    if template is None:
        template = FlameModel(flame_dir)().vertices[0].detach().cpu().numpy()
    regions = {k: np.asarray(v, dtype=np.int64) for k, v in vertex_regions(flame_dir).items()}
    return _Assets(faces, regions, np.asarray(template, dtype=np.float64))


def _fit_params(x: np.ndarray, n: int | None) -> torch.Tensor:
    """(k,) -> (1, n) float32 tensor, truncated or zero-padded to the model's size n."""
    if n is not None:
        x = np.concatenate([x[:n], np.zeros(max(0, n - x.size))])
    return torch.as_tensor(x, dtype=torch.float32)[None]


def scene_geometry(scene: Scene, model) -> tuple[np.ndarray, np.ndarray]:
    """FLAME vertices (N, 3) and 68 landmarks (68, 3), model space metres, float64."""
    n_shape = getattr(model, "n_shape", None)
    n_exp = getattr(model, "n_exp", None)
    with torch.no_grad():
        out = model(
            shape=_fit_params(scene.shape, n_shape),
            expression=_fit_params(scene.expression, n_exp),
            global_orient=torch.zeros(1, 3),
            neck_pose=torch.as_tensor(scene.neck_pose, dtype=torch.float32)[None],
            jaw_pose=torch.as_tensor(scene.jaw_pose, dtype=torch.float32)[None],
            eye_pose=torch.as_tensor(scene.eye_pose, dtype=torch.float32)[None],
            transl=torch.zeros(1, 3),
        )
    return out.vertices[0].double().cpu().numpy(), out.landmarks68[0].double().cpu().numpy()


def scene_camera(
    scene: Scene, vertices: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Place the camera: head pose, focal length, distance for the requested fill, shift.

    Args:
        scene: :class:`Scene`.  vertices: (N, 3) model space.  size: image side, pixels.
    Returns:
        K (3, 3) px, R (3, 3), t (3,) metres, float64.
    """
    f = scene.focal_scale * default_focal(size, size)
    K = intrinsics(torch.tensor(f, dtype=torch.float64), size / 2.0, size / 2.0).numpy()
    angles = torch.tensor([scene.yaw, scene.pitch, scene.roll], dtype=torch.float64)
    R = model_to_cv_rotation(euler_to_matrix(angles)).numpy()
    centre = 0.5 * (vertices.min(0) + vertices.max(0))  # model space
    radius = float(np.linalg.norm(vertices - centre, axis=1).max())
    distance = f * 2.0 * radius / (scene.fill * size)
    target = np.array(
        [scene.shift[0] * size * distance / f, scene.shift[1] * size * distance / f, distance]
    )  # camera-frame position of the head centre
    t = target - R @ centre
    return K, R, t


def render_scene(scene: Scene, model, size: int = 256) -> RenderedSample:
    """Render one scene with exact labels.

    Args:
        scene: from :meth:`SceneSampler.sample`.
        model: a ``facemodels.flame.FlameModel`` for ``scene.flame_dir``.
        size: image side in pixels.
    Returns:
        :class:`RenderedSample`.
    """
    assets = _assets(scene.flame_dir)
    verts, lmk = scene_geometry(scene, model)
    if verts.shape[0] != assets.template.shape[0]:
        raise ValueError(
            f"facemodels.sampler.render_scene: model gives {verts.shape[0]} vertices but "
            f"{scene.flame_dir} has {assets.template.shape[0]}"
        )
    K, R, t = scene_camera(scene, verts, size)
    albedo = vertex_albedo(assets.regions, assets.template, scene.albedo, assets.faces)
    out = render_mesh(
        verts,
        assets.faces,
        K,
        R,
        t,
        albedo,
        size,
        scene.lighting,
        scene.background,
        scene.occluders,
        ssaa=scene.ssaa,
    )
    lmk_px, _ = project_perspective(
        torch.from_numpy(lmk)[None],
        torch.from_numpy(R)[None],
        torch.from_numpy(t)[None],
        torch.from_numpy(K)[None],
    )
    uv = out.vertex_px.astype(np.float64)
    x0, y0 = uv.min(0)
    x1, y1 = uv.max(0)
    return RenderedSample(
        image=out.image,
        vertices=verts.astype(np.float32),
        K=K,
        R=R,
        t=t,
        landmarks68_px=lmk_px[0].numpy().astype(np.float32),
        landmarks68=lmk.astype(np.float32),
        vertex_px=out.vertex_px,
        vertex_depth=out.vertex_depth,
        visibility=out.visibility,
        depth=out.depth,
        bbox=np.array([x0, y0, x1 - x0, y1 - y0], dtype=np.float32),
        occluder_mask=out.occluder_mask,
    )
