"""Box-format conversions between the batch's relative cxcywh and absolute xyxy pixels (torch).

Formats used in centernet:

- ``cxcywh`` relative: centre x, centre y, width, height as fractions of the image size, in [0, 1]
  (the batch dict's ``bboxes``).
- ``xyxy`` absolute: x1, y1, x2, y2 in pixels (decoded detections, COCO evaluation after rescaling).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_convert

__all__ = ["relative_cxcywh_to_xyxy", "xyxy_to_relative_cxcywh"]


def _scale(image_size: tuple[int, int], like: Tensor) -> Tensor:
    """(W, H, W, H) as a tensor on ``like``'s device and dtype, from ``image_size`` = (H, W)."""
    height, width = image_size
    return torch.tensor([width, height, width, height], dtype=like.dtype, device=like.device)


def relative_cxcywh_to_xyxy(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Convert relative centre-size boxes to absolute corner boxes.

    Args:
        boxes: (..., 4) cx, cy, w, h relative to the image size.
        image_size: (H, W) of the image the boxes are relative to, in pixels.

    Returns:
        (..., 4) x1, y1, x2, y2 in pixels of that image, same dtype as ``boxes``.
    """
    return box_convert(boxes * _scale(image_size, boxes), in_fmt="cxcywh", out_fmt="xyxy")


def xyxy_to_relative_cxcywh(boxes: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Convert absolute corner boxes to relative centre-size boxes (inverse of :func:`relative_cxcywh_to_xyxy`).

    Args:
        boxes: (..., 4) x1, y1, x2, y2 in pixels.
        image_size: (H, W) of the image, in pixels.

    Returns:
        (..., 4) cx, cy, w, h relative to the image size, same dtype as ``boxes``.
    """
    return box_convert(boxes, in_fmt="xyxy", out_fmt="cxcywh") / _scale(image_size, boxes)
