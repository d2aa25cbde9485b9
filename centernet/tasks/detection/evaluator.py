"""COCO box evaluation of detections, one image at a time: the evaluator of validation during ``fit`` and of
``centernet validate``, so that a checkpoint scores the same 12 numbers in both.

The ground truth is the data as the validation policy left it (:mod:`centernet.data.validation`): boxes clipped
to their image, boxes without area dropped (they are not scored, as the warning that dropped them says), crowd
regions as ignore regions and the annotation's own ``area`` for COCO's small / medium / large split. Detections
are in original pixels and carry contiguous labels, mapped to the dataset's category ids here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from centernet.boxes import xyxy_to_xywh
from centernet.evaluation import CocoEvaluation, coco_results, evaluate_coco

__all__ = ["DetectionEvaluator"]


class DetectionEvaluator:
    """Accumulates images, then computes COCO's box metrics (pycocotools' definitions, faster-coco-eval's speed).

    Args:
        class_names: Names indexed by contiguous label.
        category_ids: The dataset's category id of each contiguous label.
        max_detections: Detections per image the model returns. COCO's 12 numbers use the best 100 of each image;
            above 100, AP, AP50 and AR over all of them are computed too (dense scenes).
    """

    def __init__(self, class_names: Sequence[str], category_ids: Sequence[int], max_detections: int = 100) -> None:
        if len(class_names) != len(category_ids):
            raise ValueError(f"{len(class_names)} class names but {len(category_ids)} category ids")
        self.class_names = list(class_names)
        self.category_ids = [int(i) for i in category_ids]
        self.max_detections = int(max_detections)
        self._images: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._images)

    def reset(self) -> None:
        self._images = {}

    def update(self, image_id: int, image_size: tuple[int, int], ground_truth: Mapping[str, Any], result: Any) -> None:
        """Add one image.

        Args:
            image_id: The dataset's image id (each image once; a repeat replaces the earlier entry).
            image_size: (H, W) of the original image.
            ground_truth: ``boxes`` (m, 4) xyxy original pixels, ``labels`` (m,) contiguous, ``iscrowd`` (m,) and
                ``area`` (m,) (arrays or tensors).
            result: The detections in original pixels: a :class:`~centernet.tasks.detection.results.Prediction`
                or a mapping with ``boxes`` (k, 4) xyxy, ``scores`` (k,) and ``labels`` (k,).
        """
        get = result.get if isinstance(result, Mapping) else lambda key: getattr(result, key)
        self._images[int(image_id)] = {
            "size": (int(image_size[0]), int(image_size[1])),
            "gt": {key: _numpy(ground_truth[key]) for key in ("boxes", "labels", "iscrowd", "area")},
            "det": {key: _numpy(get(key)) for key in ("boxes", "scores", "labels")},
        }

    def state(self) -> list[tuple[int, dict[str, Any]]]:
        """``(image_id, payload)`` per image (NumPy arrays: picklable, to gather them across ranks)."""
        return list(self._images.items())

    def load_state(self, items: Sequence[tuple[int, dict[str, Any]]]) -> None:
        self._images = {int(image_id): payload for image_id, payload in items}

    def ground_truth(self) -> dict[str, Any]:
        """The accumulated ground truth as a COCO json dict (images in id order)."""
        images, annotations = [], []
        for image_id in sorted(self._images):
            entry = self._images[image_id]
            height, width = entry["size"]
            images.append({"id": image_id, "width": width, "height": height})
            gt = entry["gt"]
            for box, label, crowd, area in zip(
                xyxy_to_xywh(gt["boxes"].astype(np.float64).reshape(-1, 4)),
                gt["labels"],
                gt["iscrowd"],
                gt["area"],
                strict=True,
            ):
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": self.category_ids[int(label)],
                        "bbox": [float(v) for v in box],
                        "area": float(area),
                        "iscrowd": int(crowd),
                    }
                )
        categories = [{"id": i, "name": n} for i, n in zip(self.category_ids, self.class_names, strict=True)]
        return {"images": images, "annotations": annotations, "categories": categories}

    def results(self) -> list[dict[str, object]]:
        """The accumulated detections as COCO results entries (the dataset's category ids, original pixels)."""
        entries: list[dict[str, object]] = []
        for image_id in sorted(self._images):
            det = self._images[image_id]["det"]
            ids = [self.category_ids[int(label)] for label in det["labels"]]
            entries += coco_results(image_id, det["boxes"].reshape(-1, 4), det["scores"], ids)
        return entries

    def compute(self) -> CocoEvaluation:
        """COCO's 12 box numbers, AP per class and the precision-recall arrays of the accumulated images."""
        return evaluate_coco(self.ground_truth(), self.results(), self.max_detections)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
