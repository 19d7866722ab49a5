"""experiments.predict end to end on checkpoints trained in the test (model=tiny, data=synthetic):
crop + back-mapping against the network run directly on the same pixels, FLAME outputs, meshes,
overlays, corrupt inputs skipped with exit code 1."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from datamodules.crop_geometry import apply_affine
from datamodules.photometric import normalise_image
from datamodules.synthetic import SyntheticLandmarkDataset
from experiments.predict import load_model, main
from experiments.predict_inputs import (
    full_image_matrix,
    parse_bbox,
    prepare_image,
    read_sidecar_bbox,
)
from lightning_modules.overlays import denormalize


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _train_tiny(run_dir, extra: list[str]):
    """Train model=tiny on data=synthetic for one epoch into run_dir, saving .hydra/config.yaml as
    the real entry point does. Returns the best checkpoint path."""
    from experiments.train import train
    from tests.harness.compose import compose_config

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    overrides = ["model=tiny", "data=synthetic", "logger=csv", "trainer.max_epochs=1",
                 "trainer.accelerator=cpu", *extra]
    cfg = compose_config("train", overrides, run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")  # unresolved, like Hydra's own copy
    result = train(cfg)
    torch.set_num_threads(n)
    assert result["best_ckpt"], result
    return result["best_ckpt"]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return _train_tiny(tmp_path_factory.mktemp("tiny_run"), [])


def _synthetic_rgb(size: int, n_landmarks: int, index: int) -> np.ndarray:
    """(S, S, 3) uint8 picture of the synthetic dataset (what the tiny model was trained on)."""
    sample = SyntheticLandmarkDataset(8, n_landmarks, size, seed=123)[index]
    return denormalize(sample["image"])


def _direct(model, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network on an (S, S, 3) uint8 crop, no predict pipeline: (L, 2) crop px, (L,) conf."""
    x = torch.from_numpy(normalise_image(rgb))[None]
    with torch.no_grad():
        out = model.predict_step({"image": x}, 0)
    return out["landmarks_px"][0].double().numpy(), out["confidences"][0].double().numpy()


# ------------------------------------------------------------------------------- unit pieces
def test_full_image_matrix_maps_pixel_extents():
    assert np.allclose(full_image_matrix(64, 64, 64), np.eye(3))
    m = full_image_matrix(128, 96, 64)  # side 128, scale 1/2, 16 px of padding above and below
    # the corners of the pixel grid: x in [-0.5, 127.5] -> [-0.5, 63.5]; y in [-0.5, 95.5] -> padded by 8
    pts = apply_affine(m, np.array([[-0.5, -0.5], [127.5, 95.5]]))
    assert np.allclose(pts, [[-0.5, 7.5], [63.5, 55.5]])


def test_full_image_crop_of_a_2x_upscaled_image_is_the_original(tmp_path):
    rgb = _synthetic_rgb(64, 68, 0)
    big = rgb.repeat(2, 0).repeat(2, 1)  # nearest 2x: source pixel centres fall between equal pixels
    Image.fromarray(big).save(tmp_path / "big.png")
    item = prepare_image(tmp_path / "big.png", 64)
    assert item.bbox is None
    assert np.allclose(item.crop, normalise_image(rgb), atol=1e-5)


def test_exif_orientation_is_applied(tmp_path):
    rgb = _synthetic_rgb(64, 68, 5)[:, :48]  # (64, 48): portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display = stored turned 90 degrees clockwise
    Image.fromarray(np.rot90(rgb, 1).copy()).save(tmp_path / "r.png", exif=exif.tobytes())
    item = prepare_image(tmp_path / "r.png", 64)
    assert item.image.shape == (64, 48, 3) and np.array_equal(item.image, rgb)


def test_bbox_parsing_and_sidecar_errors_name_the_file(tmp_path):
    assert parse_bbox("1,2,3,4").tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="w, h > 0"):
        parse_bbox("1,2,0,4")
    with pytest.raises(ValueError, match="x,y,w,h"):
        parse_bbox("1,2,a,4")
    img = tmp_path / "face.png"
    assert read_sidecar_bbox(img) is None
    (tmp_path / "face.json").write_text(json.dumps({"box": [0, 0, 1, 1]}))
    with pytest.raises(ValueError, match=r"face\.json.*'bbox'"):
        read_sidecar_bbox(img)
    (tmp_path / "face.json").write_text(json.dumps({"bbox": [0, 0, 1]}))
    with pytest.raises(ValueError, match=r"face\.json: key 'bbox'"):
        read_sidecar_bbox(img)
    (tmp_path / "face.json").write_text(json.dumps({"bbox": [5, 6, 7, 8]}))
    assert read_sidecar_bbox(img).tolist() == [5, 6, 7, 8]


# ------------------------------------------------------------------------------- end to end
def test_predict_cli_on_a_trained_tiny_checkpoint(tiny_ckpt, tmp_path, capsys):
    model, crop_scale = load_model(tiny_ckpt)
    assert crop_scale == 1.2 and model.landmark_set == "ibug68" and model.image_size == 64
    images = tmp_path / "images"
    images.mkdir()
    # 1) a face crop at the network's size: used as is
    crop_rgb = _synthetic_rgb(64, 68, 1)
    Image.fromarray(crop_rgb).save(images / "a_crop.png")
    # 2) a full image with a sidecar box: the crop (side 1.2 * 64 / 1.2 = 64, centred on the box)
    #    is exactly the pasted picture, shifted by an integer offset
    full_rgb = _synthetic_rgb(64, 68, 2)
    canvas = np.full((150, 200, 3), 40, np.uint8)
    ox, oy = 101, 37
    canvas[oy : oy + 64, ox : ox + 64] = full_rgb
    Image.fromarray(canvas).save(images / "b_full.jpg", quality=100, subsampling=0)
    jpg = np.asarray(Image.open(images / "b_full.jpg").convert("RGB"))
    w = 64 / 1.2
    (images / "b_full.json").write_text(json.dumps({"bbox": [ox + 31.5 - w / 2, oy + 31.5 - w / 2, w, w]}))
    # 3) a corrupt file and 4) a bad sidecar: reported and skipped
    (images / "c_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    Image.fromarray(crop_rgb).save(images / "d_badbox.png")
    (images / "d_badbox.json").write_text("{not json")

    out = tmp_path / "out"
    code = main(["--ckpt", str(tiny_ckpt), "--images", str(images), "--out", str(out), "--faces", "whole",
                 "--batch-size", "2", "--device", "cpu", "--iterations", "3"])
    assert code == 1  # two inputs failed (bit 1); every picture had its face (bit 2 clear)
    said = capsys.readouterr()
    assert "2 faces in 3 pictures written" in said.out and "2 failed" in said.out
    assert "skipped c_corrupt.png" in said.err and "cannot read image" in said.err
    assert "d_badbox.json: not readable JSON" in said.err
    names = sorted(p.name for p in out.iterdir())
    for stem in ("a_crop", "b_full"):
        for suffix in ("_landmarks.json", "_landmarks.npy", "_flame.json", ".obj", ".ply", "_overlay.png"):
            assert f"{stem}{suffix}" in names
    assert not any(n.startswith(("c_corrupt", "d_badbox")) for n in names)

    # landmarks: the face crop's equal the network on the same pixels; the full image's are the
    # network's on the pasted picture moved by the paste offset (original-image px)
    lm_a, conf_a = _direct(model, crop_rgb)
    rec_a = json.loads((out / "a_crop_landmarks.json").read_text())
    assert rec_a["bbox"] is None and rec_a["image_size"] == [64, 64]
    assert np.allclose(rec_a["landmarks_px"], lm_a, atol=1e-3)
    assert np.allclose(rec_a["confidences"], conf_a, atol=1e-5)
    lm_b, conf_b = _direct(model, jpg[oy : oy + 64, ox : ox + 64])
    rec_b = json.loads((out / "b_full_landmarks.json").read_text())
    assert rec_b["image_size"] == [200, 150] and rec_b["landmark_set"] == "ibug68"
    assert np.allclose(rec_b["landmarks_px"], lm_b + [ox, oy], atol=1e-3)
    arr = np.load(out / "b_full_landmarks.npy")
    assert arr.shape == (68, 3) and arr.dtype == np.float32
    assert np.allclose(arr[:, :2], lm_b + [ox, oy], atol=1e-3) and np.allclose(arr[:, 2], conf_b, atol=1e-5)
    assert np.array(rec_b["sigma_px"]).shape == (68, 2)

    # FLAME: parameters, camera of the original image consistent with the crop camera
    fit = json.loads((out / "b_full_flame.json").read_text())
    assert len(fit["shape"]) == 100 and len(fit["expression"]) == 100 and len(fit["pose"]) == 6
    assert len(fit["rot"]) == 3 and len(fit["transl"]) == 3 and isinstance(fit["valid"], bool)
    assert fit["valid"] and np.isfinite(fit["cost"]) and np.isfinite(fit["mrle_px"])
    K_crop, K_img, X = np.array(fit["K_crop"]), np.array(fit["K_image"]), np.array(fit["transl"])
    u_crop, u_img = K_crop @ X, K_img @ X
    m = np.array(rec_b["crop_matrix"])
    back = apply_affine(np.linalg.inv(m), (u_crop[:2] / u_crop[2])[None])[0]
    assert np.allclose(back, u_img[:2] / u_img[2], atol=1e-6)
    assert np.allclose(K_img[2], [0, 0, 1]) and K_img[0, 1] == 0
    obj = (out / "b_full.obj").read_text().splitlines()
    assert sum(ln.startswith("v ") for ln in obj) == 5023
    ply = (out / "b_full.ply").read_text().splitlines()
    assert ply[2] == "element vertex 5023"
    overlay = np.asarray(Image.open(out / "b_full_overlay.png"))
    assert overlay.shape == (150, 200, 3) and not np.array_equal(overlay, jpg)


def test_predict_single_file_with_bbox_flag_and_no_fit(tiny_ckpt, tmp_path):
    rgb = _synthetic_rgb(64, 68, 3)
    canvas = np.zeros((100, 100, 3), np.uint8)
    canvas[10:74, 20:84] = rgb
    Image.fromarray(canvas).save(tmp_path / "one.png")
    w = 64 / 1.2
    out = tmp_path / "out"
    code = main(["--ckpt", str(tiny_ckpt), "--images", str(tmp_path / "one.png"), "--out", str(out),
                 "--bbox", f"{20 + 31.5 - w / 2},{10 + 31.5 - w / 2},{w},{w}", "--no-fit", "--device", "cpu"])
    assert code == 0
    model, _ = load_model(tiny_ckpt)
    lm, _ = _direct(model, rgb)
    rec = json.loads((out / "one_landmarks.json").read_text())
    assert np.allclose(rec["landmarks_px"], lm + [20, 10], atol=1e-3)
    assert not (out / "one_flame.json").exists() and (out / "one_overlay.png").is_file()


def test_missing_run_config_is_reported(tmp_path):
    ckpt = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}}, ckpt)
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        load_model(ckpt)


def test_predict_with_a_face1609_model(tmp_path):
    ckpt = _train_tiny(tmp_path / "run", ["model.landmark_set=face1609", "data.num_train=8",
                                          "data.num_val=4", "data.num_test=4"])
    rgb = _synthetic_rgb(64, 1609, 0)
    (tmp_path / "img").mkdir()
    Image.fromarray(rgb).save(tmp_path / "img" / "f.png")
    out = tmp_path / "out"
    assert main(["--ckpt", str(ckpt), "--images", str(tmp_path / "img"), "--out", str(out), "--faces", "whole",
                 "--iterations", "3", "--device", "cpu"]) == 0
    arr = np.load(out / "f_landmarks.npy")
    assert arr.shape == (1609, 3)
    fit = json.loads((out / "f_flame.json").read_text())
    assert fit["valid"] and np.isfinite(fit["mrle_px"]) and np.isfinite(fit["cost"])
    assert sum(ln.startswith("v ") for ln in (out / "f.obj").read_text().splitlines()) == 5023


@pytest.mark.gpu
def test_predict_on_cuda_matches_cpu(tiny_ckpt, tmp_path):
    Image.fromarray(_synthetic_rgb(64, 68, 4)).save(tmp_path / "g.png")
    for dev in ("cpu", "cuda"):
        assert main(["--ckpt", str(tiny_ckpt), "--images", str(tmp_path / "g.png"), "--out", str(tmp_path / dev),
                     "--faces", "whole", "--device", dev, "--iterations", "3"]) == 0
    cpu = json.loads((tmp_path / "cpu" / "g_landmarks.json").read_text())
    gpu = json.loads((tmp_path / "cuda" / "g_landmarks.json").read_text())
    assert np.allclose(gpu["landmarks_px"], cpu["landmarks_px"], atol=0.05)  # TF32 / channels_last kernels
    assert json.loads((tmp_path / "cuda" / "g_flame.json").read_text())["valid"]
