"""MobileNet v1 (Howard et al. 2017), as scaled by MobileFace for 96x96 inputs.

MobileFace: first conv 3x3x3x10 (32 * 0.3125), every later layer scaled by the same
width multiplier (so the last block has 320 channels), global average pooling, FC
320 -> 118. At 96x96 the last feature map is 3x3 (stride 32); the paper's "global
average pooling over 2x2" is read as global pooling of the last map.
"""

from __future__ import annotations

from torch import Tensor, nn

# (out_channels at width 1.0, stride) of the 13 depthwise-separable blocks
_V1_BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def _conv_bn(c_in: int, c_out: int, k: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    """MobileNet v1 regressor. Input (B, 3, H, W) (96x96 in MobileFace), output (B, n_outputs).

    width_mult 0.3125 gives the paper's 10-channel first conv and 320-d features
    (~0.35 M parameters, ~1.4 MB in float32; the paper reports a 1.5 MB model).
    """

    def __init__(self, n_outputs: int = 118, width_mult: float = 0.3125, in_channels: int = 3,
                 zero_head: bool = False) -> None:
        """zero_head: initialise the FC layer to zero, so the first predictions are exactly 0 (for a
        regressor of normalised targets: the training mean; MobileFace's configs use it)."""
        super().__init__()
        c = max(1, int(round(32 * width_mult)))
        layers: list[nn.Module] = [_conv_bn(in_channels, c, 3, 2)]
        for c_out_full, stride in _V1_BLOCKS:
            c_out = max(1, int(round(c_out_full * width_mult)))
            layers += [_conv_bn(c, c, 3, stride, groups=c), _conv_bn(c, c_out, 1, 1)]
            c = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, n_outputs)
        self.feature_dim = c
        if zero_head:
            nn.init.zeros_(self.fc.weight)
            nn.init.zeros_(self.fc.bias)

    def forward(self, image: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, n_outputs)."""
        return self.fc(self.pool(self.features(image)).flatten(1))
