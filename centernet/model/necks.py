"""Necks: upsample the stride-32 backbone features to the stride-4 output resolution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["UpsamplingNeck"]


def _bilinear_kernel_2x() -> Tensor:
    """(4, 4) kernel of bilinear upsampling by 2 for a stride-2, padding-1 transposed convolution.

    Each output pixel lies 1/4 or 3/4 of an input pixel away from its two nearest input pixels, so the 1-D
    weights are [1, 3, 3, 1] / 4; the 2-D kernel is their outer product. In the interior this equals
    ``F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)``.
    """
    weights = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4
    return weights[:, None] * weights[None, :]


class UpsamplingNeck(nn.Module):
    """Three (conv 3x3 + BN + ReLU, deconv 4x4 x2 + BN + ReLU) stages: stride 32 -> 4.

    This is the ResNet "deconv" neck of CenterNet (Zhou et al. 2019, after Xiao et al. 2018). The paper
    changes channels with a 3x3 deformable convolution before each upsampling; we use a plain 3x3
    convolution, which needs no compiled operator. Each transposed convolution is a full (groups=1)
    convolution initialised as bilinear upsampling: the kernel sits on the diagonal (input channel i ->
    output channel i) and every other in/out pair starts at zero. The layer therefore starts as an exact
    per-channel bilinear upsampler yet can learn to mix channels, which a depthwise one could not.

    Args:
        in_channels: channels of the stride-32 input.
        channels: output channels of the three stages.

    Attributes:
        out_channels: channels of the output (``channels[-1]``).
        upsampling: total upsampling factor, ``2 ** len(channels)`` (8: stride 32 -> 4).
    """

    def __init__(self, in_channels: int, channels: Sequence[int] = (256, 128, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out_channels in channels:
            deconv = nn.ConvTranspose2d(out_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False)
            self._init_bilinear(deconv)
            layers += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
                deconv,
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels[-1]
        self.upsampling = 2 ** len(channels)

    @staticmethod
    def _init_bilinear(deconv: nn.ConvTranspose2d) -> None:
        """Initialise ``deconv`` (weight shape (C, C, 4, 4)) as per-channel bilinear upsampling by 2."""
        with torch.no_grad():
            deconv.weight.zero_()
            channel = torch.arange(deconv.in_channels)
            deconv.weight[channel, channel] = _bilinear_kernel_2x()

    def forward(self, features: Tensor) -> Tensor:
        """Upsample features.

        Args:
            features: (N, in_channels, h, w) backbone features (stride 32).

        Returns:
            (N, out_channels, h * 2^len(channels), w * 2^len(channels)) features (stride 4 for three stages).
        """
        return self.layers(features)
