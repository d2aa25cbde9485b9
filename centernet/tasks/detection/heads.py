"""CenterNet heads: per-pixel class heatmap with box size and centre offset, or with box side distances."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["CenterNetHead", "LTRBHead"]


def _branch(in_channels: int, head_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (bias) + ReLU + 1x1 conv."""
    return nn.Sequential(
        nn.Conv2d(in_channels, head_channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(head_channels, out_channels, kernel_size=1),
    )


class CenterNetHead(nn.Module):
    """Three parallel branches on the stride-4 features: heatmap (C), size (2) and offset (2).

    Initialisation: the heatmap's last bias is ``-log((1 - prior) / prior)`` (-2.19 for prior 0.1), so every
    cell starts at probability ``prior`` and the focal loss of the many easy negatives does not swamp the
    first steps (Lin et al. 2017, RetinaNet, section 4.1; CenterNet uses the same). The regression branches
    end in weights ~ N(0, 0.001^2) and zero bias, so sizes and offsets start near 0.

    Args:
        in_channels: channels of the input features.
        num_classes: number of heatmap channels C.
        head_channels: hidden channels of each branch.
        prior: initial foreground probability of the heatmap.
    """

    def __init__(self, in_channels: int, num_classes: int, head_channels: int = 64, prior: float = 0.1) -> None:
        super().__init__()
        self.heatmap = _branch(in_channels, head_channels, num_classes)
        self.size = _branch(in_channels, head_channels, 2)
        self.offset = _branch(in_channels, head_channels, 2)
        with torch.no_grad():
            self.heatmap[-1].bias.fill_(-math.log((1 - prior) / prior))
            for branch in (self.size, self.offset):
                nn.init.normal_(branch[-1].weight, std=0.001)
                nn.init.zeros_(branch[-1].bias)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Predict the raw maps.

        Args:
            features: (N, in_channels, Ho, Wo) stride-4 features.

        Returns:
            Dict with ``heatmap`` (N, C, Ho, Wo) logits, ``size`` (N, 2, Ho, Wo) (w, h) in output cells and
            ``offset`` (N, 2, Ho, Wo) (dx, dy) in output cells.
        """
        return {"heatmap": self.heatmap(features), "size": self.size(features), "offset": self.offset(features)}


class LTRBHead(nn.Module):
    """Heatmap and box-distance branches (TTFNet, Liu et al. 2019): each cell predicts the box around it.

    The box branch predicts, at every cell (x, y) of the stride-4 map, the distances (left, top, right, bottom)
    from the point (x, y) (the cell's top-left corner, in output cells) to the four sides of the box whose
    centre region the cell lies in. A ReLU keeps them non-negative and ``box_scale`` sets their unit, like
    TTFNet's ``wh_offset_base`` (16 input pixels = 4 cells at stride 4). The heatmap branch is initialised
    as in :class:`CenterNetHead`; the box branch ends in weights ~ N(0, 0.001^2) and a bias that makes every
    distance start at 1 cell.

    Args:
        in_channels: channels of the input features.
        num_classes: number of heatmap channels C.
        head_channels: hidden channels of each branch.
        prior: initial foreground probability of the heatmap.
        box_scale: multiplier of the ReLU output, in output cells.
    """

    def __init__(
        self, in_channels: int, num_classes: int, head_channels: int = 64, prior: float = 0.1, box_scale: float = 4.0
    ) -> None:
        super().__init__()
        self.heatmap = _branch(in_channels, head_channels, num_classes)
        self.ltrb = _branch(in_channels, head_channels, 4)
        self.box_scale = box_scale
        with torch.no_grad():
            self.heatmap[-1].bias.fill_(-math.log((1 - prior) / prior))
            nn.init.normal_(self.ltrb[-1].weight, std=0.001)
            # Every distance starts at 1 cell (a 2 x 2-cell box around each point): with a zero bias half the
            # ReLUs would start dead, and a zero-size box gives GIoU no overlap to grow from.
            nn.init.constant_(self.ltrb[-1].bias, 1.0 / box_scale)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Predict the raw maps.

        Args:
            features: (N, in_channels, Ho, Wo) stride-4 features.

        Returns:
            Dict with ``heatmap`` (N, C, Ho, Wo) logits and ``ltrb`` (N, 4, Ho, Wo) non-negative distances
            (left, top, right, bottom) from each cell's point (x, y) to the box sides, in output cells.
        """
        return {"heatmap": self.heatmap(features), "ltrb": torch.relu(self.ltrb(features)) * self.box_scale}
