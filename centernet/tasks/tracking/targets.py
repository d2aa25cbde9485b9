"""Targets of the tracking head: each object's displacement from its centre now to its centre in the previous frame.

Conventions are detection's (:mod:`centernet.tasks.detection.targets`): an object with relative centre (cx, cy) has
its centre at ``c = (cx * Wo, cy * Ho)`` in output cells and its centre cell ``floor(c)``; the tracking target,
read at that cell, is ``p - c`` with ``p`` the previous centre in output cells (both exact, so decoding
``(cell + offset + tracking) * R`` gives the previous centre in input pixels, R the stride).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["TrackingTargets", "render_tracking_targets"]


class TrackingTargets(NamedTuple):
    """Attributes:
    indices: (N, D) int64 flattened centre cell ``y * Wo + x`` (0 for rows without a target).
    tracking: (N, D, 2) float32 (dx, dy) from the centre to the previous centre, in output cells.
    mask: (N, D) float32, 1 for a real object seen in the previous frame, else 0.
    """

    indices: Tensor
    tracking: Tensor
    mask: Tensor


def render_tracking_targets(
    bboxes: Tensor, prev_centers: Tensor, mask: Tensor, track_mask: Tensor, output_size: tuple[int, int]
) -> TrackingTargets:
    """Tracking targets of a padded batch.

    Args:
        bboxes: (N, D, 4) cx, cy, w, h relative to the input image.
        prev_centers: (N, D, 2) each object's centre (cx, cy) in the previous frame, relative to the same input
            image (it may lie outside [0, 1] for an object that came in from beyond the border).
        mask: (N, D) 1 for a real object, 0 for a padding row.
        track_mask: (N, D) 1 where the object was also in the previous frame (a new object has no target).
        output_size: (Ho, Wo) of the output maps.

    Returns:
        :class:`TrackingTargets`.
    """
    out_h, out_w = output_size
    valid = (mask > 0) & (track_mask > 0)  # (N, D)
    scale = torch.tensor([out_w, out_h], dtype=torch.float32, device=bboxes.device)
    centre = torch.where(valid.unsqueeze(-1), bboxes[..., :2].float(), 0.0) * scale  # (N, D, 2) output cells
    previous = torch.where(valid.unsqueeze(-1), prev_centers.float(), 0.0) * scale  # (N, D, 2)
    cell_x = centre[..., 0].floor().clamp(0, out_w - 1)
    cell_y = centre[..., 1].floor().clamp(0, out_h - 1)
    indices = torch.where(valid, (cell_y * out_w + cell_x).long(), 0)
    return TrackingTargets(indices=indices, tracking=previous - centre, mask=valid.float())
