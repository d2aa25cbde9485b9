"""DLA-34, the Deep Layer Aggregation backbone of CenterNet's best speed/accuracy model (Yu et al. 2018).

DLA builds each stage as a binary tree of residual blocks whose outputs are merged by "root" nodes (1x1 conv
+ BN + ReLU over the concatenated children): hierarchical deep aggregation. The layer names follow the
original DLA code (``base_layer``, ``level0`` ... ``level5``, ``tree1`` / ``tree2`` / ``root`` / ``project``),
so the ImageNet weights that timm publishes for ``dla34`` load directly (:meth:`DLABackbone.load_timm_weights`).

One deliberate difference from the original code: its stages with two tree levels own a 1x1 ``project``
convolution that their forward pass never uses (41,728 parameters in DLA-34, stages 3 and 4); like timm, we
do not create it, so distributed training needs no ``find_unused_parameters``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["DLA34_CHANNELS", "DLABackbone"]

# Channels of levels 0-5 (strides 1, 2, 4, 8, 16, 32) and tree depth of levels 0-5 of DLA-34.
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)
_DLA34_LEVELS = (1, 1, 1, 2, 2, 1)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 conv + BN) whose shortcut can be supplied by the caller (the tree)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor, shortcut: Tensor | None = None) -> Tensor:
        shortcut = x if shortcut is None else shortcut
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class _Root(nn.Module):
    """Aggregation node: 1x1 conv + BN + ReLU over the channel concatenation of its children."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, children: Sequence[Tensor]) -> Tensor:
        return self.relu(self.bn(self.conv(torch.cat(list(children), dim=1))))


class _Tree(nn.Module):
    """A DLA stage: a tree of ``levels`` levels of basic blocks aggregated by root nodes.

    With ``level_root`` the stage's (downsampled) input is also fed to the final root, which is how DLA
    aggregates across stages. ``root_channels`` counts the channels concatenated at the root.
    """

    def __init__(
        self,
        levels: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        level_root: bool = False,
        root_channels: int = 0,
    ) -> None:
        super().__init__()
        root_channels = root_channels or 2 * out_channels
        if level_root:
            root_channels += in_channels
        self.levels, self.level_root = levels, level_root
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else nn.Identity()
        self.project: nn.Module = nn.Identity()
        if levels == 1:
            self.tree1: nn.Module = _BasicBlock(in_channels, out_channels, stride)
            self.tree2: nn.Module = _BasicBlock(out_channels, out_channels)
            self.root = _Root(root_channels, out_channels)
            if in_channels != out_channels:
                self.project = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
                )
        else:
            self.tree1 = _Tree(levels - 1, in_channels, out_channels, stride)
            self.tree2 = _Tree(levels - 1, out_channels, out_channels, root_channels=root_channels + out_channels)

    def forward(self, x: Tensor, children: list[Tensor] | None = None) -> Tensor:
        children = [] if children is None else children
        bottom = self.downsample(x)  # (N, C_in, H/s, W/s)
        if self.level_root:
            children.append(bottom)
        if self.levels == 1:
            x1 = self.tree1(x, self.project(bottom))
            x2 = self.tree2(x1)
            return self.root([x2, x1, *children])
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


class DLABackbone(nn.Module):
    """DLA-34 returning its features at strides 4, 8, 16 and 32 (levels 2-5).

    Args:
        channels: channels of levels 0-5; DLA-34's are (16, 32, 64, 128, 256, 512). Smaller values give a
            narrow model of the same topology (tests use one).
        pretrained: initialise from timm's ImageNet ``dla34`` weights (only with the default channels).

    Attributes:
        channels: channels of each returned map, (64, 128, 256, 512) for DLA-34.
        strides: (4, 8, 16, 32).
        out_channels: channels of the last map.
        stride: 32.
    """

    stride: int = 32
    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, channels: Sequence[int] = DLA34_CHANNELS, pretrained: bool = False) -> None:
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"DLA needs 6 level channels (strides 1 to 32), got {list(channels)}")
        c = list(channels)
        self.base_layer = _conv_bn_relu(3, c[0], 7)
        self.level0 = _conv_bn_relu(c[0], c[0], 3)
        self.level1 = _conv_bn_relu(c[0], c[1], 3, stride=2)
        levels = _DLA34_LEVELS
        self.level2 = _Tree(levels[2], c[1], c[2], stride=2, level_root=False)
        self.level3 = _Tree(levels[3], c[2], c[3], stride=2, level_root=True)
        self.level4 = _Tree(levels[4], c[3], c[4], stride=2, level_root=True)
        self.level5 = _Tree(levels[5], c[4], c[5], stride=2, level_root=True)
        self.channels = tuple(c[2:])
        self.out_channels = c[5]
        if pretrained:
            if tuple(channels) != DLA34_CHANNELS:
                raise ValueError(f"pretrained DLA-34 weights need channels {DLA34_CHANNELS}, got {tuple(channels)}")
            self.load_timm_weights()

    def load_timm_weights(self) -> None:
        """Load timm's ImageNet ``dla34`` weights (downloaded, or from the Hugging Face cache when offline).

        Raises:
            PretrainedWeightsError: when the weights can be neither downloaded nor found in the cache; the
                message says how to get them.
        """
        from centernet.model.timm_backbone import create_timm_model

        state_dict = create_timm_model("dla34", pretrained=True).state_dict()
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}  # the ImageNet classifier
        self.load_state_dict(state_dict)

    def stages(self) -> list[nn.Module]:
        """The backbone's stages from the input on: stem (base layer and levels 0-1), then levels 2-5."""
        return [nn.ModuleList([self.base_layer, self.level0, self.level1]), *self._levels()]

    def _levels(self) -> list[nn.Module]:
        return [self.level2, self.level3, self.level4, self.level5]

    def forward(self, image: Tensor) -> list[Tensor]:
        """Compute the feature pyramid.

        Args:
            image: (N, 3, H, W) normalised image, H and W multiples of 32.

        Returns:
            Four maps (N, channels[i], H / s, W / s) for s = 4, 8, 16, 32.
        """
        x = self.level1(self.level0(self.base_layer(image)))  # (N, c1, H/2, W/2)
        features = []
        for level in self._levels():
            x = level(x)  # (N, c, H/s, W/s), s = 4, 8, 16, 32
            features.append(x)
        return features
