"""Necks: upsample the stride-32 backbone features to the stride-4 output resolution."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from centernet.model.config import NeckConfig
from centernet.model.dcn import ModulatedDeformConv2d

__all__ = ["LateralUpsamplingNeck", "UpsamplingNeck", "build_neck"]


def _bilinear_kernel_2x() -> Tensor:
    """(4, 4) kernel of bilinear upsampling by 2 for a stride-2, padding-1 transposed convolution.

    Each output pixel lies 1/4 or 3/4 of an input pixel away from its two nearest input pixels, so the 1-D
    weights are [1, 3, 3, 1] / 4; the 2-D kernel is their outer product. In the interior this equals
    ``F.interpolate(scale_factor=2, mode="bilinear", align_corners=False)``.
    """
    weights = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 4
    return weights[:, None] * weights[None, :]


def _init_bilinear(deconv: nn.ConvTranspose2d) -> None:
    """Initialise ``deconv`` (weight shape (C, C, 4, 4)) as per-channel bilinear upsampling by 2."""
    with torch.no_grad():
        deconv.weight.zero_()
        channel = torch.arange(deconv.in_channels)
        deconv.weight[channel, channel] = _bilinear_kernel_2x()


def _upsampling_stage(in_channels: int, out_channels: int, deformable: bool = False) -> nn.Sequential:
    """3x3 conv + BN + ReLU, then a bilinear-initialised 4x4 transposed conv (x2) + BN + ReLU.

    With ``deformable`` the 3x3 conv is a modulated deformable one with a bias, as DCNv2 in the original code.
    """
    deconv = nn.ConvTranspose2d(out_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False)
    _init_bilinear(deconv)
    conv = (
        ModulatedDeformConv2d(in_channels, out_channels, 3, bias=True)
        if deformable
        else nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
    )
    return nn.Sequential(
        conv,
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        deconv,
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UpsamplingNeck(nn.Module):
    """Three (conv 3x3 + BN + ReLU, deconv 4x4 x2 + BN + ReLU) stages: stride 32 -> 4.

    This is the ResNet "deconv" neck of CenterNet (Zhou et al. 2019, after Xiao et al. 2018). The paper
    changes channels with a 3x3 deformable convolution before each upsampling (``deformable=True``, on
    ``torchvision.ops``, no compiled operator); the default is a plain 3x3 convolution. Each transposed
    convolution is a full (groups=1) convolution initialised as bilinear upsampling: the kernel sits on the
    diagonal (input channel i -> output channel i) and every other in/out pair starts at zero. The layer
    therefore starts as an exact per-channel bilinear upsampler yet can learn to mix channels, which a
    depthwise one could not.

    Args:
        in_channels: channels of the stride-32 input.
        channels: output channels of the three stages.
        deformable: make each stage's 3x3 convolution a modulated deformable one (DCNv2, as in the paper).

    Attributes:
        out_channels: channels of the output (``channels[-1]``).
        upsampling: total upsampling factor, ``2 ** len(channels)`` (8: stride 32 -> 4).
    """

    def __init__(self, in_channels: int, channels: Sequence[int] = (256, 128, 64), deformable: bool = False) -> None:
        super().__init__()
        stages = []
        for out_channels in channels:
            stages.append(_upsampling_stage(in_channels, out_channels, deformable))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = channels[-1]
        self.upsampling = 2 ** len(channels)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Upsample the deepest backbone map.

        Args:
            features: backbone maps, finest first; only the last, (N, in_channels, h, w) at stride 32, is used.

        Returns:
            (N, out_channels, h * 2^len(channels), w * 2^len(channels)) features (stride 4 for three stages).
        """
        x = features[-1]
        for stage in self.stages:
            x = stage(x)
        return x


class LateralUpsamplingNeck(nn.Module):
    """The upsampling neck with lateral shortcuts from the backbone at strides 16, 8 and 4 (TTFNet-style).

    After each upsampling stage, a 3x3 conv + BN of the backbone map at the same stride is added before the
    ReLU. The plain neck must rebuild every position from the coarse stride-32 map; the shortcuts hand the
    finer maps' localisation straight to the heads, which matters most for small objects, small inputs and
    training from scratch (TTFNet, Liu et al. 2019; "CenterNet-better").

    Args:
        in_channels: channels of the backbone maps at strides (4, 8, 16, 32), finest first.
        channels: output channels of the three stages (stride 32 -> 16 -> 8 -> 4).
        deformable: make each stage's 3x3 convolution a modulated deformable one (DCNv2).

    Attributes:
        out_channels: channels of the output (``channels[-1]``).
        upsampling: 8, from stride 32 to stride 4.
    """

    def __init__(
        self, in_channels: Sequence[int], channels: Sequence[int] = (256, 128, 64), deformable: bool = False
    ) -> None:
        super().__init__()
        if len(in_channels) != 4 or len(channels) != 3:
            raise ValueError(
                f"LateralUpsamplingNeck needs backbone maps at strides 4, 8, 16, 32 and 3 stages, got "
                f"in_channels={list(in_channels)} and channels={list(channels)}"
            )
        stages, laterals = [], []
        previous = in_channels[-1]
        for out_channels, lateral_channels in zip(channels, reversed(in_channels[:-1]), strict=True):
            stage = _upsampling_stage(previous, out_channels, deformable)
            stages.append(stage[:-1])  # the ReLU comes after the lateral sum
            laterals.append(
                nn.Sequential(
                    nn.Conv2d(lateral_channels, out_channels, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(out_channels),
                )
            )
            previous = out_channels
        self.stages = nn.ModuleList(stages)
        self.laterals = nn.ModuleList(laterals)
        self.out_channels = channels[-1]
        self.upsampling = 8

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Upsample with shortcuts.

        Args:
            features: backbone maps (N, in_channels[i], H / s, W / s) for s = 4, 8, 16, 32.

        Returns:
            (N, out_channels, H / 4, W / 4) features.
        """
        x = features[-1]  # (N, C5, H/32, W/32)
        for stage, lateral, shortcut in zip(self.stages, self.laterals, reversed(features[:-1]), strict=True):
            x = torch.relu(stage(x) + lateral(shortcut))  # (N, C, H/s, W/s) for s = 16, 8, 4
        return x


def build_neck(options: NeckConfig, backbone: nn.Module) -> nn.Module:
    """The neck ``options`` describe, on ``backbone``'s maps (its ``channels`` at strides 4, 8, 16, 32).

    Every neck reports ``out_channels`` and ``upsampling`` (8: stride 32 -> 4).
    """
    if options.name == "upsampling":
        return UpsamplingNeck(backbone.out_channels, options.channels, options.deformable)
    if options.name == "lateral":
        return LateralUpsamplingNeck(backbone.channels, options.channels, options.deformable)
    from centernet.model.dla_up import DLAUpNeck

    return DLAUpNeck(backbone.channels, options.deformable)
