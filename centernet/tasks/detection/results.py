"""The result of detection on one image: boxes in its original pixels, scores, labels, names and dataset ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from centernet.boxes import absolute_to_relative, xyxy_to_cxcywh
from centernet.evaluation import coco_results
from centernet.viz import draw_detections

__all__ = ["Prediction"]


@dataclass
class Prediction:
    """Detections of one image, in that image's original pixels (torchvision's contract plus names and ids).

    Attributes:
        boxes: (K, 4) float32 xyxy.
        scores: (K,) float32 confidences, descending.
        labels: (K,) int64 contiguous class indices.
        names: K class names.
        category_ids: K dataset category ids (the ids of the training annotations).
        image_size: (H, W) of the original image.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: list[str]
    category_ids: list[int]
    image_size: tuple[int, int] | None = None

    def to_coco(self, image_id: int, extra: dict[str, object] | None = None) -> list[dict[str, object]]:
        """COCO results entries (``bbox`` x, y, w, h in original pixels, the dataset's ``category_id``)."""
        return coco_results(image_id, self.boxes, self.scores, self.category_ids, extra)

    def to_yolo(self, with_scores: bool = False) -> list[str]:
        """YOLO txt lines ``label cx cy w h [score]``, coordinates relative to the image, contiguous labels."""
        if self.image_size is None:
            raise ValueError("to_yolo needs the prediction's image_size (H, W)")
        relative = absolute_to_relative(xyxy_to_cxcywh(self.boxes.astype(np.float64)), self.image_size)  # (K, 4)
        lines = []
        for values, label, score in zip(relative, self.labels, self.scores, strict=True):
            line = f"{int(label)} " + " ".join(f"{float(v):.6f}" for v in values)
            lines.append(f"{line} {float(score):.5f}" if with_scores else line)
        return lines

    def draw(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` ((H, W, 3) RGB uint8, the original image) with the detections drawn."""
        names = {int(label): name for label, name in zip(self.labels, self.names, strict=True)}
        return draw_detections(image, self.boxes, self.labels, self.scores, names)
