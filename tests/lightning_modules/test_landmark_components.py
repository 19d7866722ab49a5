"""Spiral convolution / SpiralNet++ decoder on toy hierarchies, heads, backbones, Zhao's CNN."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from lightning_modules.components.backbones import TimmBackbone
from lightning_modules.components.heads import LinearHead, MLPHead
from lightning_modules.components.landmark_net import LandmarkNet
from lightning_modules.components.spiral_decoder import SpiralConv, SpiralDecoder
from lightning_modules.components.zhao_cnn import ZhaoCNN


def test_spiral_conv_gathers_along_spirals_by_hand():
    spiral = torch.tensor([[0, 1], [1, 2], [2, 0]])  # (V=3, S=2)
    conv = SpiralConv(1, 1, spiral)
    with torch.no_grad():
        conv.linear.weight.copy_(torch.tensor([[10.0, 1.0]]))  # 10 * self + 1 * next
        conv.linear.bias.zero_()
    x = torch.tensor([[[1.0], [2.0], [3.0]]])  # (B=1, V=3, C=1)
    out = conv(x)
    assert out.squeeze().tolist() == [12.0, 23.0, 31.0]


def test_spiral_decoder_upsamples_with_the_given_matrices():
    """Coarse 2 -> fine 3 vertices; with a spiral conv that copies the centre feature, the decoder
    output is exactly U @ (fc features) through ELU (identity for positive inputs)."""
    up = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])  # (3, 2), rows sum to 1
    spiral = torch.tensor([[0, 1], [1, 0], [2, 1]])
    dec = SpiralDecoder(in_features=1, up_matrices=[up], spirals=[spiral], channels=[1, 1], out_channels=1)
    with torch.no_grad():
        dec.fc.weight.copy_(torch.tensor([[1.0], [3.0]]))
        dec.fc.bias.zero_()
        for conv in (dec.convs[0], dec.out_conv):
            conv.linear.weight.copy_(torch.tensor([[1.0, 0.0]]))
            conv.linear.bias.zero_()
    out = dec(torch.tensor([[2.0]]))  # coarse features (2, 6) -> fine (2, 4, 6)
    assert out.shape == (1, 3, 1)
    assert out.squeeze().tolist() == pytest.approx([2.0, 4.0, 6.0])


def toy_hierarchy():
    """A real 3-level hierarchy of a frontal grid hemisphere, built by facemodels.mesh.hierarchy."""
    from facemodels.mesh.hierarchy import build_hierarchy

    g = np.linspace(-0.95, 0.95, 15)
    xx, yy = np.meshgrid(g, g)
    m = xx**2 + yy**2 < 0.9
    xy = np.stack([xx[m], yy[m]], 1)
    v = np.concatenate([xy, np.sqrt(1 - (xy**2).sum(1))[:, None]], 1) * 0.1
    f = np.asarray(Delaunay(xy).simplices, dtype=np.int64)
    n = len(v)
    return build_hierarchy(v, f, np.arange(n), sizes=(n, n // 2, n // 4), spiral_length=9)


def test_spiral_decoder_on_a_toy_mesh_hierarchy_trains():
    h = toy_hierarchy()
    levels = range(h.num_levels - 2, -1, -1)  # coarse -> fine transitions
    ups = [h.up_matrix(lvl, sparse=True) for lvl in levels]
    spirals = [torch.as_tensor(h.spirals[lvl]) for lvl in levels]
    torch.manual_seed(0)
    dec = SpiralDecoder(16, ups, spirals, channels=[8, 8, 8], out_channels=4)
    feats = torch.randn(3, 16)
    out = dec(feats)
    assert out.shape == (3, h.sizes[0], 4)
    out.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in dec.parameters())
    with pytest.raises(ValueError, match="spirals"):
        SpiralDecoder(16, ups, spirals[:1], channels=[8, 8, 8])


def test_linear_and_mlp_heads_shapes():
    x = torch.randn(2, 10)
    assert LinearHead(10, 5, channels=4)(x).shape == (2, 5, 4)
    assert LinearHead(10, 5, channels=3, num_extra=2)(x).shape == (2, 7, 3)
    assert MLPHead(10, 5, channels=4, hidden=8)(x).shape == (2, 5, 4)


def test_timm_backbone_feature_size_and_landmark_net():
    bb = TimmBackbone("test_resnet")
    net = LandmarkNet(bb, functools.partial(LinearHead, num_landmarks=7, channels=4))
    assert net.head.fc.in_features == bb.num_features
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 7, 4)
    with pytest.raises(ValueError, match="unknown timm model"):
        TimmBackbone("no_such_net_123")


def test_timm_backbone_loads_a_local_state_dict(tmp_path):
    src = TimmBackbone("test_resnet")
    path = tmp_path / "w.pth"
    torch.save(src.model.state_dict(), path)
    dst = TimmBackbone("test_resnet", pretrained_path=str(path))
    for (k, a), b in zip(src.model.state_dict().items(), dst.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        TimmBackbone("test_resnet", pretrained_path=str(tmp_path / "missing.pth"))


def test_zhao_cnn_structure_and_output():
    net = ZhaoCNN(num_landmarks=68)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in net.modules() if isinstance(m, torch.nn.MaxPool2d)]
    fcs = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert (len(convs), len(pools), len(fcs)) == (4, 2, 2)
    assert fcs[-1].out_features == 2 * 68
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 68, 2)
