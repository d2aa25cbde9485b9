"""Test-time augmentation and duplicate suppression: horizontal flip, multi-scale merging, class-aware NMS.

- Flip (as in CenterNet's ``--flip_test``): the network sees each image and its mirror; the mirrored heatmap
  and size maps are flipped back and averaged with the originals, the offset is the original's (a mirrored
  offset points the other way inside its cell). A stride-4 output cell ``j`` covers input pixels
  ``4j .. 4j+3``, which mirror onto cell ``Wo - 1 - j``, so flipping the maps aligns them exactly.
- Multi-scale: detections of every scale, in original pixels, are merged with class-aware NMS
  (``torchvision.ops.batched_nms``) and the best ``max_detections`` kept.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import batched_nms

__all__ = ["class_aware_nms", "merge_flipped_maps"]

_FLIP_MERGE = {"heatmap": "mean", "size": "mean", "offset": "original"}


def merge_flipped_maps(maps: dict[str, Tensor], num_images: int) -> dict[str, Tensor]:
    """Merge the maps of a batch ``[images, flipped images]`` into maps of ``images``.

    Args:
        maps: Output maps of a (2N, 3, H, W) batch whose second half is the first half mirrored horizontally:
            ``heatmap`` (2N, C, Ho, Wo) logits, ``size`` (2N, 2, Ho, Wo) and ``offset`` (2N, 2, Ho, Wo) in cells.
        num_images: N.

    Returns:
        Maps of the N images: heatmap logits and sizes averaged with their flipped-back mirrors, the offset of
        the original images.

    Raises:
        ValueError: for a head whose outputs are not heatmap / size / offset (their mirror is not defined here).
    """
    unknown = sorted(set(maps) - set(_FLIP_MERGE))
    if unknown:
        raise ValueError(
            f"flip test-time augmentation supports heads with heatmap/size/offset outputs; this model also "
            f"outputs {unknown}"
        )
    merged = {}
    for key, value in maps.items():
        original, mirrored = value[:num_images], value[num_images:]
        # Heatmaps are averaged as logits: the mean of two logits ranks peaks like the mean of probabilities
        # for all practical purposes and does not saturate at 1.0 in float32.
        merged[key] = (original + mirrored.flip(-1)) / 2 if _FLIP_MERGE[key] == "mean" else original
    return merged


def class_aware_nms(
    boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float, max_detections: int | None = None
) -> Tensor:
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
