"""Anatomy of the procedural head: published sizes (facemodels.anthropometry; the mean and +-2 sd
identities), symmetry, bases (orthogonal, decreasing, expressions leave the skull alone) and the
rig (jaw, eyes, neck)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facemodels import anthropometry as AN
from facemodels.ibug68 import IBUG68_FLIP
from facemodels.procedural import anatomy as A
from facemodels.procedural.builder import cached_world
from facemodels.procedural.masks import mirror_index
from facemodels.proportions import ModelFaces, absolute_mm, flame_faces

pytest.importorskip("smplx")


@pytest.fixture(scope="module")
def world():
    return cached_world(0)


@pytest.fixture(scope="module")
def model(flame_dir):
    from facemodels.flame import FlameModel

    return FlameModel(flame_dir, n_shape=300, n_exp=100)


def _head(world) -> np.ndarray:
    ears = np.concatenate([world.masks["left_ear"], world.masks["right_ear"]])
    return np.setdiff1d(np.arange(4681), ears)


def test_mean_sizes_published(world):
    """The mean head is life-size (metres, as real FLAME): every measurement of
    facemodels.anthropometry inside its published absolute range and within 2 sd of its mean."""
    m = absolute_mm(ModelFaces(world.v_template[None], world.landmarks68[None]))
    for meas in (*AN.MEASUREMENTS, AN.ZYGOMATIC):
        rng = AN.published_mm(meas)
        assert rng.lo < m[meas.name][0] < rng.hi, (meas.name, m[meas.name][0], rng)
        assert abs(m[meas.name][0] - rng.mean) < 2 * rng.sd, (meas.name, m[meas.name][0], rng)


def test_random_identities_life_size(world, flame_dir):
    """200 identities from the model's prior: for every published measurement their mean within
    2 sd of the published mean, their sd within a factor 2 of the published sd, and at least 97 %
    of them inside the published pooled range widened by one sd; every head (eu-eu, over the
    skull without the ears) wider than its face (zy-zy)."""
    faces = flame_faces(flame_dir, n=200)
    m = absolute_mm(faces)
    for meas in (*AN.MEASUREMENTS, AN.ZYGOMATIC):
        rng, x = AN.published_mm(meas), m[meas.name][1:]
        assert abs(x.mean() - rng.mean) < 2 * rng.sd, (meas.name, x.mean(), rng)
        assert rng.sd / 2 < x.std() < 2 * rng.sd, (meas.name, x.std(), rng)
        inside = ((x > rng.lo - rng.sd) & (x < rng.hi + rng.sd)).mean()
        assert inside >= 0.97, (meas.name, inside, x.min(), x.max(), rng)
    head_breadth = 2e3 * np.abs(faces.vertices[:, _head(world), 0]).max(-1)
    assert (head_breadth > m[AN.ZYGOMATIC.name]).all()


def test_mean_is_mirror_symmetric(world):
    lm = world.landmarks68
    np.testing.assert_allclose(lm[IBUG68_FLIP] * [-1, 1, 1], lm, atol=1e-9)
    mir = mirror_index()
    np.testing.assert_allclose(world.v_template[mir] * [-1, 1, 1], world.v_template, atol=1e-9)
    # landmark sides: 0..7 on the subject's right (x < 0), 36 outer right eye corner
    assert (lm[:8, 0] < 0).all() and lm[36, 0] < lm[39, 0] < 0 < lm[42, 0] < lm[45, 0]
    assert lm[30, 2] == lm[:, 2].max()  # the nose tip protrudes most


def test_shapedirs_blocks_orthogonal_decreasing(world):
    sd = world.shapedirs.reshape(-1, 400)
    for blk in (sd[:, :300], sd[:, 300:]):
        gram = blk.T @ blk
        n = np.sqrt(np.diag(gram))
        assert np.all(np.diff(n) < 0)
        np.testing.assert_allclose(gram / np.outer(n, n), np.eye(len(n)), atol=1e-8)


def test_expressions_leave_skull_ears_and_eyes_fixed(world):
    ex = world.shapedirs[:, :, 300:]
    m = world.masks
    v = world.v_template
    still = np.concatenate(
        [
            m["scalp"],
            m["left_ear"],
            m["right_ear"],
            m["left_eyeball"],
            m["right_eyeball"],
            np.flatnonzero(v[:, 2] < 0.0),
            np.flatnonzero(v[:, 1] > A.HAIRLINE_Y),
        ]
    )
    assert np.abs(ex[still]).max() == 0.0
    # expressions do move the mouth, lips and brows (> 1 mm for some +-1 sd component)
    for region in (
        m["lips"],
        np.flatnonzero((v[:, 1] > 0.045) & (v[:, 1] < 0.06) & (v[:, 2] > 0.05)),
    ):
        assert np.linalg.norm(ex[region], axis=1).max() > 1e-3


def test_identity_moves_eyeballs_rigidly(world):
    sd = world.shapedirs[:, :, :300]
    for eye in (world.masks["left_eyeball"], world.masks["right_eyeball"]):
        np.testing.assert_allclose(sd[eye], np.broadcast_to(sd[eye[:1]], sd[eye].shape), atol=1e-12)


def test_jaw_rotation_moves_chin_not_forehead(world, model):
    with torch.no_grad():
        rest = model()
        open_ = model(jaw_pose=torch.tensor([[0.25, 0.0, 0.0]]))
    dv = (open_.vertices - rest.vertices)[0].double().numpy()
    dl = (open_.landmarks68 - rest.landmarks68)[0].double().numpy()
    assert dl[8, 1] < -0.01  # chin down by more than 1 cm
    assert dl[57, 1] < -0.005  # lower lip follows
    assert np.abs(dl[[27, 30, 33, 36, 45, 51]]).max() < 1e-4  # nose, eyes, upper lip stay
    fixed = np.concatenate(
        [world.masks["forehead"], world.masks["scalp"], world.masks["left_eyeball"]]
    )
    assert np.abs(dv[fixed]).max() < 1e-6


def test_eyes_follow_eye_joints(world, model):
    pose = torch.zeros(1, 6)
    pose[0, 1] = 0.3  # left eye (subject's left, x > 0) turns about y
    with torch.no_grad():
        rest, out = model(), model(eye_pose=pose)
    le, re = world.masks["left_eyeball"], world.masks["right_eyeball"]
    v0, v1 = rest.vertices[0].double().numpy(), out.vertices[0].double().numpy()
    c = rest.joints[0, 3].double().numpy()
    np.testing.assert_allclose(c, A.LEFT_EYE_CENTRE, atol=1e-6)
    a = 0.3
    Ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    np.testing.assert_allclose(v1[le], (v0[le] - c) @ Ry.T + c, atol=1e-6)
    others = np.setdiff1d(np.arange(5023), le)
    assert np.abs(v1[others] - v0[others]).max() < 1e-7
    assert np.abs(v1[re] - v0[re]).max() < 1e-7


def test_neck_pose_turns_head_keeps_neck_base(world, model):
    with torch.no_grad():
        rest, out = model(), model(neck_pose=torch.tensor([[0.0, 0.4, 0.0]]))
    dv = (out.vertices - rest.vertices)[0].double().numpy()
    assert np.abs(dv[world.masks["boundary"]]).max() < 1e-6
    assert np.linalg.norm(dv[world.masks["forehead"]], axis=1).min() > 0.01
