"""experiments.face_detection: the box maps and five-point helpers by hand, and the MTCNN detector (weights
inside facenet-pytorch's wheel) on a real photograph that scikit-image ships."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.face_detection import (
    BOX_CONVENTIONS,
    BoxMap,
    FaceDetector,
    box_iou,
    fit_box_map,
    five_point_box,
    five_points_from_68,
)


def test_box_map_by_hand() -> None:
    # a 40 x 10 box: side sqrt(400) = 20, centre (30, 15); dx 0.5 -> +10 px, dy -0.25 -> -5 px
    m = BoxMap(dx=0.5, dy=-0.25, sw=2.0, sh=1.5)
    assert np.allclose(m.apply([10, 10, 50, 20]), [40 - 20, 10 - 15, 40, 30])
    assert m.apply(np.zeros((3, 2, 4)) + [0, 0, 4, 4]).shape == (3, 2, 4)


def test_fit_box_map_recovers_a_known_map_and_ignores_an_outlier() -> None:
    rng = np.random.default_rng(0)
    true = BoxMap(dx=0.1, dy=0.2, sw=1.1, sh=1.6)
    xy = rng.uniform(0, 200, (21, 2))
    wh = rng.uniform(20, 80, (21, 2))
    det = np.concatenate([xy, xy + wh], 1)
    gt = true.apply(det)
    gt[0] += [500, 500, 300, 300]  # one false detection
    fit = fit_box_map(det, gt)
    assert np.allclose([fit.dx, fit.dy, fit.sw, fit.sh], [0.1, 0.2, 1.1, 1.6])
    assert fit_box_map(det, gt, symmetric=True).dx == 0.0
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        fit_box_map(det[:, :3], gt)


def test_box_iou_and_five_points_by_hand() -> None:
    assert np.isclose(box_iou([0, 0, 2, 2], [1, 1, 2, 2]), 1 / 7)
    assert box_iou([0, 0, 1, 1], [5, 5, 1, 1]) == 0
    lm = np.zeros((68, 2))
    lm[36:42] = [10, 20]
    lm[42:48] = [30, 20]
    lm[30] = [20, 30]
    lm[48], lm[54] = [12, 40], [28, 40]
    p5 = five_points_from_68(lm)
    assert np.allclose(p5, [[10, 20], [30, 20], [20, 30], [12, 40], [28, 40]])
    # eyes' midpoint (20, 20), mouth's (20, 40): centre (20, 30), half side 20
    assert np.allclose(five_point_box(p5), [0, 10, 40, 50])


def test_the_shipped_maps_cover_every_convention_the_datamodules_name() -> None:
    from datamodules.aflw2000 import Aflw2000DataModule
    from datamodules.base import FaceDataModule
    from datamodules.w300lp import W300LPDataModule

    for cls in (FaceDataModule, W300LPDataModule, Aflw2000DataModule):
        assert cls.box_convention in BOX_CONVENTIONS
    for m in BOX_CONVENTIONS.values():
        assert m.dx == 0.0 and 0.5 < m.sw < 2.5 and 0.5 < m.sh < 2.5


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


def test_mtcnn_finds_the_face_in_a_real_photograph(astronaut) -> None:
    faces = FaceDetector().detect(astronaut)
    assert len(faces) == 1
    d = faces[0]
    x0, y0, x1, y1 = d.box
    assert d.score > 0.99 and 60 < x1 - x0 < 140 and 60 < y1 - y0 < 160  # the face is ~90 x 110 px
    assert np.all((d.points5 >= [x0, y0]) & (d.points5 <= [x1, y1]))
    left_eye, right_eye, nose, mouth_l, mouth_r = d.points5
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_l[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_detector_batches_and_rejects_bad_arrays(astronaut) -> None:
    det = FaceDetector()
    blank = np.full((128, 96, 3), 127, np.uint8)
    out = det.detect_batch([astronaut, blank, astronaut])
    assert [len(f) for f in out] == [1, 0, 1]
    assert np.allclose(out[0][0].box, out[2][0].box)
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        det.detect(np.zeros((8, 8), np.uint8))
