"""COCO box metrics: the 12 standard numbers, computed in original-image pixels.

We use torchmetrics' ``MeanAveragePrecision`` (so the metric is an object that Lightning can reset, move and,
under DDP, synchronise) with the faster-coco-eval backend, which reproduces pycocotools' numbers several times
faster; pycocotools is the fallback when faster-coco-eval is not installed.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torchmetrics.detection import MeanAveragePrecision

__all__ = [
    "COCO_METRIC_NAMES",
    "build_coco_metric",
    "coco_results",
    "coco_metrics_to_dict",
    "format_coco_table",
    "write_metrics_json",
]

# The 12 numbers of COCO's box evaluation, under torchmetrics' names, in pycocotools' print order.
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

_DESCRIPTIONS: dict[str, str] = {
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


def build_coco_metric(class_metrics: bool = False) -> MeanAveragePrecision:
    """A COCO box metric that expects xyxy boxes in original-image pixels.

    Args:
        class_metrics: Also compute per-class AP (slower).
    """
    backend = "faster_coco_eval" if importlib.util.find_spec("faster_coco_eval") else "pycocotools"
    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend=backend, class_metrics=class_metrics)


def coco_metrics_to_dict(computed: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """The 12 COCO numbers of a ``MeanAveragePrecision.compute()`` result as plain floats (-1 means undefined)."""
    return {name: float(computed[name]) for name in COCO_METRIC_NAMES}


def format_coco_table(metrics: Mapping[str, float], title: str = "COCO box metrics"):
    """A rich ``Table`` of the 12 COCO numbers, in pycocotools' order and wording."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("definition")
    table.add_column("value", justify="right")
    for name in COCO_METRIC_NAMES:
        value = metrics.get(name, float("nan"))
        table.add_row(name, _DESCRIPTIONS[name], f"{value:.4f}")
    return table


def write_metrics_json(
    path: str | Path, metrics: Mapping[str, float], extra: Mapping[str, object] | None = None
) -> Path:
    """Write the 12 COCO numbers (plus optional context such as the checkpoint) to ``path`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, object] = {name: float(metrics[name]) for name in COCO_METRIC_NAMES}
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
    for box, score, category_id in zip(boxes, scores, category_ids, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        entry: dict[str, object] = {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "score": round(float(score), 5),
        }
        if extra:
            entry.update(extra)
        entries.append(entry)
    return entries
