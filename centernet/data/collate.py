"""Batch samples into the model's input dict, padding the variable number of boxes per image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["collate_detections"]


# Per-image ground truth in original pixels (for evaluation), kept as lists because their lengths differ.
_GROUND_TRUTH_KEYS = ("gt_boxes", "gt_labels", "gt_iscrowd", "gt_area", "gt_keypoints")


def collate_detections(samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """Stack samples of :class:`centernet.data.coco.CocoDetection` into one batch.

    Args:
        samples: N dicts with ``image`` (3, H, W) float32 (same size for all), ``bboxes`` (n_i, 4) float32
            relative ``cx, cy, w, h``, ``labels`` (n_i,) int64, ``image_id`` int, ``orig_size`` (h, w) and
            ``scale`` (sx, sy); optionally the ``gt_*`` keys of :class:`centernet.data.coco.CocoDetection`.

    Returns:
        dict with ``image`` (N, 3, H, W) float32; ``bboxes`` (N, D, 4) float32 and ``labels`` (N, D) int64, zero
        padded, with D = max(1, max n_i) so the tensors are never empty; ``mask`` (N, D) float32, 1 for real boxes
        and 0 for padding; ``image_id`` (N,) int64; ``orig_size`` (N, 2) int64 (height, width); ``scale`` (N, 2)
        float32 (sx, sy); if the samples have them, ``gt_boxes``, ``gt_labels``, ``gt_iscrowd``, ``gt_area`` and
        ``gt_keypoints`` as lists of N per-image tensors; for keypoint data ``keypoints`` (N, D, K, 3) float32
        (x, y relative, visibility), zero (unlabelled) in padding rows.
    """
    if len(samples) == 0:
        raise ValueError("collate_detections: got an empty list of samples")
    shape = samples[0]["image"].shape
    for i, sample in enumerate(samples):
        if sample["image"].shape != shape:
            raise ValueError(
                f"collate_detections: sample {i} has image shape {tuple(sample['image'].shape)} but sample 0 has "
                f"{tuple(shape)}; the transform must produce one fixed size"
            )
    counts = [len(sample["labels"]) for sample in samples]
    batch_size, max_boxes = len(samples), max(1, *counts)
    bboxes = torch.zeros(batch_size, max_boxes, 4, dtype=torch.float32)
    labels = torch.zeros(batch_size, max_boxes, dtype=torch.int64)
    mask = torch.zeros(batch_size, max_boxes, dtype=torch.float32)
    for i, (sample, count) in enumerate(zip(samples, counts, strict=True)):
        bboxes[i, :count] = torch.as_tensor(sample["bboxes"], dtype=torch.float32).reshape(count, 4)
        labels[i, :count] = torch.as_tensor(sample["labels"], dtype=torch.int64)
        mask[i, :count] = 1.0
    batch: dict[str, torch.Tensor | list[torch.Tensor]] = {
        "image": torch.stack([sample["image"] for sample in samples]),
        "bboxes": bboxes,
        "labels": labels,
        "mask": mask,
        "image_id": torch.tensor([int(sample["image_id"]) for sample in samples], dtype=torch.int64),
        "orig_size": torch.tensor([[int(v) for v in sample["orig_size"]] for sample in samples], dtype=torch.int64),
        "scale": torch.tensor([list(sample["scale"]) for sample in samples], dtype=torch.float32).reshape(-1, 2),
    }
    if "keypoints" in samples[0]:
        num_joints = samples[0]["keypoints"].shape[-2]
        keypoints = torch.zeros(batch_size, max_boxes, num_joints, 3, dtype=torch.float32)
        for i, (sample, count) in enumerate(zip(samples, counts, strict=True)):
            joints = torch.as_tensor(sample["keypoints"], dtype=torch.float32)
            keypoints[i, :count] = joints.reshape(count, num_joints, 3)
        batch["keypoints"] = keypoints
    for key in _GROUND_TRUTH_KEYS:
        if key in samples[0]:
            batch[key] = [torch.as_tensor(sample[key]) for sample in samples]
    return batch
