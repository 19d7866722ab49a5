"""Deep-MDS training options: the 'depth' output of the dissimilarity net (in-plane part of the distance
known, the net supplies |dz|), the 'corner' origin of the pair coordinates (no joint sign ambiguity of the
pair features) and the relative dissimilarity loss, each against hand-computed values."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from lightning_modules.components.dissimilarity_net import (
    DeepMDSNet,
    DissimilarityNet,
    pair_features,
)
from lightning_modules.components.view_autoencoder import ViewAutoencoder
from lightning_modules.deep_mds import DeepMDSLifter, canonical_view
from tests.lifting.synthetic_faces import synthetic_faces


def _constant_net(output: str, value: float) -> DissimilarityNet:
    """A net whose softplus output is `value` for every input."""
    net = DissimilarityNet(output=output).double()
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.fill_(math.log(math.expm1(value)))
    return net


def test_depth_output_adds_the_in_plane_distance() -> None:
    p = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    q = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    feats = pair_features(p, q)
    assert float(_constant_net("depth", 12.0)(feats)) == pytest.approx(13.0)  # sqrt(9 + 16 + 144)
    assert float(_constant_net("distance", 12.0)(feats)) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="output"):
        DissimilarityNet(output="metres")


def test_pair_features_are_ambiguous_when_centred_not_from_the_corner() -> None:
    """Centred coordinates: a pair and its point reflection give the same features; shifted to positive
    coordinates they do not."""
    p, q = torch.tensor([0.3, -0.8]), torch.tensor([-0.2, -0.5])
    torch.testing.assert_close(pair_features(p, q), pair_features(-p, -q))
    shift = torch.tensor([1.5, 1.5])
    assert not torch.allclose(pair_features(p + shift, q + shift), pair_features(-p + shift, -q + shift))


def _lifter(**kw) -> DeepMDSLifter:
    net = DeepMDSNet(ViewAutoencoder(), DissimilarityNet(output="depth"))
    return DeepMDSLifter(net, functools.partial(torch.optim.Adam, lr=1e-3), nmds_iters=3, **kw)


def test_corner_origin_and_relative_loss() -> None:
    faces = synthetic_faces(4, 0)
    canon, shape_norm = canonical_view(faces, 0.0)
    corner = _lifter(pair_origin="corner")._pair_coords(canon)
    torch.testing.assert_close(corner.amin(1), torch.full((4, 2), 0.5))
    torch.testing.assert_close(corner - corner.mean(1, keepdim=True), canon - canon.mean(1, keepdim=True))
    with pytest.raises(ValueError, match="pair_origin"):
        _lifter(pair_origin="middle")
    with pytest.raises(ValueError, match="dissim_loss"):
        _lifter(dissim_loss="l1")
    # the dissimilarity loss by hand: a net whose |dz| output is ~0 estimates each distance by the in-plane
    # distance of the canonical view (the net sees the true canonical view: dissim_input="target")
    from fitting.nmds import pairwise_distances

    batch = {"landmarks_px": 100 * canon, "landmarks3d": torch.zeros(4, 68, 3), "landmarks3d_model": faces}
    d_gt, d_xy = pairwise_distances(shape_norm), pairwise_distances(canon)
    off = ~torch.eye(68, dtype=torch.bool)
    for loss_name, expected in (("relative", (((d_xy - d_gt) / d_gt)[:, off] ** 2).mean()),
                                ("squared", ((d_xy - d_gt)[:, off] ** 2).mean())):
        m = _lifter(dissim_loss=loss_name, dissim_weight=1.0)
        m.net.dissimilarity = _constant_net("depth", 1e-9).float()
        ae = ((m.net.autoencoder(canon) - canon) ** 2).sum(-1).mean()
        loss, _, _ = m.model_step(batch, full=False)
        assert float(loss - ae) == pytest.approx(float(expected), rel=1e-3)
