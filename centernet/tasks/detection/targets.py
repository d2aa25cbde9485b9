"""Ground-truth rendering for CenterNet: class heatmaps with Gaussian peaks, centre indices, sizes and offsets.

Conventions (shared with :mod:`centernet.tasks.detection.decode`): the input image is (H, W) = (Ho * R, Wo * R)
with output stride R. A box with relative centre (cx, cy) has its centre at ``c = (cx * W / R, cy * H / R)`` in output
cells; its centre cell is ``floor(c)`` clamped to the map, its offset target is ``c - cell`` (in [0, 1) for
interior boxes) and its size target is ``(w * W / R, h * H / R)``, the box size in output cells.

Everything is vectorised over images and objects: each object's Gaussian is a separable product of two 1-D
profiles over a window around its centre, and objects are merged into their class channel with an element-wise
max (``scatter_reduce``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from centernet.boxes import relative_to_absolute

__all__ = ["CenterNetTargets", "cornernet_radius", "render_targets"]


class CenterNetTargets(NamedTuple):
    """Training targets at the output resolution (Ho, Wo) = (H / R, W / R).

    Attributes:
        heatmap: (N, C, Ho, Wo) float32 in [0, 1]; exactly 1.0 at each object's centre cell in its class channel.
        indices: (N, D) int64 flattened centre cell ``y * Wo + x``; 0 for padding rows.
        size: (N, D, 2) float32 box (w, h) in output cells; 0 for padding rows.
        offset: (N, D, 2) float32 (dx, dy) from the centre cell to the exact centre, in output cells; 0 for padding.
        mask: (N, D) float32, 1 for a real object, 0 for a padding row.
    """

    heatmap: Tensor
    indices: Tensor
    size: Tensor
    offset: Tensor
    mask: Tensor


def cornernet_radius(height: Tensor, width: Tensor, min_overlap: float = 0.7) -> Tensor:
    """Gaussian radius of CornerNet (Law & Deng 2018), as used by the original CenterNet.

    The radius is meant to be the largest r such that a box whose corners are moved by up to r still has
    IoU >= ``min_overlap`` with the ground truth. Three displacements are considered, each giving a
    quadratic ``a r^2 + b r + c = 0`` in r (h, w = box height and width):

    1. both corners shifted the same way:  a = 1,      b = -(h + w),      c = w h (1 - m) / (1 + m)
    2. both corners moved inwards:         a = 4,      b = -2 (h + w),    c = (1 - m) w h
    3. both corners moved outwards:        a = 4 m,    b = 2 m (h + w),   c = (m - 1) w h

    and the radius is the minimum over the cases. We reproduce the roots exactly as the original CornerNet /
    CenterNet code computes them, ``r1 = (-b1 + sqrt(b1^2 - 4 a1 c1)) / 2``, ``r2 = (-b2 + sqrt(b2^2 - 4 a2 c2)) / 2``,
    ``r3 = (-b3 + sqrt(b3^2 - 4 a3 c3)) / 2``, i.e. the larger root for cases 1 and 2 and a division by 2
    instead of 2a. This is not the exact geometric solution (case 3, the minimum in practice, comes out
    4m times too large), but it is the radius the published CenterNet results were trained with, so we keep
    it for parity. Example: a 10 x 10 box with m = 0.7 gives r3 = 2.733 (the exact case-3 root is 0.976).

    ``min_overlap`` defaults to 0.7: a peak predicted a few cells away from the true centre still decodes to
    a box with IoU >= 0.7, so negatives within that radius are penalised less (their focal-loss weight is
    ``(1 - y)^beta`` with y the Gaussian value).

    Args:
        height: (...) box heights in output cells.
        width: (...) box widths in output cells, same shape.
        min_overlap: IoU the shifted box must keep, m above.

    Returns:
        (...) real-valued radius (not yet floored), same shape and dtype as ``height``.
    """
    m = min_overlap
    b1 = height + width
    c1 = width * height * (1 - m) / (1 + m)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - m) * width * height
    r2 = (b2 + torch.sqrt(b2**2 - 4 * 4 * c2)) / 2
    a3 = 4 * m
    b3 = -2 * m * (height + width)
    c3 = (m - 1) * width * height
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def ttfnet_radii(width: Tensor, height: Tensor, gaussian_extent: float) -> tuple[Tensor, Tensor]:
    """TTFNet's elliptical radii in cells, ``floor(gaussian_extent * side / 2)`` per axis, for sizes in cells."""
    radius_x = (gaussian_extent * width / 2).floor().clamp(min=0)
    radius_y = (gaussian_extent * height / 2).floor().clamp(min=0)
    return radius_x, radius_y


def _gaussian_profile(centre: Tensor, radius: Tensor, length: int) -> Tensor:
    """Truncated 1-D Gaussian ``exp(-d^2 / (2 sigma^2))`` for ``|d| <= radius``, 0 elsewhere.

    Args:
        centre: (N, D) integer-valued centre cells (float).
        radius: (N, D) integer-valued radii >= 0 (float); ``sigma = (2 radius + 1) / 6``.
        length: number of cells along this axis.

    Returns:
        (N, D, length) profile, exactly 1 at the centre cell.
    """
    positions = torch.arange(length, dtype=centre.dtype, device=centre.device)
    distance = positions - centre.unsqueeze(-1)  # (N, D, length)
    sigma = (2 * radius + 1).unsqueeze(-1) / 6  # (N, D, 1)
    profile = torch.exp(-(distance**2) / (2 * sigma**2))
    return torch.where(distance.abs() <= radius.unsqueeze(-1), profile, 0.0)


def _window_profile(centre: Tensor, radius: Tensor, reach: int, length: int) -> tuple[Tensor, Tensor]:
    """The 1-D Gaussian of :func:`_gaussian_profile` on the cells ``centre - reach .. centre + reach`` only.

    Args:
        centre: (N, D) integer-valued centre cells (float).
        radius: (N, D) integer-valued radii in [0, reach] (float).
        reach: Half-width of the window, the largest radius.
        length: Number of cells along this axis; window cells beyond the map get the value 0.

    Returns:
        ``cells`` (N, D, 2 reach + 1) int64 clamped to [0, length) and ``profile`` (N, D, 2 reach + 1), equal to
        ``_gaussian_profile(...)[..., cells]`` inside the map.
    """
    distance = torch.arange(-reach, reach + 1, dtype=centre.dtype, device=centre.device)  # (Wd,)
    positions = centre.unsqueeze(-1) + distance  # (N, D, Wd)
    sigma = (2 * radius + 1).unsqueeze(-1) / 6  # (N, D, 1)
    profile = torch.exp(-(distance**2) / (2 * sigma**2))  # the expression of _gaussian_profile: identical values
    inside = (distance.abs() <= radius.unsqueeze(-1)) & (positions >= 0) & (positions < length)
    return positions.clamp(0, length - 1).long(), torch.where(inside, profile, 0.0)


def _check_labels(labels: Tensor, valid: Tensor, num_classes: int) -> None:
    """Raise ValueError naming the first real object whose label is outside [0, num_classes)."""
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        image, row = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"labels[{image}, {row}] = {int(labels[image, row])} is outside [0, {num_classes}) "
            f"(num_classes = {num_classes})"
        )


def render_targets(
    bboxes: Tensor,
    labels: Tensor,
    mask: Tensor,
    num_classes: int,
    output_size: tuple[int, int],
    gaussian: str = "ttfnet",
    gaussian_extent: float = 0.54,
    min_overlap: float = 0.7,
    channels_last: bool = False,
) -> CenterNetTargets:
    """Render CenterNet training targets for a padded batch of boxes.

    Heatmap kernels (``gaussian``):

    - ``"ttfnet"`` (default, Liu et al. 2019, TTFNet): an elliptical Gaussian that follows the box aspect
      ratio. With the box size (w, h) in output cells, ``r_x = floor(gaussian_extent * w / 2)``,
      ``r_y = floor(gaussian_extent * h / 2)``, ``sigma_x = (2 r_x + 1) / 6``, ``sigma_y = (2 r_y + 1) / 6`` and
      the value ``exp(-(dx^2 / (2 sigma_x^2) + dy^2 / (2 sigma_y^2)))`` for ``|dx| <= r_x`` and ``|dy| <= r_y``,
      0 outside.
    - ``"cornernet"`` (the original CenterNet): a circular Gaussian with ``r = max(0, floor(radius))`` from
      :func:`cornernet_radius` (IoU ``min_overlap``), ``sigma = (2 r + 1) / 6``, truncated to ``|dx|, |dy| <= r``.

    dx, dy are integer cell distances from the centre cell; the map border truncates the window too.
    Overlapping objects of one class merge by element-wise max, so every centre cell holds exactly 1.0.
    Padding rows (``mask == 0``) contribute nothing.

    Args:
        bboxes: (N, D, 4) cx, cy, w, h relative to the input image, which the output maps cover at stride R.
        labels: (N, D) int64 class indices in [0, num_classes); ignored for padding rows.
        mask: (N, D) 1 for a real box, 0 for a padding row.
        num_classes: number of heatmap channels C.
        output_size: (Ho, Wo) of the output maps.
        gaussian: ``"ttfnet"`` or ``"cornernet"``.
        gaussian_extent: TTFNet radius as a fraction of half the box side, TTFNet's alpha (only for ``"ttfnet"``).
        min_overlap: CornerNet IoU threshold (only for ``"cornernet"``).
        channels_last: Render the heatmap in channels-last memory (the same values): the layout of a heatmap
            predicted by a channels-last model, so that the loss reads both without converting either.

    Returns:
        :class:`CenterNetTargets` with heatmap (N, C, Ho, Wo), indices (N, D), size (N, D, 2),
        offset (N, D, 2) and mask (N, D).

    Raises:
        ValueError: for an unknown ``gaussian`` or a real box whose label is outside [0, num_classes).
    """
    if gaussian not in ("ttfnet", "cornernet"):
        raise ValueError(f"gaussian must be 'ttfnet' or 'cornernet', got {gaussian!r}")
    num_images, num_rows, _ = bboxes.shape
    out_h, out_w = output_size
    device = bboxes.device
    valid = mask > 0  # (N, D)
    _check_labels(labels, valid, num_classes)

    # Box geometry in output cells (N, D each); padding rows are zeroed so that NaNs cannot leak in.
    relative = torch.where(valid.unsqueeze(-1), bboxes.float(), 0.0)
    centre_x, centre_y, width, height = relative_to_absolute(relative, (out_h, out_w)).unbind(-1)
    cell_x = centre_x.floor().clamp(0, out_w - 1)
    cell_y = centre_y.floor().clamp(0, out_h - 1)

    indices = torch.where(valid, (cell_y * out_w + cell_x).long(), 0)
    size = torch.stack([width, height], dim=-1)  # (N, D, 2)
    offset = torch.where(valid.unsqueeze(-1), torch.stack([centre_x - cell_x, centre_y - cell_y], dim=-1), 0.0)

    if gaussian == "ttfnet":
        radius_x, radius_y = ttfnet_radii(width, height, gaussian_extent)
    else:
        radius_x = cornernet_radius(height, width, min_overlap).floor().clamp(min=0)
        radius_y = radius_x
    # Each object is rendered in its own window of (2 r_y + 1) x (2 r_x + 1) cells around its centre cell (padded
    # to the largest window of the batch) instead of over the whole map: 30x fewer values for COCO-like boxes.
    reach_y = int(radius_y.max()) if radius_y.numel() else 0
    reach_x = int(radius_x.max()) if radius_x.numel() else 0
    rows_y, profile_y = _window_profile(cell_y, radius_y, reach_y, out_h)  # (N, D, 2 reach_y + 1) each
    cols_x, profile_x = _window_profile(cell_x, radius_x, reach_x, out_w)  # (N, D, 2 reach_x + 1) each
    profile_y = torch.where(valid.unsqueeze(-1), profile_y, 0.0)  # padding rows render nothing
    peaks = profile_y.unsqueeze(-1) * profile_x.unsqueeze(-2)  # (N, D, Wy, Wx)
    class_index = torch.where(valid, labels, 0)  # (N, D)
    # Flat index into (C, Ho, Wo), or (Ho, Wo, C) for channels-last memory; cells beyond the map hold 0 and point
    # at a clamped cell, where max(v, 0) = v.
    cells = rows_y.unsqueeze(-1) * out_w + cols_x.unsqueeze(-2)  # (N, D, Wy, Wx)
    if channels_last:
        index = cells * num_classes + class_index[..., None, None]
    else:
        index = class_index[..., None, None] * (out_h * out_w) + cells
    heatmap = torch.zeros(num_images, num_classes * out_h * out_w, dtype=torch.float32, device=device)
    heatmap.scatter_reduce_(1, index.flatten(1), peaks.flatten(1), reduce="amax")
    if channels_last:
        heatmap = heatmap.view(num_images, out_h, out_w, num_classes).permute(0, 3, 1, 2)  # (N, C, Ho, Wo) NHWC
    else:
        heatmap = heatmap.view(num_images, num_classes, out_h, out_w)  # (N, C, Ho, Wo)
    return CenterNetTargets(heatmap=heatmap, indices=indices, size=size, offset=offset, mask=valid.float())
