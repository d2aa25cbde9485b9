"""Detection as a task: the class heatmap plus box size and offset (``size`` head) or box sides (``ltrb`` head)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from centernet.boxes import Letterbox, class_aware_nms
from centernet.configs import as_options
from centernet.tasks.base import Task
from centernet.tasks.detection.config import DetectionHeadConfig, DetectionLossConfig
from centernet.tasks.detection.criterion import CenterNetCriterion
from centernet.tasks.detection.decode import decode_detections, decode_ltrb_detections
from centernet.tasks.detection.evaluator import DetectionEvaluator
from centernet.tasks.detection.flip import merge_flipped_maps
from centernet.tasks.detection.giou_criterion import GIoUCriterion
from centernet.tasks.detection.heads import CenterNetHead, LTRBHead
from centernet.tasks.detection.results import Prediction

__all__ = ["DetectionTask"]

_KEYS = ("boxes", "scores", "labels")


class DetectionTask(Task):
    """Boxes, scores and labels; see :mod:`centernet.tasks.base` for the interface.

    Args:
        head: The head's type and width (or its type name for short, ``"size"`` / ``"ltrb"``).
        loss: Heatmap kernel and loss weights.
    """

    name: ClassVar[str] = "detection"
    output_names: ClassVar[tuple[str, ...]] = _KEYS

    def __init__(self, head: DetectionHeadConfig | str | None = None, loss: DetectionLossConfig | None = None) -> None:
        self.head = as_options(head, DetectionHeadConfig, shorthand="type")
        self.loss = as_options(loss, DetectionLossConfig)

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        if self.head.type == "ltrb":
            return LTRBHead(in_channels, num_classes, self.head.channels)
        return CenterNetHead(in_channels, num_classes, self.head.channels)

    def build_criterion(self, num_classes: int, stride: int) -> nn.Module:
        if self.head.type == "ltrb":
            return GIoUCriterion(num_classes, stride, self.loss)
        return CenterNetCriterion(num_classes, stride, self.loss)

    def decode(self, maps: Mapping[str, Tensor], stride: int, max_detections: int) -> dict[str, Tensor]:
        """``boxes`` (N, K, 4) xyxy input pixels, ``scores`` (N, K) descending, ``labels`` (N, K) int64."""
        if self.head.type == "ltrb":
            return decode_ltrb_detections(maps["heatmap"], maps["ltrb"], stride, max_detections)
        return decode_detections(maps["heatmap"], maps["size"], maps["offset"], stride, max_detections)

    def merge_flipped(self, maps: Mapping[str, Tensor], num_images: int) -> dict[str, Tensor]:
        return merge_flipped_maps(dict(maps), num_images)

    def to_original(self, detections: Mapping[str, Tensor], letterbox: Letterbox) -> dict[str, Tensor]:
        """(K, 4) boxes from input pixels to original pixels (clipped to the image); scores and labels as they are."""
        return {
            "boxes": letterbox.to_original(detections["boxes"].float()),
            "scores": detections["scores"].float(),
            "labels": detections["labels"].long(),
        }

    def centres(self, detections: Mapping[str, Tensor]) -> Tensor:
        """(K, 2) box centres: the point whose heatmap cell produced each box (sliced inference's owner)."""
        boxes = detections["boxes"]
        return torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=-1)

    def translate(self, detections: Mapping[str, Tensor], dx: float, dy: float) -> dict[str, Tensor]:
        shift = torch.tensor([dx, dy, dx, dy], dtype=detections["boxes"].dtype)
        return {**detections, "boxes": detections["boxes"] + shift}

    def select(
        self, detections: Mapping[str, Tensor], score_threshold: float, max_detections: int, nms_iou: float | None
    ) -> dict[str, Tensor]:
        # Every key is selected alike (a task extending detection adds per-detection keys, e.g. pose's keypoints).
        keep = detections["scores"] > score_threshold
        kept = {key: value[keep] for key, value in detections.items()}
        boxes, scores, labels = (kept[key] for key in _KEYS)
        if nms_iou is not None:
            index = class_aware_nms(boxes, scores, labels, nms_iou, max_detections)
        else:
            index = torch.argsort(scores, descending=True, stable=True)[:max_detections]
        return {key: value[index] for key, value in kept.items()}

    def result(
        self,
        detections: Mapping[str, Tensor],
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: tuple[int, int],
    ) -> Prediction:
        labels = [int(i) for i in detections["labels"]]
        return Prediction(
            boxes=detections["boxes"].cpu().numpy().astype(np.float32).reshape(-1, 4),
            scores=detections["scores"].cpu().numpy().astype(np.float32),
            labels=detections["labels"].cpu().numpy().astype(np.int64),
            names=[class_names[i] for i in labels],
            category_ids=[category_ids[i] for i in labels],
            image_size=(int(image_size[0]), int(image_size[1])),
        )

    def evaluator(
        self, class_names: Sequence[str], category_ids: Sequence[int], max_detections: int
    ) -> DetectionEvaluator:
        return DetectionEvaluator(class_names, category_ids, max_detections)

    @property
    def class_layer(self) -> str:
        return "heatmap.2"
