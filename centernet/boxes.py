"""Every box format of centernet and the letterbox, in one place (NumPy arrays and torch tensors alike).

Formats (the last axis holds the four numbers):

- ``xyxy``: x1, y1, x2, y2 (corners). Absolute pixels everywhere outside the network: records, decoded
  detections, evaluation.
- ``xywh``: x, y, w, h (top-left corner and size), COCO's json ``bbox``.
- ``cxcywh``: centre x, centre y, w, h. Relative to the image size, in [0, 1], in the batch dict's ``bboxes`` and
  in YOLO label files.

Pixel convention: continuous coordinates, so a box covering pixel columns 10..19 spans x = 10 to x = 20.

The :class:`Letterbox` maps an image of any size onto the network input and back: the image is resized (keeping
its aspect ratio) and padded with black at the bottom/right, so ``input = original * scale`` per axis and the
inverse is exact. Training's evaluation transform, validation during ``fit``, ``Detector`` and the mosaic all use
it, so the rounding of the resized size lives here only.

:func:`class_aware_nms` suppresses duplicates among xyxy boxes (multi-scale test-time augmentation merges its
scales with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import torch
from torchvision.ops import batched_nms

__all__ = [
    "STRIDE_MULTIPLE",
    "Letterbox",
    "absolute_to_relative",
    "class_aware_nms",
    "clip_xyxy",
    "cxcywh_to_xyxy",
    "relative_to_absolute",
    "xywh_to_xyxy",
    "xyxy_to_cxcywh",
    "xyxy_to_xywh",
]

Boxes = TypeVar("Boxes", np.ndarray, torch.Tensor)

# The network's input sides must be multiples of the backbone's total stride.
STRIDE_MULTIPLE = 32


def _stack(parts: list, like: Boxes) -> Boxes:
    if isinstance(like, torch.Tensor):
        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)


def xywh_to_xyxy(boxes: Boxes) -> Boxes:
    """(..., 4) x, y, w, h -> x1, y1, x2, y2 (same units)."""
    x, y, w, h = (boxes[..., i] for i in range(4))
    return _stack([x, y, x + w, y + h], boxes)


def xyxy_to_xywh(boxes: Boxes) -> Boxes:
    """(..., 4) x1, y1, x2, y2 -> x, y, w, h (same units)."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return _stack([x1, y1, x2 - x1, y2 - y1], boxes)


def cxcywh_to_xyxy(boxes: Boxes) -> Boxes:
    """(..., 4) cx, cy, w, h -> x1, y1, x2, y2 (same units)."""
    cx, cy, w, h = (boxes[..., i] for i in range(4))
    return _stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], boxes)


def xyxy_to_cxcywh(boxes: Boxes) -> Boxes:
    """(..., 4) x1, y1, x2, y2 -> cx, cy, w, h (same units)."""
    x1, y1, x2, y2 = (boxes[..., i] for i in range(4))
    return _stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], boxes)


def _size_vector(image_size: tuple[int, int], like: Boxes) -> Boxes:
    """(W, H, W, H) from ``image_size`` = (H, W), in ``like``'s type, dtype and device."""
    height, width = image_size
    if isinstance(like, torch.Tensor):
        return torch.tensor([width, height, width, height], dtype=like.dtype, device=like.device)
    return np.array([width, height, width, height], dtype=like.dtype)


def absolute_to_relative(boxes: Boxes, image_size: tuple[int, int]) -> Boxes:
    """(..., 4) pixels of an image of ``image_size`` = (H, W) -> fractions of it (any of the formats above)."""
    return boxes / _size_vector(image_size, boxes)


def relative_to_absolute(boxes: Boxes, image_size: tuple[int, int]) -> Boxes:
    """(..., 4) fractions of an image of ``image_size`` = (H, W) -> its pixels (any of the formats above)."""
    return boxes * _size_vector(image_size, boxes)


def clip_xyxy(boxes: Boxes, image_size: tuple[int, int]) -> Boxes:
    """(..., 4) xyxy clipped to an image of ``image_size`` = (H, W) (a copy)."""
    height, width = image_size
    clipped = boxes.clone() if isinstance(boxes, torch.Tensor) else boxes.copy()
    clipped[..., 0::2] = clipped[..., 0::2].clip(0, width)
    clipped[..., 1::2] = clipped[..., 1::2].clip(0, height)
    return clipped


@dataclass(frozen=True)
class Letterbox:
    """An image of ``source`` (H, W) resized to ``resized`` (H, W) and padded at the bottom/right to ``canvas``.

    ``scale`` = (sx, sy) = input pixels per original pixel along x and y, computed from the rounded resized size,
    so that mapping boxes back (:meth:`to_original`) undoes the resize exactly.
    """

    source: tuple[int, int]
    resized: tuple[int, int]
    canvas: tuple[int, int]

    @classmethod
    def fit(cls, image_size: tuple[int, int], side: int) -> Letterbox:
        """The longer side to ``side`` pixels, the shorter one rounded (``round(short * side / long)``, at least
        1); a ``side`` x ``side`` canvas. This is the evaluation transform of training and ``Detector``'s default.
        """
        height, width = image_size
        ratio = side / max(height, width)
        resized = (max(1, round(height * ratio)), max(1, round(width * ratio)))
        return cls((height, width), resized, (side, side))

    @classmethod
    def keep_resolution(cls, image_size: tuple[int, int], factor: float = 1.0) -> Letterbox:
        """The image at its own size times ``factor`` (rounded), padded to multiples of 32 (as the CenterNet paper
        evaluates)."""
        height, width = image_size
        resized = (max(1, round(height * factor)), max(1, round(width * factor)))
        canvas = tuple(-(-side // STRIDE_MULTIPLE) * STRIDE_MULTIPLE for side in resized)
        return cls((height, width), resized, canvas)  # type: ignore[arg-type]

    @classmethod
    def from_scale(cls, image_size: tuple[int, int], scale: tuple[float, float], canvas: tuple[int, int]) -> Letterbox:
        """The letterbox that resized an image of ``image_size`` (H, W) by ``scale`` (sx, sy) onto ``canvas``
        (what a dataset sample records as ``orig_size`` and ``scale``)."""
        height, width = image_size
        sx, sy = scale
        return cls((height, width), (round(height * sy), round(width * sx)), (int(canvas[0]), int(canvas[1])))

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): input pixels per original pixel."""
        return self.resized[1] / self.source[1], self.resized[0] / self.source[0]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) image (any dtype) -> (canvas H, canvas W, C) in the same dtype, bilinear, black padding."""
        if image.shape[:2] != self.source:
            raise ValueError(f"letterbox for a {self.source} image applied to one of {image.shape[:2]}")
        if self.resized != self.source:
            image = cv2.resize(image, (self.resized[1], self.resized[0]), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((*self.canvas, *image.shape[2:]), dtype=image.dtype)
        canvas[: self.resized[0], : self.resized[1]] = image
        return canvas

    def to_input(self, boxes: Boxes) -> Boxes:
        """(..., 4) xyxy original pixels -> input pixels."""
        sx, sy = self.scale
        return boxes * _scale_vector(sx, sy, boxes)

    def to_original(self, boxes: Boxes) -> Boxes:
        """(..., 4) xyxy input pixels -> original pixels, clipped to the original image.

        Tensors are divided in float64 and returned in their own dtype, so the inverse does not depend on the
        precision the network ran in.
        """
        sx, sy = self.scale
        if isinstance(boxes, torch.Tensor):
            original = boxes.double() / _scale_vector(sx, sy, boxes.double())
            return clip_xyxy(original, self.source).to(boxes.dtype)
        return clip_xyxy(boxes / _scale_vector(sx, sy, boxes), self.source)


def _scale_vector(sx: float, sy: float, like: Boxes) -> Boxes:
    if isinstance(like, torch.Tensor):
        return torch.tensor([sx, sy, sx, sy], dtype=like.dtype, device=like.device)
    return np.array([sx, sy, sx, sy], dtype=np.result_type(like.dtype, np.float64))


def class_aware_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    iou_threshold: float,
    max_detections: int | None = None,
) -> torch.Tensor:
    """Indices of the detections kept by per-class NMS, by decreasing score.

    Args:
        boxes: (K, 4) xyxy (any pixel frame, the same for all).
        scores: (K,) confidences.
        labels: (K,) class indices; boxes of different classes never suppress each other.
        iou_threshold: Suppress a box overlapping a higher-scoring box of its class by more than this IoU.
        max_detections: Keep at most this many.

    Returns:
        (k,) int64 indices into the inputs.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.int64)
    keep = batched_nms(boxes.float(), scores.float(), labels, iou_threshold)
    return keep[:max_detections] if max_detections is not None else keep
