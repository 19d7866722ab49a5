"""Vertex-Edge loss (thesis Eq. 3.23): sum over mesh edges of the squared edge-vector error."""

from __future__ import annotations

import torch
from torch import nn


class VertexEdgeLoss(nn.Module):
    """L_VE = sum_{(i, j) in E} || (p_i - p_j) - (g_i - g_j) ||^2, mean over the batch.

    Args:
        edges: (E, 2) int64 landmark index pairs (an undirected mesh edge set between landmarks).
        reduction: "sum" over edges (the thesis) or "mean" over edges (scale-free in E).

    Shapes: pred, target (B, L, D) (D = 2 or 3), same units. Returns a scalar.
    """

    def __init__(self, edges: torch.Tensor, reduction: str = "sum") -> None:
        super().__init__()
        edges = torch.as_tensor(edges, dtype=torch.long)
        if edges.ndim != 2 or edges.shape[1] != 2:
            raise ValueError(f"VertexEdgeLoss: edges must be (E, 2), got {tuple(edges.shape)}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"VertexEdgeLoss: reduction={reduction!r}, expected 'sum' or 'mean'")
        self.register_buffer("edges", edges, persistent=False)  # (E, 2)
        self.reduction = reduction

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if int(self.edges.max()) >= pred.shape[1]:
            raise ValueError(
                f"VertexEdgeLoss: edge index {int(self.edges.max())} >= number of landmarks {pred.shape[1]}"
            )
        i, j = self.edges[:, 0], self.edges[:, 1]
        e_pred = pred[:, i] - pred[:, j]  # (B, E, D)
        e_gt = target[:, i] - target[:, j]
        per_edge = ((e_pred - e_gt) ** 2).sum(-1)  # (B, E)
        per_image = per_edge.sum(-1) if self.reduction == "sum" else per_edge.mean(-1)
        return per_image.mean()


def edges_from_faces(faces: torch.Tensor) -> torch.Tensor:
    """Triangles (F, 3) int -> unique undirected edges (E, 2) int64 with i < j."""
    faces = torch.as_tensor(faces, dtype=torch.long)
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]], 0)  # (3F, 2)
    e = torch.sort(e, dim=1).values
    return torch.unique(e, dim=0)
