"""COCO keypoint evaluation of poses (OKS, the 10 keypoint numbers) beside COCO's box numbers of the people,
one image at a time: the evaluator of validation during ``fit`` and of ``centernet validate``.

The ground truth is the data as the validation policy left it: boxes clipped to their image, joints inside it
(or unlabelled, visibility 0), the annotation's ``area`` (COCO's scale ``s^2`` of OKS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from centernet.evaluation import CocoEvaluation, evaluate_coco, evaluate_coco_keypoints
from centernet.tasks.detection.evaluator import DetectionEvaluator

__all__ = ["PoseEvaluator"]


class PoseEvaluator(DetectionEvaluator):
    """Accumulates images, then computes the people's 12 box numbers and their 10 keypoint numbers.

    Args:
        class_names: Names indexed by contiguous label.
        category_ids: The dataset's category id of each contiguous label.
        sigmas: The K joints' OKS sigmas (:class:`~centernet.tasks.pose.skeleton.Skeleton`).
        max_detections: People per image the model returns (COCO's keypoint numbers use the best 20).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        sigmas: Sequence[float],
        max_detections: int = 100,
    ) -> None:
        super().__init__(class_names, category_ids, max_detections)
        self.sigmas = [float(s) for s in sigmas]

    def update(self, image_id: int, image_size: tuple[int, int], ground_truth: Mapping[str, Any], result: Any) -> None:
        """Add one image: ``ground_truth`` as detection's plus ``keypoints`` (m, K, 3) x, y original pixels and
        visibility; ``result`` with ``keypoints`` (k, K, 3) x, y original pixels and score."""
        super().update(image_id, image_size, ground_truth, result)
        get = result.get if isinstance(result, Mapping) else lambda key: getattr(result, key)
        entry = self._images[int(image_id)]
        k = len(self.sigmas)
        entry["gt"]["keypoints"] = _numpy(ground_truth["keypoints"]).astype(np.float64).reshape(-1, k, 3)
        entry["det"]["keypoints"] = _numpy(get("keypoints")).astype(np.float64).reshape(-1, k, 3)

    def ground_truth(self) -> dict[str, Any]:
        """The accumulated ground truth as a COCO keypoints json dict (``keypoints`` and ``num_keypoints``)."""
        dataset = super().ground_truth()
        joints = [joint for image_id in sorted(self._images) for joint in self._images[image_id]["gt"]["keypoints"]]
        for annotation, keypoints in zip(dataset["annotations"], joints, strict=True):
            labelled = keypoints[:, 2] > 0
            keypoints = np.where(labelled[:, None], keypoints, 0.0)
            annotation["keypoints"] = [float(v) for v in keypoints.reshape(-1)]
            annotation["num_keypoints"] = int(labelled.sum())
        return dataset

    def results(self) -> list[dict[str, object]]:
        """COCO keypoint results entries (``keypoints`` [x, y, score] * K) with the boxes."""
        entries = super().results()
        joints = [joint for image_id in sorted(self._images) for joint in self._images[image_id]["det"]["keypoints"]]
        for entry, keypoints in zip(entries, joints, strict=True):
            entry["keypoints"] = [float(v) for v in keypoints.reshape(-1)]
        return entries

    def compute(self) -> CocoEvaluation:
        """The box evaluation of the people, its metrics extended by the 10 keypoint numbers."""
        ground_truth, results = self.ground_truth(), self.results()
        evaluation = evaluate_coco(ground_truth, results, self.max_detections)
        evaluation.metrics.update(evaluate_coco_keypoints(ground_truth, results, self.sigmas))
        return evaluation


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
