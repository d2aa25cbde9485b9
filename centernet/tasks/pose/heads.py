"""The pose head: the person centre heatmap, box size and offset of detection, plus the joints."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["PoseHead"]


def _branch(in_channels: int, head_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (bias) + ReLU + 1x1 conv, the branch of every CenterNet head."""
    return nn.Sequential(
        nn.Conv2d(in_channels, head_channels, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(head_channels, out_channels, kernel_size=1),
    )


class PoseHead(nn.Module):
    """Six parallel branches on the stride-4 features (the ``multi_pose`` heads of Zhou et al. 2019, Sec. 4).

    ``heatmap`` (C), ``size`` (2) and ``offset`` (2) find people as detection finds objects; ``joints`` (2K)
    regresses every joint's offset from the person's centre cell; ``joint_heatmap`` (K) and ``joint_offset`` (2,
    shared by all joints) find the joints bottom-up, to refine the regressed ones. Heatmaps start at probability
    ``prior`` (RetinaNet's initialisation, as in detection); regressions start near 0.

    Args:
        in_channels: Channels of the input features.
        num_classes: Classes with keypoints C (1 for people).
        num_joints: Joints per person K.
        head_channels: Hidden channels of each branch.
        prior: Initial probability of both heatmaps.
    """

    def __init__(
        self, in_channels: int, num_classes: int, num_joints: int, head_channels: int = 64, prior: float = 0.1
    ) -> None:
        super().__init__()
        self.heatmap = _branch(in_channels, head_channels, num_classes)
        self.size = _branch(in_channels, head_channels, 2)
        self.offset = _branch(in_channels, head_channels, 2)
        self.joints = _branch(in_channels, head_channels, 2 * num_joints)
        self.joint_heatmap = _branch(in_channels, head_channels, num_joints)
        self.joint_offset = _branch(in_channels, head_channels, 2)
        with torch.no_grad():
            for branch in (self.heatmap, self.joint_heatmap):
                branch[-1].bias.fill_(-math.log((1 - prior) / prior))
            for branch in (self.size, self.offset, self.joints, self.joint_offset):
                nn.init.normal_(branch[-1].weight, std=0.001)
                nn.init.zeros_(branch[-1].bias)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Predict the raw maps of (N, in_channels, Ho, Wo) features.

        Returns:
            Dict with ``heatmap`` (N, C, Ho, Wo) logits; ``size`` (N, 2, Ho, Wo) person (w, h) and ``offset``
            (N, 2, Ho, Wo) (dx, dy) in output cells, as detection; ``joints`` (N, 2K, Ho, Wo) the offsets
            (dx_1, dy_1, ..., dx_K, dy_K) from the cell's point (x, y) to each joint, in output cells;
            ``joint_heatmap`` (N, K, Ho, Wo) logits; ``joint_offset`` (N, 2, Ho, Wo) (dx, dy) from a joint's cell
            to the joint, in output cells.
        """
        return {name: getattr(self, name)(features) for name in _OUTPUTS}


_OUTPUTS = ("heatmap", "size", "offset", "joints", "joint_heatmap", "joint_offset")
