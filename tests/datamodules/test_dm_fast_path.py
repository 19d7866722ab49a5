"""The loader's fast path equals the reference path: the torch warp vs PIL's affine warp,
the batched photometric step (uint8 batches, normalize_on_device) vs the per-sample
colour_jitter / noise / occluders / normalise_image, hand-checked normalisation values, the
DataModule hook, and the stage timer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.base import FaceDataModule
from datamodules.batch_photometric import apply_photometric, normalise_batch
from datamodules.crop_geometry import (
    apply_affine,
    crop_matrix,
    flip_matrix,
    warp_image,
    warp_image_pil,
)
from datamodules.photometric import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    color_jitter,
    normalise_image,
    paint_occluders,
)
from datamodules.stage_timer import StageTimer, stage
from datamodules.transforms import AugmentConfig, FaceCropTransform

# one grey level in normalised units is 1 / (255 std) <= 1 / (255 * 0.224) = 0.0175
HALF_LEVEL = 0.5 / (255 * float(IMAGENET_STD.min())) + 1e-5


def _rand_matrix(rng: np.random.Generator, size: int) -> np.ndarray:
    """Crops of random boxes, partly outside a 120 x 150 frame, rotated, flipped or not."""
    box = [rng.uniform(-40, 110), rng.uniform(-40, 90), rng.uniform(20, 130), rng.uniform(20, 130)]
    m = crop_matrix(box, size, 1.2, rng.uniform(0.7, 1.4), (0.0, 0.0), rng.uniform(-40, 40))
    return flip_matrix(size) @ m if rng.random() < 0.5 else m


def test_warp_image_equals_pil_within_one_level_everywhere():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
    n_outside = 0
    for _ in range(30):
        m = _rand_matrix(rng, 48)
        ours, ref = warp_image(img, m, 48).astype(int), warp_image_pil(img, m, 48).astype(int)
        assert ours.shape == ref.shape == (48, 48, 3)
        # PIL truncates to uint8, we round: 0 or +1 level, including the fill / edge pixels
        d = ours - ref
        assert d.min() >= 0 and d.max() <= 1
        n_outside += int((ref == 0).all(-1).any())
    assert n_outside >= 5  # the frame border rule (fill outside, clamp inside) was exercised


def test_warp_image_fill_grey_and_channel_first_layout():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (60, 70, 3), dtype=np.uint8)
    m = crop_matrix([-30, -20, 60, 60], 32, 1.2)  # top-left corner of the crop off the frame
    out = warp_image(img, m, 32, fill=7)
    assert out[0, 0].tolist() == [7, 7, 7]
    assert np.transpose(out, (2, 0, 1)).flags["C_CONTIGUOUS"]  # CHW without a copy
    g = img[..., 1]
    np.testing.assert_array_equal(warp_image(g, m, 32, fill=7), out[..., 1])
    # a crop entirely off the frame is all fill
    assert (warp_image(img, crop_matrix([500, 500, 10, 10], 16), 16, fill=3) == 3).all()


def test_warp_image_integer_scale_is_exact():
    """A 2x nearest-upscaled frame sampled back at half resolution gives the original pixels."""
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    big = img.repeat(2, 0).repeat(2, 1)
    m = np.array([[0.5, 0.0, -0.25], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])  # big px 2j+0.5 -> j
    np.testing.assert_array_equal(warp_image(big, m, 32), img)


def test_normalise_batch_hand_values():
    img = torch.zeros(1, 3, 1, 2, dtype=torch.uint8)
    img[0, :, 0, 0] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    out = normalise_batch(img)
    expected = [(0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225]  # -2.1179, 0.2052, 2.64
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out[0, :, 0, 1].numpy(), [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
                               atol=1e-5)
    # equal to the per-sample CPU normalisation
    rgb = np.random.default_rng(3).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    ref = normalise_image(rgb)
    ours = normalise_batch(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None])[0]
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    # identity jitter, no noise, no occluders: the same values through apply_photometric
    ident = {"jitter": torch.ones(1, 3), "noise_std": torch.zeros(1), "noise_seed": torch.zeros(1, dtype=torch.int64),
             "occluders": torch.zeros(1, 3, 8)}
    np.testing.assert_allclose(apply_photometric(img, ident)[0, :, 0, 0].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(apply_photometric(img)[0, :, 0, 0].numpy(), expected, atol=1e-5)


def test_batched_jitter_equals_color_jitter_then_normalise():
    rng = np.random.default_rng(4)
    B = 6
    imgs = rng.integers(0, 256, (B, 20, 24, 3), dtype=np.uint8)
    jit = rng.uniform(0.6, 1.4, (B, 3)).astype(np.float32)
    ref = np.stack([normalise_image(color_jitter(imgs[i], *map(float, jit[i]))) for i in range(B)])
    x = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 3, 1, 2)))
    ph = {"jitter": torch.from_numpy(jit), "noise_std": torch.zeros(B), "noise_seed": torch.zeros(B, dtype=torch.int64)}
    out = apply_photometric(x, ph).numpy()
    # the CPU path rounds the jittered values to uint8, this one keeps them: <= half a level
    assert np.abs(out - ref).max() <= HALF_LEVEL
    assert np.abs(out - ref).max() > 1e-4  # (and they really are jittered differently from identity)
    with pytest.raises(ValueError, match="uint8"):
        apply_photometric(x.float(), ph)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        apply_photometric(x[:, :2], ph)


def test_noise_is_seeded_clipped_and_has_its_std():
    B, S = 3, 64
    img = torch.full((B, 3, S, S), 128, dtype=torch.uint8)
    img[2] = 255  # saturated: noise is clipped at 255
    ph = {"jitter": torch.ones(B, 3), "noise_std": torch.tensor([6.0, 0.0, 6.0]),
          "noise_seed": torch.tensor([11, 0, 12])}
    out = apply_photometric(img, ph)
    grey = out * torch.from_numpy(IMAGENET_STD * 255).view(1, 3, 1, 1) + torch.from_numpy(IMAGENET_MEAN * 255).view(1, 3, 1, 1)
    d = grey[0] - 128
    assert abs(float(d.mean())) < 0.1 and float(d.std()) == pytest.approx(6.0, rel=0.03)
    torch.testing.assert_close(grey[1], torch.full((3, S, S), 128.0), atol=1e-3, rtol=0)
    assert float(grey[2].max()) <= 255.0 + 1e-3 and float(grey[2].min()) < 250
    torch.testing.assert_close(apply_photometric(img, ph), out, rtol=0, atol=0)  # reproducible


def test_deferred_transform_equals_per_sample_path():
    """FaceCropTransform(defer_photometric) + apply_photometric == the per-sample path: same
    geometry and points, pixels within half a grey level, occluders painted after the jitter
    in their exact colour (zhao and mobileface)."""
    rng = np.random.default_rng(5)
    img = rng.integers(0, 256, (90, 100, 3), dtype=np.uint8)
    lm = np.array([[40.0, 40.0], [60.0, 41.0], [50.0, 60.0]])
    for occlusion in ("zhao", "mobileface"):
        cfg = AugmentConfig(noise_prob=0.0, blur_prob=0.5, occlusion=occlusion, occlusion_prob=0.7)
        old = FaceCropTransform(40, train=True, config=cfg)
        new = FaceCropTransform(40, train=True, config=cfg, defer_photometric=True)
        n_occ = 0
        for seed in range(8):
            a = old(img, [30, 30, 40, 40], {"lm68": lm}, {"lm68": np.array([1, 0, 2])}, np.random.default_rng(seed),
                    eyes=("lm68", 0, 1))
            b = new(img, [30, 30, 40, 40], {"lm68": lm}, {"lm68": np.array([1, 0, 2])}, np.random.default_rng(seed),
                    eyes=("lm68", 0, 1))
            assert a["photometric"] is None and a["flipped"] == b["flipped"]
            np.testing.assert_array_equal(a["points"]["lm68"], b["points"]["lm68"])
            ph = {k: torch.as_tensor(np.asarray(v))[None] for k, v in b["photometric"].items()}
            x = torch.from_numpy(np.ascontiguousarray(np.transpose(b["image"], (2, 0, 1))))[None]
            out = apply_photometric(x, ph)[0].numpy()
            assert np.abs(out - normalise_image(a["image"])).max() <= HALF_LEVEL
            boxes = b["photometric"]["occluders"]
            if boxes[:, 7].any():
                n_occ += 1
                x0, y0, x1, y1, r, g, bl = boxes[boxes[:, 7] > 0][0, :7].astype(int)
                patch = normalise_image(np.full((1, 1, 3), (r, g, bl), np.uint8))[:, 0, 0]
                np.testing.assert_allclose(out[:, y0:y1, x0:x1].reshape(3, -1).T - patch, 0, atol=1e-5)
        assert n_occ >= 2


def test_paint_occluders_and_unused_rows():
    img = np.zeros((10, 10, 3), np.uint8)
    boxes = np.zeros((3, 8), np.float32)
    assert paint_occluders(img, boxes) is img
    boxes[1] = [2, 3, 5, 4, 10, 20, 30, 1]
    out = paint_occluders(img, boxes)
    assert (out[3, 2:5] == [10, 20, 30]).all() and out.sum() == 3 * 60 and img.sum() == 0


class _UintDM(FaceDataModule):
    pass


def test_datamodule_hook_normalises_uint8_batches_only():
    dm = _UintDM(num_workers=0, normalize_on_device=True)
    img = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    ph = {"jitter": torch.ones(2, 3), "noise_std": torch.zeros(2), "noise_seed": torch.zeros(2, dtype=torch.int64)}
    batch = {"image": img, "photometric": ph, "landmarks": torch.zeros(2, 5, 2)}
    out = dm.on_after_batch_transfer(batch, 0)
    assert "photometric" not in out and "photometric" in batch  # the caller's dict is left alone
    assert out["image"].dtype == torch.float32 and out["landmarks"] is batch["landmarks"]
    np.testing.assert_allclose(out["image"][0, :, 0, 0].numpy(), (1 - IMAGENET_MEAN) / IMAGENET_STD, atol=1e-5)
    f = {"image": torch.zeros(1, 3, 2, 2)}
    assert dm.on_after_batch_transfer(f, 0) is f  # float batches pass unchanged
    assert _UintDM(num_workers=2, prefetch_factor=4).prefetch_factor == 4
    off = _UintDM(num_workers=0)  # normalize_on_device=False: the hooks leave every batch alone
    assert off.on_after_batch_transfer(batch, 0) is batch and off.on_before_batch_transfer(batch, 0) is batch


def test_stage_timer_accumulates_cpu_time():
    t = StageTimer()
    with stage(t, "busy"):
        sum(i * i for i in range(200000))
    with stage(None, "ignored"):
        pass
    with stage(t, "busy"):
        pass
    assert t.calls["busy"] == 2 and t.seconds["busy"] > 0 and "ignored" not in t.seconds
    assert t.ms_per(2)["busy"] == pytest.approx(500 * t.seconds["busy"])


def test_apply_affine_and_warp_agree_on_a_dot():
    """The fast warp keeps landmarks on their pixels (the pixel test of test_dm_transforms on
    warp_image, here with a crop that leaves the frame)."""
    img = np.zeros((60, 60, 3), np.uint8)
    img[12, 9] = 255
    m = flip_matrix(40) @ crop_matrix([-10, -5, 50, 50], 40, 1.2, 1.1, (0.0, 0.0), 17.0)
    out = warp_image(img, m, 40)[..., 0].astype(float)
    ys, xs = np.mgrid[:40, :40]
    c = np.array([(out * xs).sum(), (out * ys).sum()]) / out.sum()
    assert np.linalg.norm(c - apply_affine(m, np.array([[9.0, 12.0]]))[0]) < 0.5


def test_host_decisions_before_the_transfer_give_the_same_batch():
    """on_before_batch_transfer stores the noise / occluder decisions as Python lists (`_host`),
    so the CUDA batch step never copies device -> host; the result is the same."""
    rng = np.random.default_rng(6)
    B = 4
    img = torch.from_numpy(rng.integers(0, 256, (B, 3, 16, 16), dtype=np.uint8))
    occ = torch.zeros(B, 3, 8)
    occ[1, 0] = torch.tensor([2, 3, 9, 8, 200, 10, 30, 1])
    ph = {"jitter": torch.from_numpy(rng.uniform(0.7, 1.3, (B, 3)).astype(np.float32)),
          "noise_std": torch.tensor([0.0, 6.0, 0.0, 6.0]), "noise_seed": torch.tensor([0, 5, 0, 9]), "occluders": occ}
    dm = _UintDM(num_workers=0, normalize_on_device=True)
    before = dm.on_before_batch_transfer({"image": img, "photometric": ph}, 0)
    host = before["photometric"]["_host"]
    assert host["noise_std"] == [0.0, 6.0, 0.0, 6.0] and host["noise_seed"] == [0, 5, 0, 9]
    assert "_host" not in ph  # the caller's dict is left alone
    out = dm.on_after_batch_transfer(before, 0)["image"]
    torch.testing.assert_close(out, apply_photometric(img, ph), rtol=0, atol=0)
    # the occluder is in its exact normalised colour, the noise seeded per sample
    np.testing.assert_allclose(out[1, :, 3:8, 2:9].reshape(3, -1).numpy(),
                               np.repeat(((np.array([200, 10, 30]) / 255 - IMAGENET_MEAN) / IMAGENET_STD)[:, None], 35, 1),
                               atol=1e-5)
    assert not torch.equal(out[1], out[3])


def test_planar_color_jitter_equals_pil_color_jitter():
    """The torch colour jitter of the per-sample path rounds like PIL's matrix convert: equal
    pixels (a float tie at .5 may flip one level), also on the channel-first view warp_image returns."""
    from datamodules.photometric import color_jitter_planar

    rng = np.random.default_rng(7)
    n_diff = 0
    for _ in range(10):
        img = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
        b, ct, sat = rng.uniform(0.6, 1.4, 3)
        ours, ref = color_jitter_planar(img, b, ct, sat), color_jitter(img, b, ct, sat)
        assert ours.shape == ref.shape and ours.dtype == np.uint8
        assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
        n_diff += int((ours != ref).sum())
    assert n_diff <= 10  # out of 36000 values
    chw_view = warp_image(img, crop_matrix([5, 5, 20, 20], 16), 16)
    np.testing.assert_array_equal(color_jitter_planar(chw_view, 1.0, 1.0, 1.0), chw_view)


def test_one_torch_thread_restores_the_thread_count():
    from datamodules.crop_geometry import one_torch_thread

    n = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_torch_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(n)


def test_warp_image_large_window_and_bad_dtype():
    """A strong downscale (window > 12x the crop) takes PIL's warp: same result within a level."""
    rng = np.random.default_rng(8)
    img = rng.integers(0, 256, (400, 420, 3), dtype=np.uint8)
    m = crop_matrix([20, 10, 380, 380], 24, 1.0)
    d = warp_image(img, m, 24).astype(int) - warp_image_pil(img, m, 24).astype(int)
    assert np.abs(d).max() <= 1
    np.testing.assert_array_equal(warp_image(img[..., 2], m, 24), warp_image(img, m, 24)[..., 2])  # grey frames
    with pytest.raises(ValueError, match="uint8"):
        warp_image(img.astype(np.float32), m, 24)


def test_batched_jitter_branch_equals_the_per_sample_branch():
    """The CUDA branch (one baddbmm over the batch, tensor clip bounds), run here on the CPU,
    gives the per-sample CPU branch's values."""
    from datamodules.batch_photometric import _jitter_normalised

    rng = np.random.default_rng(9)
    img = torch.from_numpy(rng.integers(0, 256, (5, 3, 12, 14), dtype=np.uint8))
    jit = torch.from_numpy(rng.uniform(0.5, 1.5, (5, 3)).astype(np.float32))
    a = _jitter_normalised(img, jit, batched=True)
    b = _jitter_normalised(img, jit, batched=False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    lo = torch.from_numpy(-IMAGENET_MEAN / IMAGENET_STD).view(1, 3, 1, 1)
    assert bool((a >= lo - 1e-6).all()) and float((a - lo).abs().min()) < 1e-5  # clipped at grey 0
