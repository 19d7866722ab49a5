"""The README's lifting picture helpers (experiments/reports/lifting_picture.py)."""

from __future__ import annotations

import math

import torch

from experiments.reports.lifting_picture import pick_faces, to_face_frame
from facemodels.rotations import euler_to_matrix


def test_face_frame_undoes_the_view_and_the_image_mirror():
    g = torch.Generator().manual_seed(0)
    model = torch.randn(68, 3, generator=g, dtype=torch.float64)
    rot = euler_to_matrix(torch.tensor([[0.3, -0.9, 0.2]], dtype=torch.float64))[0]
    cam = 40.0 * model @ rot.T + torch.tensor([100.0, 80.0, 5.0], dtype=torch.float64)
    cam = cam * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)  # image frame: y down, z towards the camera
    back = to_face_frame(cam, cam, model)
    torch.testing.assert_close(back, model - model.mean(0))
    # a prediction that differs only in depth keeps that difference, rotated with the face
    moved = cam.clone()
    moved[5, 2] += 4.0
    diff = to_face_frame(moved, cam, model)[5] - back[5]
    assert math.isclose(float(diff.norm()), 4.0 / 40.0, rel_tol=1e-9)


def test_pick_faces_takes_the_first_face_of_each_yaw_bin():
    yaw = torch.tensor([50.0, -3.0, 20.0, -70.0, 10.0, 80.0])
    assert pick_faces(yaw, [0, 15, 40, 65, 91]) == [1, 2, 0, 3]
    assert pick_faces(yaw, [0, 1, 15]) == [1]  # the empty bin [0, 1) is left out
