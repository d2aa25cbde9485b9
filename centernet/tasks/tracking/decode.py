"""Decoding of tracking outputs: detection's peaks and boxes, plus each detection's displacement to its previous
centre, in input pixels (conventions of :mod:`centernet.tasks.tracking.targets`)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert

from centernet.tasks.detection.decode import top_peaks

__all__ = ["decode_tracking"]


def decode_tracking(
    heatmap_logits: Tensor, size: Tensor, offset: Tensor, tracking: Tensor, stride: int = 4, max_detections: int = 100
) -> dict[str, Tensor]:
    """The top-K detections of every image with their displacements, batched.

    A peak at cell (x, y) with offset (ox, oy), size (w, h) and tracking (tx, ty), all in output cells, decodes to
    the centre ``c = ((x + ox) R, (y + oy) R)``, the size ``(w R, h R)`` and the displacement ``(tx R, ty R)``: the
    object was at ``c + displacement`` in the previous frame (input pixels, R the stride).

    Args:
        heatmap_logits: (N, C, Ho, Wo) logits.
        size: (N, 2, Ho, Wo) box (w, h) in output cells.
        offset: (N, 2, Ho, Wo) sub-cell centre offset in output cells.
        tracking: (N, 2, Ho, Wo) displacement to the previous centre in output cells.
        stride: output stride R.
        max_detections: K upper bound.

    Returns:
        ``boxes`` (N, K, 4) xyxy input pixels, ``scores`` (N, K) descending (0 = padding), ``labels`` (N, K) int64
        and ``tracking`` (N, K, 2) (dx, dy) input pixels.
    """
    num_images, _, out_h, out_w = heatmap_logits.shape
    scores, labels, cells = top_peaks(heatmap_logits, max_detections)  # (N, K) each
    index = cells.unsqueeze(1).expand(-1, 2, -1)  # (N, 2, K)

    def read(maps: Tensor) -> Tensor:  # (N, 2, Ho, Wo) -> (N, K, 2)
        return maps.float().reshape(num_images, 2, out_h * out_w).gather(2, index).transpose(1, 2)

    size_k, offset_k, tracking_k = read(size), read(offset), read(tracking)
    cell = torch.stack([cells % out_w, cells // out_w], dim=-1).float()  # (N, K, 2) x, y
    centre = (cell + offset_k) * stride
    extent = size_k.clamp(min=0) * stride
    boxes = box_convert(torch.cat([centre, extent], dim=-1), "cxcywh", "xyxy")  # (N, K, 4)
    return {"boxes": boxes, "scores": scores, "labels": labels, "tracking": tracking_k * stride}
