"""experiments.predict on whole photographs: a real photo (scikit-image's astronaut) through detection,
the network and the FLAME fit to every output; images of every size and mode; a picture without a face;
corrupt files; a folder (contact sheet) and a video (overlaid video)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from experiments.media_io import VideoWriter, iter_frames, read_rgb
from experiments.predict import main
from tests.harness.test_predict import _train_tiny

skdata = pytest.importorskip("skimage.data")

FACE_FILES = ("_landmarks.json", "_landmarks.npy", "_flame.json", ".obj", ".ply")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return _train_tiny(tmp_path_factory.mktemp("tiny_run"), [])


def _run(ckpt, images, out, *extra) -> int:
    return main(["--ckpt", str(ckpt), "--images", str(images), "--out", str(out), "--device", "cpu",
                 "--iterations", "2", *extra])


def test_a_real_photograph_gives_every_output(tiny_ckpt, tmp_path, capsys) -> None:
    Image.fromarray(skdata.astronaut()).save(tmp_path / "astronaut.jpg", quality=95)
    out = tmp_path / "out"
    assert _run(tiny_ckpt, tmp_path / "astronaut.jpg", out) == 0
    names = {p.name for p in out.iterdir()}
    for suffix in FACE_FILES:
        assert f"astronaut_0{suffix}" in names
    assert "astronaut_overlay.png" in names and "astronaut_1_landmarks.json" not in names
    rec = json.loads((out / "astronaut_0_landmarks.json").read_text())
    det = rec["detection"]
    x0, y0, x1, y1 = det["box"]
    lm = np.asarray(rec["landmarks_px"])
    assert lm.shape == (68, 2) and rec["image_size"] == [512, 512]
    # the crop is taken around the detection: the landmarks land near the face (a network trained on
    # synthetic pictures is not accurate on a photo, but its output is in the photo's pixels)
    cx, cy = np.median(lm, 0)
    assert x0 - (x1 - x0) < cx < x1 + (x1 - x0) and y0 - (y1 - y0) < cy < y1 + (y1 - y0)
    assert np.isfinite(rec["five_point_error"]) and rec["five_point_error"] > 0
    fit = json.loads((out / "astronaut_0_flame.json").read_text())
    assert len(fit["shape"]) == 100 and np.isfinite(fit["cost"])
    overlay = np.asarray(Image.open(out / "astronaut_overlay.png"))
    photo = read_rgb(tmp_path / "astronaut.jpg")
    assert overlay.shape == photo.shape
    changed = np.abs(overlay.astype(int) - photo).sum(-1) > 30
    for x, y in lm.round().astype(int):  # a landmark dot at each landmark
        assert changed[y - 1 : y + 2, x - 1 : x + 2].any()
    assert changed[:100, 400:].mean() < 0.01  # nothing drawn far from the face
    summary = json.loads((out / "summary.json").read_text())
    assert summary["faces"] == 1 and summary["pictures"] == 1 and summary["five_point_error"]["n"] == 1
    assert "1 faces in 1 pictures" in capsys.readouterr().out


def test_the_fitted_mesh_is_drawn_where_it_projects() -> None:
    """draw_faces with the FLAME mean head 0.6 m in front of a 256 px camera: the shaded mesh covers the
    pixels the head projects to and nothing else; a photo larger than max_side is drawn smaller."""
    import torch

    from experiments.predict_pictures import FaceDrawing, draw_faces
    from facemodels.flame_files import load_flame_arrays
    from facemodels.world import default_flame_dir
    from fitting.reprojection import project

    flame = load_flame_arrays(default_flame_dir())
    v = np.asarray(flame.v_template, np.float64) * [1, -1, -1] + [0, 0, 0.6]  # model -> camera frame
    K = np.array([[400.0, 0, 128], [0, 400.0, 128], [0, 0, 1]])
    uv = project(torch.from_numpy(v)[None], torch.from_numpy(K)[None])[0].numpy()
    photo = np.full((256, 256, 3), 30, np.uint8)
    face = FaceDrawing(uv[:68], np.ones(68), v, K)
    pic = draw_faces(photo, [face], np.asarray(flame.faces))
    drawn = np.abs(pic.astype(int) - photo).sum(-1) > 30
    lo, hi = uv.min(0), uv.max(0)
    inside, near = np.zeros_like(drawn), np.zeros_like(drawn)
    inside[int(lo[1]) : int(hi[1]) + 1, int(lo[0]) : int(hi[0]) + 1] = True
    near[int(lo[1]) - 3 : int(hi[1]) + 4, int(lo[0]) - 3 : int(hi[0]) + 4] = True  # landmark dots: r = 2 px
    assert drawn[inside].mean() > 0.5 and not drawn[~near].any()
    big = np.full((2048, 1024, 3), 30, np.uint8)
    face_big = FaceDrawing(uv[:68] * 4, np.ones(68), v, K @ np.diag([4, 4, 1]))
    assert draw_faces(big, [face_big], np.asarray(flame.faces), max_side=1024).shape == (1024, 512, 3)


def test_modes_sizes_no_face_and_corrupt_files(tiny_ckpt, tmp_path, capsys) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    face = skdata.astronaut()[20:260, 100:340]  # (240, 240, 3): the face
    grey = np.asarray(Image.fromarray(face).convert("L"))
    Image.fromarray(grey).save(photos / "a_grey.png")
    rgba = np.concatenate([face, np.full(face.shape[:2] + (1,), 200, np.uint8)], 2)
    Image.fromarray(rgba, "RGBA").save(photos / "b_rgba.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(photos / "c_16bit.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the displayed picture is upright
    Image.fromarray(np.rot90(face, 1).copy()).save(photos / "d_exif.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(np.full((300, 500, 3), 90, np.uint8)).save(photos / "e_noface.png")
    (photos / "f_corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert np.array_equal(read_rgb(photos / "c_16bit.png")[..., 0], grey)  # 16-bit scaled to 8 bits
    assert read_rgb(photos / "d_exif.jpg").shape == face.shape
    out = tmp_path / "out"
    code = _run(tiny_ckpt, photos, out, "--no-fit")
    assert code == 3  # bit 1: a file could not be read; bit 2: a picture had no face
    said = capsys.readouterr()
    assert "no face found in e_noface" in said.err and "skipped f_corrupt.jpg" in said.err
    for stem in ("a_grey", "b_rgba", "c_16bit", "d_exif"):
        assert (out / f"{stem}_0_landmarks.json").is_file(), stem
        assert (out / f"{stem}_overlay.png").is_file()
    assert not (out / "e_noface_overlay.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["no_face"] == ["e_noface"] and [f[0] for f in summary["failed"]] == ["f_corrupt.jpg"]
    sheet = np.asarray(Image.open(out / "contact_sheet.png"))
    assert sheet.shape == (256, 4 * 256, 3)


def test_a_tiny_photo_is_handled(tiny_ckpt, tmp_path) -> None:
    small = np.asarray(Image.fromarray(skdata.astronaut()).resize((48, 48)))
    Image.fromarray(small).save(tmp_path / "small.png")
    code = _run(tiny_ckpt, tmp_path / "small.png", tmp_path / "out", "--no-fit", "--min-face", "12")
    assert code in (0, 2)  # a face of ~10 px may or may not be found; either way no crash
    if code == 0:
        rec = json.loads((tmp_path / "out" / "small_0_landmarks.json").read_text())
        assert rec["detection"]["small_face"] is True


def test_a_video_gives_per_frame_outputs_and_an_overlaid_video(tiny_ckpt, tmp_path) -> None:
    photo = skdata.astronaut()[:256, 64:320]
    writer = VideoWriter(tmp_path / "clip.mp4", rate=10)
    for k in range(4):
        writer.write(np.roll(photo, 4 * k, axis=1))
    writer.close()
    frames = list(iter_frames(tmp_path / "clip.mp4"))
    assert [f.index for f in frames] == [0, 1, 2, 3] and frames[0].rgb.shape == (256, 256, 3)
    out = tmp_path / "out"
    assert _run(tiny_ckpt, tmp_path / "clip.mp4", out, "--every", "2", "--batch-size", "1") == 0
    for i in (0, 2):
        for suffix in FACE_FILES:
            assert (out / f"clip_f{i:06d}_0{suffix}").is_file()
    assert not (out / "clip_f000001_0_landmarks.json").exists()
    overlaid = list(iter_frames(out / "clip_overlay.mp4"))
    assert len(overlaid) == 2 and overlaid[0].rgb.shape == (256, 256, 3)
