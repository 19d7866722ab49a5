"""Deep-MDS view-normalising auto-encoder: 2D landmarks of any view -> canonical view."""

from __future__ import annotations

from torch import Tensor, nn


class ViewAutoencoder(nn.Module):
    """MLP encoder-decoder on flattened 2D landmarks.

    Input (B, n, 2) standardised 2D landmarks of any pose / projection; output (B, n, 2)
    the same face's landmarks in the canonical view, in the same standardised units.
    Encoder widths `hidden` then `bottleneck`, decoder mirrored; tanh activations.

    residual: if True the output is the input plus the decoder's output (an identity skip, no
    parameters): the net only learns the change of view. Through a 32-wide bottleneck the face's own
    in-plane shape (identity) is largely lost, and the dissimilarity net takes the canonical view's
    in-plane distances as exact; with the skip the input's identity passes through.
    """

    def __init__(self, n_landmarks: int = 68, hidden: tuple[int, ...] = (72,), bottleneck: int = 32,
                 residual: bool = False) -> None:
        super().__init__()
        n2 = 2 * n_landmarks
        enc_w = [n2, *hidden, bottleneck]
        dec_w = [bottleneck, *reversed(hidden), n2]
        enc: list[nn.Module] = []
        for a, b in zip(enc_w[:-1], enc_w[1:], strict=True):
            enc += [nn.Linear(a, b), nn.Tanh()]
        dec: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(dec_w[:-1], dec_w[1:], strict=True)):
            dec.append(nn.Linear(a, b))
            if k < len(dec_w) - 2:
                dec.append(nn.Tanh())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)
        self.n_landmarks = n_landmarks
        self.residual = residual

    def forward(self, xy_std: Tensor) -> Tensor:
        """(B, n, 2) -> (B, n, 2) canonical-view landmarks."""
        if xy_std.shape[1:] != (self.n_landmarks, 2):
            raise ValueError(f"ViewAutoencoder: expected (B, {self.n_landmarks}, 2), got {tuple(xy_std.shape)}")
        out = self.decoder(self.encoder(xy_std.flatten(1))).view_as(xy_std)
        return xy_std + out if self.residual else out
