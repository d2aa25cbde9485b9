"""Tracking as a task: detection's size head plus the tracking offset, with the previous frame as extra inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from centernet.boxes import Letterbox, class_aware_nms
from centernet.tasks.detection.config import DetectionHeadConfig, DetectionLossConfig
from centernet.tasks.detection.task import DetectionTask
from centernet.tasks.tracking.criterion import TrackingCriterion
from centernet.tasks.tracking.decode import decode_tracking
from centernet.tasks.tracking.heads import TrackingHead

__all__ = ["TrackingTask"]

_KEYS = ("boxes", "scores", "labels", "tracking")


class TrackingTask(DetectionTask):
    """CenterTrack (Zhou, Koltun & Krähenbühl 2020) on any backbone and neck: detection's maps plus ``tracking``,
    each object's displacement to its centre in the previous frame; see :mod:`centernet.tasks.base`.

    Inputs: the image, ``prev_image`` (N, 3, H, W) in [0, 1] and ``prev_heatmap`` (N, 1, H, W), a class-agnostic
    heatmap of the previous frame's objects (ground truth in training, the tracker's own detections in inference).
    Results, evaluation and drawing are detection's per frame; ids come from the association
    (:class:`~centernet.tasks.tracking.association.GreedyAssociator`).

    Args:
        head: The head's width (the type must be ``"size"``: the tracking offset is read at the centre cells).
        loss: Heatmap kernel and detection loss weights; the tracking L1 has weight 1 (CenterTrack's).
    """

    name: ClassVar[str] = "tracking"
    output_names: ClassVar[tuple[str, ...]] = _KEYS
    extra_inputs: ClassVar[dict[str, int]] = {"prev_image": 3, "prev_heatmap": 1}
    fresh_layers: ClassVar[tuple[str, ...]] = ("head.tracking", "extra_inputs")

    def __init__(self, head: DetectionHeadConfig | str | None = None, loss: DetectionLossConfig | None = None) -> None:
        super().__init__(head, loss)
        if self.head.type != "size":
            raise ValueError(f"the tracking task needs the 'size' head, got head type {self.head.type!r}")

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        return TrackingHead(in_channels, num_classes, self.head.channels)

    def build_criterion(self, num_classes: int, stride: int) -> nn.Module:
        return TrackingCriterion(num_classes, stride, self.loss)

    def decode(self, maps: Mapping[str, Tensor], stride: int, max_detections: int) -> dict[str, Tensor]:
        """Detection's ``boxes``, ``scores``, ``labels`` and ``tracking`` (N, K, 2) displacements in input pixels."""
        return decode_tracking(maps["heatmap"], maps["size"], maps["offset"], maps["tracking"], stride, max_detections)

    def merge_flipped(self, maps: Mapping[str, Tensor], num_images: int) -> dict[str, Tensor]:
        raise ValueError("the tracking task has no flip test-time augmentation")

    def to_original(self, detections: Mapping[str, Tensor], letterbox: Letterbox) -> dict[str, Tensor]:
        """Detection's mapping, and the displacements divided by the letterbox's scale (no clipping: a vector)."""
        original = super().to_original(detections, letterbox)
        sx, sy = letterbox.scale
        scale = torch.tensor([sx, sy], dtype=torch.float64)
        original["tracking"] = (detections["tracking"].double() / scale).float()
        return original

    def select(
        self, detections: Mapping[str, Tensor], score_threshold: float, max_detections: int, nms_iou: float | None
    ) -> dict[str, Tensor]:
        keep = detections["scores"] > score_threshold
        kept = {key: detections[key][keep] for key in _KEYS}
        if nms_iou is not None:
            index = class_aware_nms(kept["boxes"], kept["scores"], kept["labels"], nms_iou, max_detections)
        else:
            index = torch.argsort(kept["scores"], descending=True, stable=True)[:max_detections]
        return {key: value[index] for key, value in kept.items()}
