"""Box-regression targets of the ltrb head (TTFNet, Liu et al. 2019): which cells regress which box, and how much.

Every cell in an object's centre region is a regression sample for that object's box. The region and the
per-cell weights follow TTFNet: the region is the object's elliptical Gaussian (radius ``gaussian_extent`` times
half the box size along each axis, as :func:`~centernet.tasks.detection.targets.render_targets` draws the heatmap)
and the weights are the Gaussian values normalised so that each object's weights sum to ``log(area)`` (area in
input pixels): large objects carry more weight, but only logarithmically. With ``sampling="center3x3"`` the
region is instead the 3x3 cells around the centre cell, uniformly weighted (the same total ``log(area)``). A cell
inside several regions regresses the smallest of those boxes (TTFNet's order), with that box's weight.

Convention: the point of cell (x, y) is (x, y) in output cells (its top-left corner; the same point that
:mod:`centernet.tasks.detection.decode` adds offsets to), and boxes are x1, y1, x2, y2 in output cells.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from centernet.boxes import cxcywh_to_xyxy, relative_to_absolute
from centernet.tasks.detection.targets import _gaussian_profile, ttfnet_radii

__all__ = ["BoxTargets", "render_box_targets"]

# The log-area weight of a box below 2 square input pixels is that of 2 square pixels, so it stays positive.
_MIN_AREA = 2.0


class BoxTargets(NamedTuple):
    """Dense box-regression targets at the output resolution (Ho, Wo).

    Attributes:
        boxes: (N, 4, Ho, Wo) float32 x1, y1, x2, y2 of the box each cell regresses, in output cells; 0 where
            ``weight`` is 0.
        weight: (N, Ho, Wo) float32 >= 0, the cell's weight in the box loss; 0 outside every object's region.
    """

    boxes: Tensor
    weight: Tensor


def render_box_targets(
    bboxes: Tensor,
    mask: Tensor,
    output_size: tuple[int, int],
    stride: int = 4,
    gaussian_extent: float = 0.54,
    sampling: str = "gaussian",
) -> BoxTargets:
    """Render the ltrb head's box targets for a padded batch (vectorised over images and objects).

    Args:
        bboxes: (N, D, 4) cx, cy, w, h relative to the input image (H, W) = (Ho * stride, Wo * stride).
        mask: (N, D) 1 for a real box, 0 for a padding row.
        output_size: (Ho, Wo).
        stride: output stride R.
        gaussian_extent: Gaussian region size as a fraction of half the box side (``"gaussian"`` sampling): radii
            ``floor(gaussian_extent * w / 2)`` and ``floor(gaussian_extent * h / 2)`` cells.
        sampling: ``"gaussian"`` (TTFNet) or ``"center3x3"``.

    Returns:
        :class:`BoxTargets` with boxes (N, 4, Ho, Wo) and weight (N, Ho, Wo).

    Raises:
        ValueError: for an unknown ``sampling``.
    """
    if sampling not in ("gaussian", "center3x3"):
        raise ValueError(f"box sampling must be 'gaussian' or 'center3x3', got {sampling!r}")
    num_images, num_rows, _ = bboxes.shape
    out_h, out_w = output_size
    valid = mask > 0  # (N, D)
    relative = torch.where(valid.unsqueeze(-1), bboxes.float(), 0.0)
    boxes = relative_to_absolute(relative, (out_h, out_w))  # (N, D, 4) cx, cy, w, h in output cells
    centre_x, centre_y, width, height = boxes.unbind(-1)  # (N, D) each
    cell_x = centre_x.floor().clamp(0, out_w - 1)
    cell_y = centre_y.floor().clamp(0, out_h - 1)
    corners = cxcywh_to_xyxy(boxes)  # (N, D, 4) xyxy in output cells

    if sampling == "gaussian":
        radius_x, radius_y = ttfnet_radii(width, height, gaussian_extent)
        profile_y = _gaussian_profile(cell_y, radius_y, out_h)  # (N, D, Ho)
        profile_x = _gaussian_profile(cell_x, radius_x, out_w)  # (N, D, Wo)
    else:
        rows = torch.arange(out_h, device=bboxes.device, dtype=torch.float32)
        cols = torch.arange(out_w, device=bboxes.device, dtype=torch.float32)
        profile_y = ((rows - cell_y.unsqueeze(-1)).abs() <= 1).float()  # (N, D, Ho)
        profile_x = ((cols - cell_x.unsqueeze(-1)).abs() <= 1).float()  # (N, D, Wo)
    profile_y = torch.where(valid.unsqueeze(-1), profile_y, 0.0)  # padding rows cover nothing
    region = (profile_y[..., :, None] * profile_x[..., None, :]).flatten(2)  # (N, D, Ho * Wo)

    area = (width * height * stride * stride).clamp(min=_MIN_AREA)  # (N, D) input pixels^2
    total = region.sum(-1).clamp(min=1e-12)  # (N, D)
    weights = region * (area.log() / total).unsqueeze(-1)  # (N, D, Ho * Wo): each object sums to log(area)

    # Each cell regresses the smallest box whose region covers it.
    covering_area = torch.where(region > 0, area.unsqueeze(-1), float("inf"))  # (N, D, Ho * Wo)
    smallest, owner = covering_area.min(dim=1)  # (N, Ho * Wo)
    positive = torch.isfinite(smallest)
    weight = torch.where(positive, weights.gather(1, owner.unsqueeze(1)).squeeze(1), 0.0)  # (N, Ho * Wo)
    target = corners.gather(1, owner.unsqueeze(-1).expand(-1, -1, 4))  # (N, Ho * Wo, 4)
    target = torch.where(positive.unsqueeze(-1), target, 0.0)
    return BoxTargets(
        boxes=target.transpose(1, 2).reshape(num_images, 4, out_h, out_w),  # (N, 4, Ho, Wo)
        weight=weight.view(num_images, out_h, out_w),
    )
