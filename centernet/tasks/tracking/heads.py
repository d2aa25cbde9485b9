"""The tracking head: a detection head plus a 2-channel branch for the displacement to the previous centre."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from centernet.tasks.detection.heads import CenterNetHead

__all__ = ["TrackingHead"]


class TrackingHead(CenterNetHead):
    """:class:`CenterNetHead`'s heatmap, size and offset branches plus ``tracking`` (CenterTrack's extra head).

    The detection branches keep their names, so a detection checkpoint's head loads into a tracker unchanged; the
    tracking branch ends in weights ~ N(0, 0.001^2) and zero bias like the other regressions (it starts by
    predicting "no motion").

    Args:
        in_channels: channels of the input features.
        num_classes: number of heatmap channels C.
        head_channels: hidden channels of each branch.
        prior: initial foreground probability of the heatmap.
    """

    def __init__(self, in_channels: int, num_classes: int, head_channels: int = 64, prior: float = 0.1) -> None:
        super().__init__(in_channels, num_classes, head_channels, prior)
        self.tracking = nn.Sequential(
            nn.Conv2d(in_channels, head_channels, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_channels, 2, kernel_size=1),
        )
        with torch.no_grad():
            nn.init.normal_(self.tracking[-1].weight, std=0.001)
            nn.init.zeros_(self.tracking[-1].bias)

    def forward(self, features: Tensor) -> dict[str, Tensor]:
        """Predict the raw maps.

        Args:
            features: (N, in_channels, Ho, Wo) stride-4 features.

        Returns:
            :class:`CenterNetHead`'s ``heatmap``, ``size`` and ``offset`` and ``tracking`` (N, 2, Ho, Wo): (dx, dy)
            from an object's centre in this frame to its centre in the previous frame, in output cells.
        """
        maps = super().forward(features)
        maps["tracking"] = self.tracking(features)
        return maps
