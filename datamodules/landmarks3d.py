"""In-memory 3D iBUG-68 landmark sets with view augmentation, for the lifting methods.

Shapes come from the morphable models of the procedural world (or the real files, via
FACESUITE_FLAME_DIR / FACESUITE_BFM_DIR): FLAME (random shape, expression and jaw) and
the BFM-format model (random identity and expression), both as iBUG-68 landmarks in
model space (metres, y up, z out of the face). The two sources are brought into one
frame by a rigid alignment of the BFM mean landmarks onto the FLAME mean landmarks, so
nothing relies on either model's axis conventions beyond "y up, z forward" for FLAME.

Every training pass draws a new weak-perspective view per face (yaw, pitch, roll, scale,
translation; optionally perspective) and adds Gaussian 2D noise, batch-wise
(`RandomViewBatches`). Validation / test views are drawn once per split (seeded,
`FixedViewsDataset`). Identities are disjoint across splits (each split draws its own
random parameters from its own seed).

Batch keys (docs/ARCHITECTURE.md; `landmarks3d_model` is specific to this module):
- `landmarks_px` (B, 68, 2): noisy 2D input, image px (x right, y down).
- `landmarks3d` (B, 68, 3): clean x, y (px) and depth z in px, positive towards the
  camera, zero-mean over the landmarks.
- `landmarks3d_model` (B, 68, 3): the same face in model space, metres, centred.
- `yaw` (B,) degrees; `index` (B,) int64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pytorch_lightning import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from facemodels.bfm import LinearBFM
from facemodels.flame import FlameModel
from facemodels.procrustes import rigid_align
from facemodels.rotations import euler_to_matrix
from facemodels.world import default_bfm_dir, default_flame_dir

IBUG68 = 68


# --------------------------------------------------------------------------------------
# shape sources (model space, metres)
# --------------------------------------------------------------------------------------
def _intensity(n: int, g: torch.Generator, intensity_max: float | None, dtype=torch.float32) -> Tensor:
    """(n, 1) per-face expression intensity: U(0, intensity_max), or ones when None (plain Gaussian)."""
    if intensity_max is None:
        return torch.ones(n, 1, dtype=dtype)
    return torch.rand(n, 1, generator=g, dtype=dtype) * intensity_max


def flame_landmarks68(
    n: int, seed: int, n_shape: int = 100, n_exp: int = 50, shape_std: float = 1.0,
    exp_std: float = 1.0, jaw_max_deg: float = 20.0, folder: str | None = None,
    exp_intensity_max: float | None = None, jaw_open_prob: float = 1.0, exp_clip: float = 3.0,
) -> Tensor:
    """Random FLAME faces at zero global pose -> (n, 68, 3) iBUG-68 landmarks, metres.

    Identity: N(0, shape_std^2) per coefficient. Expression: N(0, exp_std^2) per coefficient,
    times a per-face intensity U(0, exp_intensity_max) when given (neutral to strong faces,
    as in real data, instead of every face at the same strength), clipped to +-exp_clip.
    Jaw opening (rotation about x, degrees): with probability jaw_open_prob U(0, jaw_max_deg),
    otherwise a closed mouth U(0, 2 deg) (jaw_open_prob=1: uniform for every face).
    """

    g = torch.Generator().manual_seed(seed)
    model = FlameModel(folder or default_flame_dir(), n_shape=n_shape, n_exp=n_exp)
    shape = torch.randn(n, n_shape, generator=g) * shape_std
    exp = torch.randn(n, n_exp, generator=g) * exp_std
    exp = (exp * _intensity(n, g, exp_intensity_max)).clamp(-exp_clip, exp_clip)
    jaw = torch.zeros(n, 3)
    opened = torch.rand(n, generator=g) < jaw_open_prob
    jaw_deg = torch.where(opened, torch.rand(n, generator=g) * jaw_max_deg,
                          torch.rand(n, generator=g) * min(2.0, jaw_max_deg))
    jaw[:, 0] = jaw_deg * (math.pi / 180.0)
    out = []
    with torch.no_grad():
        for s in range(0, n, 512):
            m = min(512, n - s)
            o = model(shape=shape[s : s + m], expression=exp[s : s + m], jaw_pose=jaw[s : s + m],
                      global_orient=torch.zeros(m, 3), transl=torch.zeros(m, 3))
            out.append(o.landmarks68.float())
    return torch.cat(out)


def bfm_landmarks68(
    n: int, seed: int, n_id: int = 80, n_exp: int = 29, id_std: float = 1.0,
    exp_std: float = 1.0, folder: str | None = None, exp_intensity_max: float | None = None,
    exp_clip: float = 3.0, mouth_std: float | None = None,
) -> Tensor:
    """Random BFM-format faces -> (n, 68, 3) iBUG-68 landmarks, metres (file unit um * 1e-6).

    Identity / expression coefficients are in units of the model's standard deviations
    (the first n_id / n_exp modes; the rest zero); Exp_Para as in flame_landmarks68: times a
    per-face intensity U(0, exp_intensity_max) when given, clipped to +-exp_clip. The
    mouth-opening mode the files declare (LinearBFM.mouth_open_mode) draws |N(0, mouth_std)|
    instead (None: exp_std), so mouths go from closed to open and lips never cross, as
    threeddfa.sample_expression. Only the 68 keypoint rows of the bases are evaluated (cheap also
    for the real 53k-vertex model).
    """

    g = torch.Generator().manual_seed(seed)
    model = LinearBFM(folder or default_bfm_dir())
    if n_id > model.n_shape or n_exp > model.n_exp:
        raise ValueError(
            f"bfm_landmarks68: {model.folder} has {model.n_shape} identity / {model.n_exp} expression modes, "
            f"asked for n_id={n_id}, n_exp={n_exp}"
        )
    kp = model.keypoints68
    rows = (3 * kp[:, None] + torch.arange(3)[None]).reshape(-1)  # (204,) interleaved x, y, z rows
    mean = model.mean[kp].double()  # (68, 3) um
    id_pc = model.shape_pc[rows, :n_id].double() * model.shape_std[:n_id].double()  # (204, n_id) um per std
    exp_pc = model.exp_pc[rows, :n_exp].double() * model.exp_std[:n_exp].double()
    a = torch.randn(n, n_id, generator=g, dtype=torch.float64) * id_std
    z = torch.randn(n, n_exp, generator=g, dtype=torch.float64)
    e = z * exp_std
    m = model.mouth_open_mode
    if m is not None and m < n_exp:
        e[:, m] = z[:, m].abs() * (exp_std if mouth_std is None else mouth_std)
    e = (e * _intensity(n, g, exp_intensity_max, torch.float64)).clamp(-exp_clip, exp_clip)
    lm = mean + (a @ id_pc.T + e @ exp_pc.T).view(n, 68, 3)
    return (lm * 1e-6).float()


# --------------------------------------------------------------------------------------
# views
# --------------------------------------------------------------------------------------
@dataclass
class ViewConfig:
    """Ranges of the random camera. Angles in degrees, uniform in [-max, max]."""

    yaw_max: float = 90.0
    pitch_max: float = 30.0
    roll_max: float = 25.0
    px_per_metre: tuple[float, float] = (500.0, 1500.0)  # face ~ 70-210 px wide
    translation_px: float = 40.0
    image_size: int = 256
    perspective_prob: float = 0.3
    camera_distance_m: tuple[float, float] = (0.4, 3.0)
    noise_iod: float = 0.02  # 2D noise std as a fraction of the outer-eye distance


def sample_views(shapes: Tensor, cfg: ViewConfig, gen: torch.Generator) -> dict[str, Tensor]:
    """Random views of model-space shapes.

    shapes: (B, L, 3) metres, model space (y up, z out of the face), any position.
    Returns `landmarks_px` (B, L, 2) noisy, `landmarks3d` (B, L, 3) clean (x, y px, z px
    towards the camera, zero-mean), `landmarks3d_model` (B, L, 3) centred metres, `yaw`.
    """
    b = shapes.shape[0]
    centred = shapes - shapes.mean(1, keepdim=True)

    def unif(lo: float, hi: float) -> Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=gen)

    yaw = unif(-cfg.yaw_max, cfg.yaw_max)
    ang = torch.stack([yaw, unif(-cfg.pitch_max, cfg.pitch_max), unif(-cfg.roll_max, cfg.roll_max)], -1)
    rot = euler_to_matrix(ang)  # (B, 3, 3) model space
    cam = centred @ rot.transpose(1, 2)  # (B, L, 3) y up, z towards the camera
    s = unif(*cfg.px_per_metre).view(b, 1, 1)
    # optional perspective: points nearer the camera (larger z) are magnified
    persp = (torch.rand(b, generator=gen) < cfg.perspective_prob).float().view(b, 1, 1)
    dist = unif(*cfg.camera_distance_m).view(b, 1, 1)
    mag = persp * dist / (dist - cam[..., 2:3]).clamp_min(0.05) + (1 - persp)
    c = cfg.image_size / 2
    t = c + cfg.translation_px * (2 * torch.rand(b, 1, 2, generator=gen) - 1)
    x = s * cam[..., 0:1] * mag
    y = -s * cam[..., 1:2] * mag  # image y down
    xy = torch.cat([x, y], -1) + t
    z = s * cam[..., 2:3]
    z = z - z.mean(1, keepdim=True)
    lm3d = torch.cat([xy, z], -1)
    # noise scale: the 3D outer-eye distance in px (the 2D one vanishes in profile views)
    iod = s * (cam[:, 36] - cam[:, 45]).norm(dim=-1).view(b, 1, 1) if xy.shape[1] == IBUG68 else s * 0.1
    noisy = xy + cfg.noise_iod * iod * torch.randn(xy.shape, generator=gen)
    return {"landmarks_px": noisy, "landmarks3d": lm3d, "landmarks3d_model": centred, "yaw": yaw}


@dataclass
class ShapeAugment:
    """Training-only changes to the model-space shapes before each view, for faces beyond the two
    morphable models (real faces are neither): `scale_xyz` per-axis face proportions, each axis scaled
    by U(1 - r, 1 + r) independently (long / wide / deep faces); `jitter_iod` per-landmark 3D offsets,
    N(0, (j x outer-eye distance)^2) per coordinate (where annotators or another model put a landmark).
    Both zero = off."""

    scale_xyz: float = 0.0
    jitter_iod: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.scale_xyz < 1 and self.jitter_iod >= 0):
            raise ValueError(f"ShapeAugment: need 0 <= scale_xyz < 1 and jitter_iod >= 0, got {self}")

    def __call__(self, shapes: Tensor, gen: torch.Generator) -> Tensor:
        """shapes (B, L, 3) metres -> (B, L, 3) metres."""
        b = shapes.shape[0]
        out = shapes
        if self.scale_xyz > 0:
            centre = shapes.mean(1, keepdim=True)
            scale = 1 + self.scale_xyz * (2 * torch.rand(b, 1, 3, generator=gen) - 1)
            out = centre + (shapes - centre) * scale
        if self.jitter_iod > 0:
            iod = (shapes[:, 36] - shapes[:, 45]).norm(dim=-1).view(b, 1, 1) if shapes.shape[1] == IBUG68 else 0.1
            out = out + self.jitter_iod * iod * torch.randn(out.shape, generator=gen)
        return out


class FixedViewsDataset(Dataset):
    """Views drawn once (seeded) of a fixed pool of shapes: item i is always the same.

    shapes: (N, L, 3) metres. Views are drawn in one batched call at construction.
    """

    def __init__(self, shapes: Tensor, cfg: ViewConfig, seed: int) -> None:
        _check_shapes(shapes, "FixedViewsDataset")
        self.items = sample_views(shapes, cfg, torch.Generator().manual_seed(seed))
        self.items["index"] = torch.arange(shapes.shape[0], dtype=torch.int64)

    def __len__(self) -> int:
        return self.items["index"].shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.items.items()}


class RandomViewBatches(IterableDataset):
    """Training batches: each pass shuffles `views_per_shape` copies of the shape pool and
    draws a fresh random view per face, one batched `sample_views` call per batch (use
    with `DataLoader(batch_size=None)`). The pass's seed comes from torch's global RNG,
    so `seed_everything` makes training reproducible and worker processes differ.
    Yields dicts of (B, ...) tensors, keys as `sample_views` plus `index` (B,) int64.
    """

    def __init__(self, shapes: Tensor, cfg: ViewConfig, batch_size: int, views_per_shape: int = 1,
                 drop_last: bool = False, augment: ShapeAugment | None = None) -> None:
        _check_shapes(shapes, "RandomViewBatches")
        if batch_size < 1 or views_per_shape < 1:
            raise ValueError(f"RandomViewBatches: batch_size and views_per_shape must be >= 1, got {batch_size}, {views_per_shape}")
        self.shapes, self.cfg, self.batch_size = shapes, cfg, batch_size
        self.views_per_shape, self.drop_last = views_per_shape, drop_last
        self.augment = augment or ShapeAugment()

    def __len__(self) -> int:
        n = self.shapes.shape[0] * self.views_per_shape
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
        n = self.shapes.shape[0]
        order = torch.randperm(n * self.views_per_shape, generator=gen) % n
        starts = list(range(0, order.numel(), self.batch_size))
        info = get_worker_info()
        if info is not None:  # split the batches of this pass among the workers
            starts = starts[info.id :: info.num_workers]
        for s in starts:
            idx = order[s : s + self.batch_size]
            if self.drop_last and idx.numel() < self.batch_size:
                continue
            out = sample_views(self.augment(self.shapes[idx], gen), self.cfg, gen)
            out["index"] = idx.to(torch.int64)
            yield out


def _check_shapes(shapes: Tensor, who: str) -> None:
    if shapes.dim() != 3 or shapes.shape[-1] != 3:
        raise ValueError(f"{who}: shapes must be (N, L, 3) metres, got {tuple(shapes.shape)}")


class Landmarks3DDataModule(LightningDataModule):
    """iBUG-68 3D landmark sets from FLAME- and BFM-format sources with random views.

    n_train / n_val / n_test: identities per split (disjoint random draws);
    bfm_fraction: share of identities from the BFM-format model (the rest FLAME);
    eval_bfm_fraction: the same for the val / test splits (default: bfm_fraction); 0 / 1 against
      1 / 0 gives the cross-source split (train on one face model, test on the other);
    shapes: optional {'train','val','test'} -> (N, 68, 3) model-space shapes used instead;
    views_per_shape: accesses per identity per epoch (each a new random view in training);
    augment: `ShapeAugment` fields (training only; default off).
    """

    def __init__(
        self,
        n_train: int = 4000,
        n_val: int = 500,
        n_test: int = 1000,
        bfm_fraction: float = 0.5,
        eval_bfm_fraction: float | None = None,
        views_per_shape: int = 4,
        batch_size: int = 256,
        num_workers: int = 0,
        seed: int = 0,
        landmark_set: str = "ibug68",
        image_size: int = 256,
        view: ViewConfig | dict | None = None,
        flame_kwargs: dict | None = None,
        bfm_kwargs: dict | None = None,
        shapes: dict[str, Tensor] | None = None,
        augment: ShapeAugment | dict | None = None,
    ) -> None:
        super().__init__()
        if landmark_set != "ibug68":
            raise ValueError(f"Landmarks3DDataModule: landmark_set must be 'ibug68', got {landmark_set!r}")
        for key, frac in (("bfm_fraction", bfm_fraction), ("eval_bfm_fraction", eval_bfm_fraction)):
            if frac is not None and not 0.0 <= frac <= 1.0:
                raise ValueError(f"Landmarks3DDataModule: {key} must be in [0, 1], got {frac}")
        self.save_hyperparameters(logger=False, ignore=["shapes"])
        view = dict(view or {})
        view.setdefault("image_size", image_size)
        self.view = view if isinstance(view, ViewConfig) else ViewConfig(**view)
        self.augment = augment if isinstance(augment, ShapeAugment) else ShapeAugment(**dict(augment or {}))
        # shapes: optional pre-made {'train', 'val', 'test'} -> (N, 68, 3) model-space shapes
        # (metres) replacing the FLAME / BFM sources (e.g. real 3D annotations, tests)
        self.shapes: dict[str, Tensor] = dict(shapes) if shapes else {}
        for split, v in self.shapes.items():
            if v.dim() != 3 or v.shape[1:] != (IBUG68, 3):
                raise ValueError(f"Landmarks3DDataModule: shapes[{split!r}] must be (N, 68, 3), got {tuple(v.shape)}")

    def _make_split(self, n: int, seed: int, bfm_fraction: float | None = None) -> Tensor:
        """(n, 68, 3) model-space shapes, metres: FLAME and BFM-format identities."""
        hp = self.hparams
        fk, bk = dict(hp.flame_kwargs or {}), dict(hp.bfm_kwargs or {})
        n_bfm = int(round(n * (hp.bfm_fraction if bfm_fraction is None else bfm_fraction)))
        parts = []
        if n - n_bfm > 0:
            parts.append(flame_landmarks68(n - n_bfm, seed, **fk))
        if n_bfm > 0:
            parts.append(bfm_in_flame_frame(n_bfm, seed + 7, fk, bk))
        return torch.cat(parts)

    def setup(self, stage: str | None = None) -> None:
        if self.shapes:
            return
        hp = self.hparams
        # distinct seeds per split -> disjoint random identities
        self.shapes = {
            "train": self._make_split(hp.n_train, hp.seed * 101 + 1),
            "val": self._make_split(hp.n_val, hp.seed * 101 + 2, hp.eval_bfm_fraction),
            "test": self._make_split(hp.n_test, hp.seed * 101 + 3, hp.eval_bfm_fraction),
        }

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        ds = RandomViewBatches(self.shapes["train"], self.view, hp.batch_size, hp.views_per_shape,
                               augment=self.augment)
        return DataLoader(ds, batch_size=None, num_workers=hp.num_workers)

    def _fixed_loader(self, split: str, offset: int) -> DataLoader:
        ds = FixedViewsDataset(self.shapes[split], self.view, seed=self.hparams.seed * 7 + offset)
        return DataLoader(ds, batch_size=self.hparams.batch_size, shuffle=False, num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._fixed_loader("val", 1)

    def test_dataloader(self) -> DataLoader:
        return self._fixed_loader("test", 2)


def bfm_in_flame_frame(n: int, seed: int, flame_kwargs: dict | None = None, bfm_kwargs: dict | None = None) -> Tensor:
    """(n, 68, 3) random BFM-format faces (`bfm_landmarks68(n, seed, **bfm_kwargs)`), metres, moved into
    the FLAME frame by the one rigid map that takes the BFM mean landmarks onto the FLAME mean landmarks
    (one map for all faces keeps their variation)."""
    fk, bk = dict(flame_kwargs or {}), dict(bfm_kwargs or {})
    ref = flame_landmarks68(1, 0, **{**fk, "shape_std": 0.0, "exp_std": 0.0, "jaw_max_deg": 0.0})[0]
    bfm_mean = bfm_landmarks68(1, 0, **{**bk, "id_std": 0.0, "exp_std": 0.0, "mouth_std": 0.0})[0]
    return rigid_from_mean(bfm_mean, ref, bfm_landmarks68(n, seed, **bk))


def rigid_from_mean(src_mean: Tensor, ref: Tensor, shapes: Tensor) -> Tensor:
    """Apply to `shapes` (N, L, 3) the rigid map (proper rotation + translation) that best
    takes `src_mean` (L, 3) onto `ref` (L, 3)."""
    fit = rigid_align(src_mean, ref)
    return shapes @ fit.R.T + fit.t
