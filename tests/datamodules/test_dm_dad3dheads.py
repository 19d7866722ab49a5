"""DAD-3DHeads on the procedural world: tiny write / read round trip, projection equal to
the renderer's, the DataModule batch contract (face1609, subsets, ibug68), flips through the
camera, default data written once, corrupt files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.crop_geometry import apply_affine, crop_matrix
from datamodules.dad3dheads import Dad3DHeadsDataModule
from datamodules.dad3dheads_dataset import Dad3DHeadsDataset
from datamodules.flame_info import flame_topology
from datamodules.formats import dad
from datamodules.writers.dad3dheads import render_scenes, write_dad3dheads

SIZE = 128


@pytest.fixture(scope="module")
def world():
    from facemodels.flame import FlameModel
    from facemodels.world import default_flame_dir

    fd = str(default_flame_dir())
    return fd, FlameModel(fd)


@pytest.fixture(scope="module")
def dad_dir(tmp_path_factory, world):
    out = tmp_path_factory.mktemp("dad")
    write_dad3dheads(out, n_train=4, n_val=4, n_test=1, image_size=SIZE, seed=5, flame_dir=world[0], n_jobs=1,
                     chunk=3)
    return out


@pytest.fixture(scope="module")
def rendered(world):
    """The renderer's own labels of scenes 0 (train) and 4 (first val) at seed 5."""
    from facemodels.sampler import SceneSampler

    fd, model = world
    return {i: r for i, (_, r) in zip((0, 4), render_scenes(SceneSampler(fd, 5), model, [0, 4], SIZE),
                                         strict=True)}


def test_dad_layout_and_index(dad_dir):
    for split, n in (("train", 4), ("val", 4), ("test", 1)):
        entries = json.loads((dad_dir / split / f"{split}.json").read_text())
        assert len(entries) == n
        for e in entries:
            assert (dad_dir / e["img_path"]).is_file() and e["img_path"].startswith(f"{split}/images/")
            with Image.open(dad_dir / e["img_path"]) as im:
                assert im.format == "PNG" and im.size == (SIZE, SIZE)
            assert set(e["attributes"]) == set(dad.DAD_ATTRIBUTES)
            for k, allowed in dad.DAD_ATTRIBUTES.items():
                assert e["attributes"][k] in allowed, (k, e["attributes"][k])
            x, y, w, h = e["bbox"]
            assert 0 <= x and 0 <= y and x + w <= SIZE and y + h <= SIZE and w > 10 and h > 10
            if split == "test":
                assert "annotation_path" not in e
            else:
                ann = json.loads((dad_dir / e["annotation_path"]).read_text())
                assert np.asarray(ann["vertices"]).shape == (5023, 3)
                assert np.asarray(ann["model_view_matrix"]).shape == (4, 4)
                assert np.asarray(ann["projection_matrix"]).shape == (4, 4)
    assert not (dad_dir / "test" / "annotations").exists()


def test_dad_projection_equals_renderer(dad_dir, rendered, world):
    """vertices + MV + P through the DAD formula land on the renderer's pixels."""
    topo = flame_topology(world[0])
    for split, i in (("train", 0), ("val", 4)):
        r = rendered[i]
        a = dad.read_annotation(dad_dir / split / "annotations" / f"{i:08d}.json")
        np.testing.assert_allclose(a["vertices"], r.vertices, atol=1e-7, rtol=0)
        px, depth = dad.project_dad(a["vertices"], a["model_view"], a["projection"], SIZE)
        np.testing.assert_allclose(px, r.vertex_px, atol=2e-3, rtol=0)
        np.testing.assert_allclose(depth, r.vertex_depth, rtol=1e-5)
        l68, _ = dad.project_dad(topo.landmarks68(a["vertices"].astype(np.float64)), a["model_view"],
                                 a["projection"], SIZE)
        np.testing.assert_allclose(l68, r.landmarks68_px, atol=2e-3, rtol=0)
        np.testing.assert_array_equal(a["visibility"] > 0.5, r.visibility)
        # DAD's ground-truth rotation: (diag(1, -1, -1, 1) MV)[:3, :3] = the cv rotation
        np.testing.assert_allclose((np.diag([1.0, -1, -1, 1]) @ a["model_view"])[:3, :3], r.R, atol=1e-9)


def _project(K, R, t, V):
    cam = V @ R.transpose(-1, -2) + t[:, None]
    uv = cam @ K.transpose(-1, -2)
    return uv[..., :2] / uv[..., 2:]


def test_datamodule_batch_contract_face1609(dad_dir, rendered, world, tmp_path):
    from facemodels.landmark_sets import landmark_vertex_indices

    dm = Dad3DHeadsDataModule(data_dir=str(dad_dir), landmark_set="face1609", image_size=64, batch_size=4,
                              num_workers=0, flame_dir=world[0], annotation_cache_root=str(tmp_path),
                              augment={"flip_prob": 0.5, "rotation_deg": 20.0})
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 4, "val": 2, "test": 2, "predict": 1}
    b = next(iter(dm.train_dataloader()))
    B = 4
    shapes = {"image": (B, 3, 64, 64), "landmarks": (B, 1609, 2), "landmarks_px": (B, 1609, 2),
              "landmarks3d": (B, 1609, 3), "visibility": (B, 1609), "landmarks68_px": (B, 68, 2),
              "vertices": (B, 5023, 3), "yaw": (B,), "bbox": (B, 4), "index": (B,)}
    for k, s in shapes.items():
        assert tuple(b[k].shape) == s, k
        assert b[k].dtype == (torch.int64 if k == "index" else torch.float32), k
    assert {k: tuple(v.shape) for k, v in b["camera"].items()} == {"K": (B, 3, 3), "R": (B, 3, 3), "t": (B, 3)}
    torch.testing.assert_close(b["landmarks"], b["landmarks_px"] / 64 - 0.5)
    torch.testing.assert_close(b["landmarks3d"][..., :2], b["landmarks_px"])
    # the crop camera reproduces the landmarks from the (possibly mirrored) vertices, so a
    # flip moved image, points, vertex order and camera consistently
    idx = torch.from_numpy(landmark_vertex_indices("face1609", world[0]))
    cam = {k: v.double() for k, v in b["camera"].items()}
    uv = _project(cam["K"], cam["R"], cam["t"], b["vertices"].double()[:, idx])
    torch.testing.assert_close(uv, b["landmarks_px"].double(), atol=2e-3, rtol=0)
    topo = flame_topology(world[0])
    l68 = torch.stack([torch.from_numpy(topo.landmarks68(v.double().numpy())) for v in b["vertices"]])
    torch.testing.assert_close(_project(cam["K"], cam["R"], cam["t"], l68), b["landmarks68_px"].double(),
                               atol=2e-3, rtol=0)
    # depth: positive towards the camera, zero mean, in crop px
    z_cam = (b["vertices"].double()[:, idx] @ cam["R"].transpose(1, 2) + cam["t"][:, None])[..., 2]
    z_ref = -(z_cam - z_cam.mean(1, keepdim=True)) * cam["K"][:, :1, 0] / z_cam.mean(1, keepdim=True)
    torch.testing.assert_close(b["landmarks3d"][..., 2].double(), z_ref, atol=1e-2, rtol=1e-3)
    # a sure flip (flip_prob 1): same checks, and the yaw changes sign
    from datamodules.transforms import AugmentConfig

    ds = Dad3DHeadsDataset(dad_dir, "train", landmark_set="face1609", image_size=64, train=True,
                           augment=AugmentConfig(flip_prob=1.0), flame_dir=world[0], cache_root=str(tmp_path))
    f = ds[0]
    c = {k: v.double()[None] for k, v in f["camera"].items()}
    uv = _project(c["K"], c["R"], c["t"], f["vertices"].double()[None, idx])[0]
    torch.testing.assert_close(uv, f["landmarks_px"].double(), atol=2e-3, rtol=0)
    l68 = torch.from_numpy(topo.landmarks68(f["vertices"].double().numpy()))[None]
    torch.testing.assert_close(_project(c["K"], c["R"], c["t"], l68)[0], f["landmarks68_px"].double(),
                               atol=2e-3, rtol=0)
    assert float(f["yaw"]) == pytest.approx(-float(_scene(world, 0).yaw), abs=1e-3)
    # validation (no augmentation): exactly the renderer's pixels moved by the crop matrix
    s = dm.datasets["val"][0]
    r = rendered[4]
    m = crop_matrix(r.bbox, 64, dm.augment.crop_scale)
    np.testing.assert_allclose(s["landmarks_px"].numpy(), apply_affine(m, r.vertex_px[idx.numpy()]), atol=2e-3)
    np.testing.assert_array_equal(s["visibility"].numpy(), r.visibility[idx.numpy()].astype(np.float32))
    assert float(s["yaw"]) == pytest.approx(float(_scene(world, 4).yaw), abs=1e-3)


def _scene(world, i):
    from facemodels.sampler import SceneSampler

    return SceneSampler(world[0], 5).sample(i)


@pytest.mark.parametrize("name,L", [("face101", 101), ("ibug68", 68)])
def test_datamodule_subsets_and_ibug68(dad_dir, world, tmp_path, name, L):
    from facemodels.landmark_sets import flip_permutation

    ds = Dad3DHeadsDataset(dad_dir, "train", landmark_set=name, image_size=48, train=True,
                           flame_dir=world[0], cache_root=str(tmp_path))
    np.testing.assert_array_equal(ds.lms.flip, flip_permutation(name, world[0]))
    s = ds[1]
    assert s["landmarks"].shape == (L, 2) and s["visibility"].shape == (L,)
    if name == "ibug68":
        torch.testing.assert_close(s["landmarks_px"], s["landmarks68_px"])


def test_default_data_written_once(tmp_path, world):
    kw = dict(n_train=2, n_val=2, n_test=0, frame_size=64, image_size=32, batch_size=2, num_workers=0,
              landmark_set="face202", cache_root=str(tmp_path / "proc"), flame_dir=world[0],
              annotation_cache_root=str(tmp_path / "ann"))
    dm = Dad3DHeadsDataModule(**kw)
    dm.prepare_data()
    dm.setup()
    assert dm.root.parent == tmp_path / "proc" and dm.root.name.startswith("dad3dheads_")
    assert len(dm.datasets["train"]) == 2 and "predict" in dm.datasets
    stamp = (dm.root / "train" / "train.json").stat().st_mtime_ns
    dm2 = Dad3DHeadsDataModule(**kw)
    dm2.prepare_data()
    assert dm2.root == dm.root and (dm.root / "train" / "train.json").stat().st_mtime_ns == stamp
    b = next(iter(dm2.val_dataloader()))
    assert b["landmarks"].shape == (1, 202, 2)


def test_corrupt_files_named_or_skipped(dad_dir, world, tmp_path):
    import shutil

    root = tmp_path / "dad"
    shutil.copytree(dad_dir, root)
    ann = root / "train" / "annotations" / "00000001.json"
    d = json.loads(ann.read_text())
    d["vertices"] = d["vertices"][:5000]
    ann.write_text(json.dumps(d))
    (root / "train" / "images" / "00000002.png").write_bytes(b"\x89PNG broken")
    ds = Dad3DHeadsDataset(root, "train", landmark_set="face101", image_size=32, flame_dir=world[0],
                           cache_root=str(tmp_path / "ann"))
    with pytest.raises(ValueError, match="00000001.json"):
        ds[1]
    with pytest.raises(OSError, match="00000002.png"):
        ds[2]
    ds2 = Dad3DHeadsDataset(root, "train", landmark_set="face101", image_size=32, flame_dir=world[0],
                            cache_root=str(tmp_path / "ann"), skip_corrupt=True)
    assert int(ds2[1]["index"]) == 3 and ds2.n_skipped == 2
    with pytest.raises(dad.DadFormatError, match="5023"):
        dad.read_annotation(ann)
    with pytest.raises(FileNotFoundError, match="train,val"):
        Dad3DHeadsDataModule(data_dir=str(tmp_path / "missing"), num_workers=0).setup()


def test_image_cache_gives_the_same_samples(dad_dir, world, tmp_path):
    from datamodules.transforms import AugmentConfig

    kw = dict(landmark_set="face101", image_size=40, flame_dir=world[0], cache_root=str(tmp_path))
    a = Dad3DHeadsDataset(dad_dir, "val", **kw)
    b = Dad3DHeadsDataset(dad_dir, "val", image_cache=True, **kw)
    assert b.frames_path is not None and b.frames_path.stat().st_size >= 4 * SIZE * SIZE * 3
    for i in range(4):
        torch.testing.assert_close(a[i]["image"], b[i]["image"], rtol=0, atol=0)
    t = Dad3DHeadsDataset(dad_dir, "train", train=True, augment=AugmentConfig(), image_cache=True, **kw)
    assert t[0]["image"].shape == (3, 40, 40)


def test_parallel_writer_gives_identical_files(dad_dir, world, tmp_path):
    """2 worker processes, same FLAME batches of 3: byte-identical to the serial fixture write
    (the FLAME batch size itself may change float32 roundings, hence the same ``chunk``)."""
    write_dad3dheads(tmp_path, n_train=4, n_val=4, n_test=1, image_size=SIZE, seed=5, flame_dir=world[0],
                     n_jobs=2, chunk=3)
    files = sorted(p.relative_to(dad_dir) for p in dad_dir.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()) == files
    for f in files:
        assert (tmp_path / f).read_bytes() == (dad_dir / f).read_bytes(), f


def test_visibility_fallback_for_real_files_agrees_with_renderer(dad_dir, rendered, world, tmp_path):
    """Real DAD annotations have no suite_visibility: the loader z-tests every vertex against
    the annotated mesh itself; on procedural data that must agree with the renderer's."""
    import shutil

    root = tmp_path / "dad"
    shutil.copytree(dad_dir, root)
    for p in (root / "val" / "annotations").glob("*.json"):
        d = json.loads(p.read_text())
        del d["suite_visibility"]
        p.write_text(json.dumps(d))
    ds = Dad3DHeadsDataset(root, "val", landmark_set="face1609", image_size=48, flame_dir=world[0],
                           cache_root=str(tmp_path / "ann"))
    vis = ds.ann["visibility"][0].astype(bool)  # scene 4, the first val item
    ref = rendered[4].visibility
    assert (vis == ref).mean() > 0.97 and 0.2 < vis.mean() < 0.9


def test_normalize_on_device_gives_the_same_batches(dad_dir, world, tmp_path):
    """uint8 crops + the batch step (normalize_on_device) == the per-sample float path: equal
    landmarks / cameras / vertices, pixels within half a grey level (the CPU path rounds the
    jittered crop to uint8), occluders included; val batches are just normalised."""
    from torch.utils.data import default_collate

    from datamodules.transforms import AugmentConfig

    kw = dict(landmark_set="face101", image_size=40, flame_dir=world[0], cache_root=str(tmp_path))
    aug = AugmentConfig(noise_prob=0.0, occlusion="zhao", occlusion_prob=0.5)
    a = Dad3DHeadsDataset(dad_dir, "train", train=True, augment=aug, **kw)
    b = Dad3DHeadsDataset(dad_dir, "train", train=True, augment=aug, defer_photometric=True, **kw)
    ba, bb = default_collate([a[i] for i in range(4)]), default_collate([b[i] for i in range(4)])
    assert bb["image"].dtype == torch.uint8 and bb["image"].shape == (4, 3, 40, 40)
    dm = Dad3DHeadsDataModule(data_dir=str(dad_dir), num_workers=0, normalize_on_device=True, **{
        k: v for k, v in kw.items() if k != "cache_root"}, annotation_cache_root=str(tmp_path))
    out = dm.on_after_batch_transfer(bb, 0)
    assert set(out) == set(ba) and out["image"].dtype == torch.float32
    half_level = 0.5 / (255 * 0.224) + 1e-5
    assert float((out["image"] - ba["image"]).abs().max()) <= half_level
    for k in ("landmarks", "landmarks3d", "visibility", "vertices", "yaw"):
        torch.testing.assert_close(out[k], ba[k], rtol=0, atol=0)
    torch.testing.assert_close(out["camera"]["K"], ba["camera"]["K"], rtol=0, atol=0)
    # through the DataModule's own loader: val batches are uint8 and normalised by the hook
    dm.setup()
    vb = next(iter(dm.val_dataloader()))
    assert vb["image"].dtype == torch.uint8 and "photometric" not in vb
    v = dm.on_after_batch_transfer(vb, 0)
    ref = Dad3DHeadsDataset(dad_dir, "val", indices=np.arange(2), **kw)
    torch.testing.assert_close(v["image"][0], ref[0]["image"], atol=1e-5, rtol=0)


def test_fit_test_pair_passes_the_batch_step_through(dad_dir, world, tmp_path):
    """FitTestDataModule chains both inner DataModules' batch hooks: a uint8 batch of the DAD side
    comes out as its own on_after_batch_transfer makes it; None = normalize on device iff CUDA."""
    from datamodules.fit_test_pair import FitTestDataModule
    from datamodules.synthetic import SyntheticDataModule

    dad = Dad3DHeadsDataModule(data_dir=str(dad_dir), num_workers=0, normalize_on_device=True,
                               landmark_set="face101", image_size=40, flame_dir=world[0],
                               annotation_cache_root=str(tmp_path))
    pair = FitTestDataModule(fit=SyntheticDataModule(num_landmarks=5, image_size=16), test=dad)
    pair.setup("test")
    vb = next(iter(pair.test_dataloader()))
    assert vb["image"].dtype == torch.uint8
    out = pair.on_after_batch_transfer(pair.on_before_batch_transfer(vb, 0), 0)
    assert out["image"].dtype == torch.float32
    torch.testing.assert_close(out["image"], dad.on_after_batch_transfer(vb, 0)["image"], rtol=0, atol=0)
    auto = Dad3DHeadsDataModule(data_dir=str(dad_dir), num_workers=0, normalize_on_device=None)
    assert auto.normalize_on_device == torch.cuda.is_available()


def test_trainer_applies_the_batch_step(dad_dir, world, tmp_path):
    """With normalize_on_device the Trainer calls the DataModule's on_after_batch_transfer: the
    LightningModule's steps see float32 normalised images and no `photometric` key."""
    import pytorch_lightning as pl

    seen = []

    class Probe(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            seen.append((batch["image"].dtype, "photometric" in batch, float(batch["image"].min())))
            return (self.w * batch["image"].mean()).sum()

        def validation_step(self, batch, batch_idx):
            seen.append((batch["image"].dtype, "photometric" in batch, float(batch["image"].min())))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = Dad3DHeadsDataModule(data_dir=str(dad_dir), landmark_set="face101", image_size=32, batch_size=2,
                              num_workers=0, flame_dir=world[0], annotation_cache_root=str(tmp_path),
                              normalize_on_device=True)
    trainer = pl.Trainer(accelerator="cpu", fast_dev_run=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Probe(), datamodule=dm)
    assert len(seen) == 2  # one train, one val step
    for dtype, has_params, lo in seen:
        assert dtype == torch.float32 and not has_params and lo >= -0.485 / 0.229 - 1e-4


def _copy_dad(dad_dir, dst):
    import shutil

    shutil.copytree(dad_dir, dst)
    return dst


def test_region_cache_reads_frames_of_any_size(dad_dir, world, tmp_path):
    """image_cache="regions" on frames of different sizes (one frame padded by 20 rows on top, its
    box moved with it: the DAD projection flips y with the frame height, so the labels move too):
    the same crops, landmarks and pixels (k = 1: within one grey level) as the unpadded data
    decoded per sample; the frame cache cannot serve mixed sizes and says so."""
    from datamodules.transforms import AugmentConfig

    root = _copy_dad(dad_dir, tmp_path / "dad")
    p = 20
    index = root / "train" / "train.json"
    entries = json.loads(index.read_text())
    img_path = root / entries[1]["img_path"]
    rgb = np.asarray(Image.open(img_path).convert("RGB"))
    Image.fromarray(np.concatenate([np.full((p, rgb.shape[1], 3), 90, np.uint8), rgb])).save(img_path)
    entries[1]["bbox"] = [entries[1]["bbox"][0], entries[1]["bbox"][1] + p, *entries[1]["bbox"][2:]]
    index.write_text(json.dumps(entries))
    kw = dict(landmark_set="face101", image_size=96, flame_dir=world[0], train=True,
              augment=AugmentConfig(noise_prob=0.0, blur_prob=0.0))
    ref = Dad3DHeadsDataset(dad_dir, "train", cache_root=str(tmp_path / "c0"), **kw)
    reg = Dad3DHeadsDataset(root, "train", cache_root=str(tmp_path / "c1"), image_cache="regions", **kw)
    with pytest.raises(ValueError, match="00000001.png.*regions"):  # the frame cache needs one size
        Dad3DHeadsDataset(root, "train", cache_root=str(tmp_path / "c2"), image_cache=True, **kw)
    meta = np.load(reg.regions_dir / "train_meta.npy")
    assert (meta[:, 2] == 1).all() and meta[1, 3] > 0
    for i in range(4):
        a, b = ref[i], reg[i]
        torch.testing.assert_close(b["landmarks_px"], a["landmarks_px"], atol=1e-3, rtol=0)
        assert float((a["image"] - b["image"]).abs().max()) <= 1 / (255 * 0.224) + 1e-5, i


def test_region_cache_downscaled_regions_on_a_smooth_frame(dad_dir, world, tmp_path):
    """Regions larger than 2 x image_size are box-reduced by k >= 2: on a smooth frame (no
    aliasing to remove) the crops equal the full-resolution path within 3 grey levels (mean
    <= 1) away from the frame border; landmarks are exact."""

    root = _copy_dad(dad_dir, tmp_path / "dad")
    entries = json.loads((root / "val" / "val.json").read_text())
    for e in entries:
        path = root / e["img_path"]
        h, w = np.asarray(Image.open(path)).shape[:2]
        yy, xx = np.mgrid[:h, :w].astype(np.float64)
        smooth = np.stack([40 + xx, 60 + 0.8 * yy, 128 + 50 * np.sin(xx / 23.0) * np.cos(yy / 31.0)], -1)
        Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(path)
    kw = dict(landmark_set="face101", image_size=24, flame_dir=world[0], cache_root=str(tmp_path / "c"))
    full = Dad3DHeadsDataset(root, "val", **kw)
    reg = Dad3DHeadsDataset(root, "val", image_cache="regions", **kw)
    meta = np.load(reg.regions_dir / "val_meta.npy")
    assert (meta[:, 2] >= 2).all() and (meta[:, 3:] <= 48).all()
    for i in range(4):
        a, b = full[i], reg[i]
        torch.testing.assert_close(b["landmarks_px"], a["landmarks_px"], rtol=0, atol=0)
        std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
        d = (a["image"] - b["image"]).abs()[:, 4:-4, 4:-4] * 255 * std  # grey levels
        assert float(d.max()) <= 3.0 and float(d.mean()) <= 1.0, (i, float(d.max()))
    with pytest.raises(ValueError, match="regions"):
        Dad3DHeadsDataset(root, "val", image_cache="bogus", **kw)


def test_image_cache_auto_caches_procedural_frames_and_decodes_real_data(tmp_path):
    assert Dad3DHeadsDataModule(num_workers=0).image_cache == "frames"  # data_dir null: procedural, one size
    assert Dad3DHeadsDataModule(data_dir=str(tmp_path), num_workers=0).image_cache == "none"
    assert Dad3DHeadsDataModule(data_dir=str(tmp_path), num_workers=0, image_cache="regions").image_cache == "regions"
    with pytest.raises(ValueError, match="image_cache"):
        Dad3DHeadsDataModule(num_workers=0, image_cache="sometimes")
