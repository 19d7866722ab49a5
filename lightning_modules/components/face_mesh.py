"""Factories that build mesh-dependent modules from the FLAME face hierarchy (used by configs).

Level order of `facemodels.mesh.face_hierarchy.face_hierarchy`: finest first (face1609, face805, face403,
face202, face101). The landmark order of a set `faceN` is that level's vertex order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from facemodels.mesh.face_hierarchy import face_hierarchy
from facemodels.spirals import edge_list
from lightning_modules.components.spiral_decoder import SpiralDecoder


def _hierarchy(flame_dir: str | None, spiral_length: int):
    return face_hierarchy(flame_dir, spiral_length=spiral_length)


def face_spiral_decoder(
    in_features: int,
    landmark_set: str = "face1609",
    channels: Sequence[int] = (64, 64, 32, 32, 32),
    out_channels: int = 4,
    flame_dir: str | None = None,
    spiral_length: int = 9,
) -> SpiralDecoder:
    """SpiralNet++ decoder from the coarsest face level (face101) up to `landmark_set`.

    channels[0] is the width on face101, channels[k] after the k-th up-sampling; entries beyond
    the number of levels needed are ignored (face1609 uses 5, face805 4, ...).
    Returns a SpiralDecoder: features (B, in_features) -> (B, L, out_channels).
    """
    h = _hierarchy(flame_dir, spiral_length)
    target = h.level_of(landmark_set)
    coarsest = h.num_levels - 1
    m = coarsest - target
    if m < 1:
        raise ValueError(
            f"face_spiral_decoder: landmark_set={landmark_set!r} is the coarsest level; nothing to decode"
        )
    if len(channels) < m + 1:
        raise ValueError(f"face_spiral_decoder: need {m + 1} channels for {landmark_set}, got {list(channels)}")
    levels = range(coarsest - 1, target - 1, -1)  # transitions coarse -> fine
    ups = [h.up_matrix(lvl, sparse=False) for lvl in levels]  # (n_l, n_{l+1})
    spirals = [torch.as_tensor(h.spirals[lvl], dtype=torch.long) for lvl in levels]  # (n_l, S)
    return SpiralDecoder(in_features, ups, spirals, list(channels)[: m + 1], out_channels)


def landmark_edges(landmark_set: str = "face1609", flame_dir: str | None = None) -> torch.Tensor:
    """Mesh edges (E, 2) int64 between the landmarks of a face level (for the Vertex-Edge loss)."""

    h = _hierarchy(flame_dir, 9)
    try:
        level = h.level_of(landmark_set)
    except KeyError as err:
        raise ValueError(
            f"landmark_edges: landmark_set={landmark_set!r} has no mesh; the Vertex-Edge loss needs one of "
            f"{h.names}"
        ) from err
    return torch.as_tensor(edge_list(h.faces[level]), dtype=torch.long)
