"""The result of pose estimation on one image: people (boxes, scores) with their joints, in original pixels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from centernet.boxes import absolute_to_relative, xyxy_to_cxcywh
from centernet.tasks.detection.results import Prediction
from centernet.viz import draw_skeletons

__all__ = ["PosePrediction"]


@dataclass
class PosePrediction(Prediction):
    """People of one image (:class:`~centernet.tasks.detection.results.Prediction`'s fields) and their joints.

    Attributes:
        keypoints: (P, K, 3) float32 x, y in original pixels and the joint's score in [0, 1].
        edges: The skeleton's edges (0-based joint pairs), for drawing.
    """

    keypoints: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))
    edges: tuple[tuple[int, int], ...] = ()

    def to_coco(self, image_id: int, extra: dict[str, object] | None = None) -> list[dict[str, object]]:
        """COCO keypoint results entries: ``bbox``, ``score``, ``category_id`` and ``keypoints``
        ``[x1, y1, s1, ..., xK, yK, sK]`` (original pixels; s is the joint's score, which COCO's evaluation
        ignores)."""
        entries = super().to_coco(image_id, extra)
        for entry, joints in zip(entries, self.keypoints, strict=True):
            entry["keypoints"] = [round(float(v), 3) for v in joints.reshape(-1)]
        return entries

    def to_yolo(self, with_scores: bool = False) -> list[str]:
        """YOLO pose lines ``label cx cy w h x1 y1 s1 ... xK yK sK [score]``, coordinates relative to the image,
        s the joint's score (Ultralytics writes predicted joints the same way)."""
        if self.image_size is None:
            raise ValueError("to_yolo needs the prediction's image_size (H, W)")
        height, width = self.image_size
        relative = absolute_to_relative(xyxy_to_cxcywh(self.boxes.astype(np.float64)), self.image_size)  # (P, 4)
        lines = []
        for values, joints, label, score in zip(relative, self.keypoints, self.labels, self.scores, strict=True):
            joints = joints.astype(np.float64) / np.array([width, height, 1.0])  # (K, 3)
            numbers = [*values, *joints.reshape(-1)]
            line = f"{int(label)} " + " ".join(f"{float(v):.6f}" for v in numbers)
            lines.append(f"{line} {float(score):.5f}" if with_scores else line)
        return lines

    def draw(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` ((H, W, 3) RGB uint8, the original image) with boxes and skeletons drawn."""
        return draw_skeletons(super().draw(image), self.keypoints, self.edges)
