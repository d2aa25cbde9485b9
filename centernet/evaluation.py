"""COCO box metrics: the 12 standard numbers, computed in original-image pixels.

:func:`evaluate_coco` runs pycocotools' evaluation through faster-coco-eval, which reproduces pycocotools'
numbers several times faster (pycocotools is the fallback when faster-coco-eval is not installed). Tasks wrap it
in their evaluator objects (e.g. :class:`~centernet.tasks.detection.evaluator.DetectionEvaluator`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from centernet.boxes import xyxy_to_xywh

__all__ = [
    "COCO_METRIC_NAMES",
    "DENSE_METRIC_NAMES",
    "KEYPOINT_METRIC_NAMES",
    "CocoEvaluation",
    "coco_results",
    "evaluate_coco",
    "evaluate_coco_keypoints",
    "format_coco_table",
    "write_metrics_json",
]

# The 12 numbers of COCO's box evaluation (torchmetrics' names), in pycocotools' print order.
COCO_METRIC_NAMES: tuple[str, ...] = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)

# The 10 numbers of COCO's keypoint evaluation (OKS instead of IoU, 20 people per image), pycocotools' order.
KEYPOINT_METRIC_NAMES: tuple[str, ...] = (
    "kp_map",
    "kp_map_50",
    "kp_map_75",
    "kp_map_medium",
    "kp_map_large",
    "kp_mar",
    "kp_mar_50",
    "kp_mar_75",
    "kp_mar_medium",
    "kp_mar_large",
)

_DESCRIPTIONS: dict[str, str] = {
    "kp_map": "AP @[OKS=0.50:0.95 | area=all | maxDets=20]",
    "kp_map_50": "AP @[OKS=0.50 | area=all | maxDets=20]",
    "kp_map_75": "AP @[OKS=0.75 | area=all | maxDets=20]",
    "kp_map_medium": "AP @[OKS=0.50:0.95 | area=medium | maxDets=20]",
    "kp_map_large": "AP @[OKS=0.50:0.95 | area=large | maxDets=20]",
    "kp_mar": "AR @[OKS=0.50:0.95 | area=all | maxDets=20]",
    "kp_mar_50": "AR @[OKS=0.50 | area=all | maxDets=20]",
    "kp_mar_75": "AR @[OKS=0.75 | area=all | maxDets=20]",
    "kp_mar_medium": "AR @[OKS=0.50:0.95 | area=medium | maxDets=20]",
    "kp_mar_large": "AR @[OKS=0.50:0.95 | area=large | maxDets=20]",
    "map": "AP @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "map_50": "AP @[IoU=0.50 | area=all | maxDets=100]",
    "map_75": "AP @[IoU=0.75 | area=all | maxDets=100]",
    "map_small": "AP @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "map_medium": "AP @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "map_large": "AP @[IoU=0.50:0.95 | area=large | maxDets=100]",
    "mar_1": "AR @[IoU=0.50:0.95 | area=all | maxDets=1]",
    "mar_10": "AR @[IoU=0.50:0.95 | area=all | maxDets=10]",
    "mar_100": "AR @[IoU=0.50:0.95 | area=all | maxDets=100]",
    "mar_small": "AR @[IoU=0.50:0.95 | area=small | maxDets=100]",
    "mar_medium": "AR @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "mar_large": "AR @[IoU=0.50:0.95 | area=large | maxDets=100]",
}


def format_coco_table(metrics: Mapping[str, float], title: str = "COCO box metrics", max_detections: int = 100):
    """A rich ``Table`` of the 12 COCO numbers, in pycocotools' order and wording, and of the numbers over all
    ``max_detections`` detections per image when the metrics have them (more than 100)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("definition")
    table.add_column("value", justify="right")
    for name in COCO_METRIC_NAMES:
        value = metrics.get(name, float("nan"))
        table.add_row(name, _DESCRIPTIONS[name], f"{value:.4f}")
    if all(name in metrics for name in DENSE_METRIC_NAMES):
        for name, (kind, iou) in zip(
            DENSE_METRIC_NAMES, (("AP", "0.50:0.95"), ("AP", "0.50"), ("AR", "0.50:0.95")), strict=True
        ):
            definition = f"{kind} @[IoU={iou} | area=all | maxDets={max_detections}]"
            table.add_row(name, definition, f"{metrics[name]:.4f}")
    if all(name in metrics for name in KEYPOINT_METRIC_NAMES):
        for name in KEYPOINT_METRIC_NAMES:
            table.add_row(name, _DESCRIPTIONS[name], f"{metrics[name]:.4f}")
    return table


def write_metrics_json(
    path: str | Path, metrics: Mapping[str, float], extra: Mapping[str, object] | None = None
) -> Path:
    """Write the 12 COCO numbers (and the dense-scene and the 10 keypoint ones when present, plus optional context
    such as the checkpoint) to ``path`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, object] = {name: float(metrics[name]) for name in COCO_METRIC_NAMES}
    payload.update({name: float(metrics[name]) for name in DENSE_METRIC_NAMES if name in metrics})
    payload.update({name: float(metrics[name]) for name in KEYPOINT_METRIC_NAMES if name in metrics})
    if extra:
        payload.update(extra)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def coco_results(
    image_id: int, boxes, scores, category_ids, extra: Mapping[str, object] | None = None
) -> list[dict[str, object]]:
    """COCO results entries (``bbox`` as x, y, w, h in original pixels) for one image's detections.

    Args:
        image_id: The image's id (the dataset's own, or an index for loose image files).
        boxes: (K, 4) xyxy in original pixels (array-like).
        scores: (K,) confidences.
        category_ids: K dataset category ids.
        extra: Fields copied into every entry (e.g. ``file_name``).
    """
    entries = []
    xywh = xyxy_to_xywh(np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    for box, score, category_id in zip(xywh, scores, category_ids, strict=True):
        entry: dict[str, object] = {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "bbox": [round(float(v), 3) for v in box],
            "score": round(float(score), 5),
        }
        if extra:
            entry.update(extra)
        entries.append(entry)
    return entries


# COCO's 12 numbers as (AP or AR, IoU threshold or None for 0.50:0.95, area range, maxDets), pycocotools' order.
_SUMMARY = (
    (True, None, "all", 100),
    (True, 0.5, "all", 100),
    (True, 0.75, "all", 100),
    (True, None, "small", 100),
    (True, None, "medium", 100),
    (True, None, "large", 100),
    (False, None, "all", 1),
    (False, None, "all", 10),
    (False, None, "all", 100),
    (False, None, "small", 100),
    (False, None, "medium", 100),
    (False, None, "large", 100),
)
_AREAS = ("all", "small", "medium", "large")

# With more than 100 detections per image (dense scenes), the same AP, AP50 and AR over all of them (maxDets = K).
DENSE_METRIC_NAMES: tuple[str, ...] = ("map_all_dets", "map_50_all_dets", "mar_all_dets")


@dataclass
class CocoEvaluation:
    """COCO box evaluation of a results list against ground truth, as pycocotools computes it.

    Attributes:
        metrics: The 12 numbers under :data:`COCO_METRIC_NAMES` (-1 where undefined, as pycocotools reports),
            with COCO's 100 detections per image so that they compare with published numbers; when more detections
            per image are evaluated (``max_detections`` > 100), also :data:`DENSE_METRIC_NAMES`: AP, AP50 and AR
            over all of them.
        per_class: One dict per category, in category-id order: ``category_id``, ``name``, ``ap``
            (IoU 0.50:0.95), ``ap50``, ``num_ground_truth``; ``ap`` is -1 for a category without ground truth.
        precision: (T, R, K) precision at T IoU thresholds, R recall thresholds and K categories (area all,
            100 detections), -1 where undefined; pycocotools' ``eval["precision"][..., 0, -1]``.
        recall_thresholds: (R,) the recall levels of ``precision`` (0, 0.01, ..., 1).
        iou_thresholds: (T,) 0.5, 0.55, ..., 0.95.
    """

    metrics: dict[str, float]
    per_class: list[dict[str, object]]
    precision: np.ndarray
    recall_thresholds: np.ndarray
    iou_thresholds: np.ndarray


def evaluate_coco(
    ground_truth: Mapping[str, Any] | str | Path, results: list[dict[str, Any]], max_detections: int = 100
) -> CocoEvaluation:
    """Evaluate COCO results (``image_id``, ``category_id``, ``bbox`` x, y, w, h, ``score``) against a COCO json.

    Uses faster-coco-eval's pycocotools-compatible evaluator when installed (same numbers, several times faster),
    pycocotools otherwise. The 12 numbers are read from the evaluator's precision and recall arrays exactly as
    pycocotools' ``summarize`` defines them (so they stay COCO's numbers with an extra maxDets entry).

    Args:
        ground_truth: The annotation json (path or loaded dict).
        results: Detections in the dataset's own image and category ids, original pixels.
        max_detections: Detections per image the model returns; above 100 they are all evaluated as well
            (:data:`DENSE_METRIC_NAMES`), beside COCO's 12 numbers at 100.
    """
    dataset = ground_truth if isinstance(ground_truth, Mapping) else json.loads(Path(ground_truth).read_text())
    dataset = dict(dataset)
    for annotation in dataset.get("annotations", []):  # pycocotools needs them; COCO exports carry them
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", float(annotation["bbox"][2]) * float(annotation["bbox"][3]))
    category_ids = sorted(int(c["id"]) for c in dataset["categories"])
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in dataset["categories"]}
    max_dets = [1, 10, 100] + ([int(max_detections)] if max_detections > 100 else [])
    with contextlib.redirect_stdout(io.StringIO()):  # both evaluators print progress
        evaluator = _run_cocoeval(dataset, results, max_dets)
    if evaluator is None:  # no detections at all: precision and recall are 0 wherever ground truth exists
        num_t, num_r = 10, 101
        precision = np.zeros((num_t, num_r, len(category_ids)))
        metrics = dict.fromkeys(COCO_METRIC_NAMES, 0.0)
        if max_detections > 100:
            metrics.update(dict.fromkeys(DENSE_METRIC_NAMES, 0.0))
    else:
        all_precision = np.asarray(evaluator.eval["precision"])  # (T, R, K, areas, maxDets)
        all_recall = np.asarray(evaluator.eval["recall"])  # (T, K, areas, maxDets)
        precision = all_precision[:, :, :, 0, max_dets.index(100)]  # (T, R, K) area all, maxDets 100
        metrics = {
            name: _summary(all_precision, all_recall, max_dets, *spec)
            for name, spec in zip(COCO_METRIC_NAMES, _SUMMARY, strict=True)
        }
        if max_detections > 100:
            dense = (
                (True, None, "all", max_dets[-1]),
                (True, 0.5, "all", max_dets[-1]),
                (False, None, "all", max_dets[-1]),
            )
            metrics.update(
                {
                    name: _summary(all_precision, all_recall, max_dets, *spec)
                    for name, spec in zip(DENSE_METRIC_NAMES, dense, strict=True)
                }
            )
    gt_count = {cid: 0 for cid in category_ids}
    for annotation in dataset.get("annotations", []):
        if not annotation.get("iscrowd", 0) and int(annotation["category_id"]) in gt_count:
            gt_count[int(annotation["category_id"])] += 1
    per_class = []
    for k, cid in enumerate(category_ids):
        values = precision[:, :, k]
        valid = values > -1
        ap = float(values[valid].mean()) if valid.any() else -1.0
        ap50 = float(values[0][valid[0]].mean()) if valid[0].any() else -1.0
        if evaluator is None and gt_count[cid] == 0:
            ap = ap50 = -1.0
        per_class.append(
            {"category_id": cid, "name": names[cid], "ap": ap, "ap50": ap50, "num_ground_truth": gt_count[cid]}
        )
    return CocoEvaluation(
        metrics=metrics,
        per_class=per_class,
        precision=precision,
        recall_thresholds=np.linspace(0.0, 1.0, 101),
        iou_thresholds=np.linspace(0.5, 0.95, 10),
    )


def evaluate_coco_keypoints(
    ground_truth: Mapping[str, Any], results: list[dict[str, Any]], sigmas: Sequence[float]
) -> dict[str, float]:
    """COCO's 10 keypoint numbers (:data:`KEYPOINT_METRIC_NAMES`) of results against a COCO keypoints json.

    The similarity is the object keypoint similarity, ``OKS = mean over labelled joints of exp(-d^2 / (2 s^2
    (2 sigma)^2))`` with ``s^2`` the annotation's ``area``; ground truth without labelled joints
    (``num_keypoints`` 0) is ignored, as in pycocotools. Computed by faster-coco-eval (pycocotools as fallback)
    with the dataset's ``sigmas``, one per joint.

    Args:
        ground_truth: COCO dict whose annotations have ``keypoints`` [x, y, v] * K, ``num_keypoints``, ``area``.
        results: Entries with ``image_id``, ``category_id``, ``keypoints`` [x, y, score] * K and ``score``.
        sigmas: K OKS sigmas.

    Returns:
        The 10 numbers; 0 for each when there is no result, -1 where undefined (pycocotools' convention).
    """
    if not results:
        return dict.fromkeys(KEYPOINT_METRIC_NAMES, 0.0)
    dataset = _copy_dataset(dict(ground_truth))
    entries = _copy_entries(results)
    with contextlib.redirect_stdout(io.StringIO()):
        if importlib.util.find_spec("faster_coco_eval"):
            import faster_coco_eval

            gt = faster_coco_eval.COCO(dataset)
            evaluator = faster_coco_eval.COCOeval_faster(
                gt, gt.loadRes(entries), iouType="keypoints", kpt_oks_sigmas=[float(s) for s in sigmas]
            )
        else:
            from pycocotools.coco import COCO
            from pycocotools.cocoeval import COCOeval

            gt = COCO()
            gt.dataset = dataset
            gt.createIndex()
            evaluator = COCOeval(gt, gt.loadRes(entries), iouType="keypoints")
            evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
    precision = np.asarray(evaluator.eval["precision"])  # (T, R, K, areas, maxDets): areas all, medium, large
    recall = np.asarray(evaluator.eval["recall"])  # (T, K, areas, maxDets)
    thresholds_and_areas = ((None, 0), (0.5, 0), (0.75, 0), (None, 1), (None, 2))  # OKS (None: 0.50:0.95), area
    specs = [(ap, iou, area) for ap in (True, False) for iou, area in thresholds_and_areas]
    metrics = {}
    for name, (ap, iou, area) in zip(KEYPOINT_METRIC_NAMES, specs, strict=True):
        iou_index = slice(None) if iou is None else int(round((iou - 0.5) / 0.05))
        values = precision[iou_index, :, :, area, -1] if ap else recall[iou_index, :, area, -1]
        defined = values[values > -1]
        metrics[name] = float(defined.mean()) if defined.size else -1.0
    return metrics


def _summary(
    precision: np.ndarray, recall: np.ndarray, max_dets: list[int], ap: bool, iou: float | None, area: str, dets: int
) -> float:
    """One number of pycocotools' ``summarize``: the mean of the defined (> -1) entries, -1 if none is defined."""
    area_index, dets_index = _AREAS.index(area), max_dets.index(dets)
    iou_index = slice(None) if iou is None else int(round((iou - 0.5) / 0.05))
    if ap:
        values = precision[iou_index, :, :, area_index, dets_index]
    else:
        values = recall[iou_index, :, area_index, dets_index]
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else -1.0


def _run_cocoeval(dataset: dict[str, Any], results: list[dict[str, Any]], max_dets: list[int]):
    """A COCOeval after evaluate/accumulate, or ``None`` when there is no detection to evaluate."""
    if not results:
        return None
    if importlib.util.find_spec("faster_coco_eval"):
        import faster_coco_eval

        gt = faster_coco_eval.COCO(_copy_dataset(dataset))
        evaluator = faster_coco_eval.COCOeval_faster(gt, gt.loadRes(_copy_entries(results)), iouType="bbox")
    else:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        gt = COCO()
        gt.dataset = _copy_dataset(dataset)
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(_copy_entries(results)), iouType="bbox")
    evaluator.params.maxDets = list(max_dets)
    evaluator.evaluate()
    evaluator.accumulate()
    return evaluator


def _copy_entries(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of COCO entries (images, annotations, results) for the evaluators, which add keys to them and must
    not change the caller's. Values that are lists (``bbox``, ``segmentation``) are copied one level deep:
    2.5x faster than ``copy.deepcopy`` on 500,000 results."""
    return [{key: list(value) if isinstance(value, list) else value for key, value in e.items()} for e in entries]


def _copy_dataset(dataset: dict[str, Any]) -> dict[str, Any]:
    copied = dict(dataset)
    for key in ("images", "annotations", "categories"):
        if key in copied:
            copied[key] = _copy_entries(copied[key])
    return copied
