"""The DLA-up / IDA-up neck of CenterNet-DLA (Zhou et al. 2019, after Yu et al. 2018, "Deep Layer Aggregation").

Iterative deep aggregation (IDA) upsamples a list of maps one by one onto the finest of them, each step merging
with the previous result through a 3x3 "node". DLA-up runs IDA three times, from the coarsest pair of backbone
maps down to stride 4, producing aggregated maps at strides 4, 8, 16 (and the untouched stride-32 map); a
last IDA-up merges the maps at strides 4, 8 and 16 into the stride-4 output. With ``deformable`` every 3x3
projection and node is a modulated deformable convolution, exactly as in the paper's CenterNet-DLA-34.

Layout and initialisation follow the original CenterNet code: projections and nodes are conv + BN + ReLU (the
deformable one has a bias, as DCNv2 always does); upsampling by f is a depthwise transposed convolution with a
(2f, 2f) kernel, stride f and padding f / 2, initialised as bilinear interpolation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from centernet.model.dcn import ModulatedDeformConv2d

__all__ = ["DLAUpNeck", "IDAUp", "conv3x3_bn_relu"]


def conv3x3_bn_relu(in_channels: int, out_channels: int, deformable: bool = False) -> nn.Sequential:
    """3x3 convolution (deformable or plain) + BN + ReLU, the projection / node block of the necks.

    The deformable convolution keeps DCNv2's bias (redundant before BN, kept for parity with the original
    models' parameter counts); the plain one has none.
    """
    conv = (
        ModulatedDeformConv2d(in_channels, out_channels, 3, bias=True)
        if deformable
        else nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
    )
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _bilinear_upsampling(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Depthwise transposed convolution upsampling by ``factor``, initialised as bilinear interpolation.

    The 1-D kernel of size 2f has taps ``1 - |i / f - c|`` with ``c = (2f - 1 - f % 2) / (2f)``; for f = 2 it is
    [1, 3, 3, 1] / 4.
    """
    up = nn.ConvTranspose2d(
        channels, channels, 2 * factor, stride=factor, padding=factor // 2, groups=channels, bias=False
    )
    centre = (2 * factor - 1 - factor % 2) / (2 * factor)
    taps = 1 - (torch.arange(2 * factor, dtype=torch.float32) / factor - centre).abs()
    with torch.no_grad():
        up.weight.copy_((taps[:, None] * taps[None, :]).expand_as(up.weight))
    return up


class IDAUp(nn.Module):
    """Iterative deep aggregation of maps onto the first (finest) one.

    Map ``i >= 1`` is projected to ``out_channels`` (3x3 block), upsampled by ``factors[i]`` and added to the
    previous aggregate, then refined by a 3x3 node: ``out[i] = node_i(up_i(proj_i(x[i])) + out[i - 1])``.

    Args:
        out_channels: channels of the first map and of every output.
        in_channels: channels of the input maps, finest first.
        factors: upsampling factor of each map onto the first's resolution (``factors[0]`` is 1).
        deformable: use modulated deformable convolutions in the projections and nodes.
    """

    def __init__(
        self, out_channels: int, in_channels: Sequence[int], factors: Sequence[int], deformable: bool = False
    ) -> None:
        super().__init__()
        if len(in_channels) != len(factors):
            raise ValueError(f"in_channels {list(in_channels)} and factors {list(factors)} differ in length")
        self.proj = nn.ModuleList(conv3x3_bn_relu(c, out_channels, deformable) for c in in_channels[1:])
        self.up = nn.ModuleList(_bilinear_upsampling(out_channels, f) for f in factors[1:])
        self.node = nn.ModuleList(conv3x3_bn_relu(out_channels, out_channels, deformable) for _ in in_channels[1:])

    def forward(self, maps: Sequence[Tensor]) -> list[Tensor]:
        """Aggregate.

        Args:
            maps: (N, in_channels[i], h / factors[i], w / factors[i]) maps, finest first.

        Returns:
            ``len(maps)`` maps: the first unchanged, then each aggregate (N, out_channels, h, w).
        """
        outputs = [maps[0]]
        for x, proj, up, node in zip(maps[1:], self.proj, self.up, self.node, strict=True):
            outputs.append(node(up(proj(x)) + outputs[-1]))  # (N, out_channels, h, w)
        return outputs


class DLAUpNeck(nn.Module):
    """DLA-up followed by IDA-up: backbone maps at strides 4-32 -> one stride-4 map.

    Works on any backbone that returns maps at strides 4, 8, 16, 32; for DLA-34, ``in_channels`` is
    (64, 128, 256, 512) and the output has 64 channels, as in CenterNet-DLA-34.

    Args:
        in_channels: channels of the backbone maps at strides (4, 8, 16, 32), finest first.
        deformable: modulated deformable 3x3 convolutions in every projection and node (the paper's model).

    Attributes:
        out_channels: ``in_channels[0]``.
        upsampling: 8, from stride 32 to stride 4.
    """

    upsampling: int = 8

    def __init__(self, in_channels: Sequence[int], deformable: bool = False) -> None:
        super().__init__()
        if len(in_channels) != 4:
            raise ValueError(f"DLAUpNeck needs backbone maps at strides 4, 8, 16, 32, got channels {list(in_channels)}")
        channels = list(in_channels)
        current = list(in_channels)  # channels of each map as the aggregation proceeds
        idas = []
        # Step k aggregates maps k' >= 2 - k (strides 16 -> 4) onto map 2 - k; every map it touches then has
        # that map's channels and lies one factor of 2 above it.
        for start in range(len(channels) - 2, -1, -1):
            factors = [1] + [2] * (len(channels) - 1 - start)
            idas.append(IDAUp(channels[start], current[start:], factors, deformable))
            current[start + 1 :] = [channels[start]] * (len(channels) - 1 - start)
        self.dla_up = nn.ModuleList(idas)
        self.ida_up = IDAUp(channels[0], channels[:3], [1, 2, 4], deformable)
        self.out_channels = channels[0]

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        """Aggregate the pyramid.

        Args:
            features: backbone maps (N, in_channels[i], H / s, W / s) for s = 4, 8, 16, 32.

        Returns:
            (N, out_channels, H / 4, W / 4) features.
        """
        layers = list(features)
        pyramid = [layers[-1]]  # (N, C5, H/32, W/32)
        for step, ida in enumerate(self.dla_up):
            start = len(layers) - 2 - step
            layers[start:] = ida(layers[start:])
            pyramid.insert(0, layers[-1])  # aggregates at strides 16, 8, 4 (channels of map `start`)
        return self.ida_up(pyramid[:3])[-1]  # (N, C2, H/4, W/4)
