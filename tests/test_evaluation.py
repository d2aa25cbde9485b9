import contextlib
import io
import json

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from centernet.evaluation import COCO_METRIC_NAMES, coco_results, write_metrics_json
from centernet.tasks.detection.evaluator import DetectionEvaluator


def _random_set(seed: int = 0):
    """Ground truth and noisy detections for a few images, as COCO dicts and as per-image tensors."""
    rng = np.random.default_rng(seed)
    images, annotations, results, preds, targets = [], [], [], [], []
    ann_id = 1
    for image_id in range(1, 7):
        images.append({"id": image_id, "width": 320, "height": 240, "file_name": f"{image_id}.png"})
        n = int(rng.integers(0, 6))
        gt = []
        for _ in range(n):
            x, y = rng.uniform(0, 200), rng.uniform(0, 150)
            w, h = rng.uniform(4, 110), rng.uniform(4, 80)
            label = int(rng.integers(0, 3))
            gt.append((x, y, x + w, y + h, label))
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": [5, 9, 11][label],
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
        det = [
            (x1 + rng.normal(0, 3), y1 + rng.normal(0, 3), x2 + rng.normal(0, 3), y2 + rng.normal(0, 3), lab)
            for x1, y1, x2, y2, lab in gt
        ]
        det += [(10, 10, 60, 50, int(rng.integers(0, 3)))]  # one false positive per image
        scores = rng.uniform(0.1, 1.0, len(det))
        boxes = np.array([d[:4] for d in det], dtype=np.float32)
        labels = np.array([d[4] for d in det])
        results += coco_results(image_id, boxes, scores, [[5, 9, 11][i] for i in labels])
        preds.append(
            {
                "boxes": torch.tensor(boxes),
                "scores": torch.tensor(scores, dtype=torch.float32),
                "labels": torch.tensor(labels),
            }
        )
        gt_boxes = torch.tensor([g[:4] for g in gt], dtype=torch.float64).reshape(-1, 4)
        targets.append(
            {
                "boxes": gt_boxes,
                "labels": torch.tensor([g[4] for g in gt], dtype=torch.long),
                "iscrowd": torch.zeros(len(gt), dtype=torch.long),
                "area": (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1]),
            }
        )
    categories = [{"id": i, "name": n} for i, n in ((5, "a"), (9, "b"), (11, "c"))]
    return {"images": images, "annotations": annotations, "categories": categories}, results, preds, targets


def test_evaluator_reproduces_pycocotools():
    dataset, results, preds, targets = _random_set()
    expected_results = [dict(entry) for entry in results]  # pycocotools' loadRes adds keys to its input
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = dataset
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ours = DetectionEvaluator(["a", "b", "c"], [5, 9, 11])
    for image, pred, target in zip(dataset["images"], preds, targets, strict=True):
        ours.update(image["id"], (image["height"], image["width"]), target, pred)
    metrics = ours.compute().metrics
    assert list(metrics) == list(COCO_METRIC_NAMES)
    np.testing.assert_allclose([metrics[n] for n in COCO_METRIC_NAMES], evaluator.stats[:12], atol=1e-9)
    assert 0.2 < metrics["map_50"] < 1.0
    assert ours.results() == expected_results  # the same COCO results entries, in the dataset's ids

    # Gathered from several ranks (repeats included): each image once, same numbers.
    state = ours.state()
    merged = DetectionEvaluator(["a", "b", "c"], [5, 9, 11])
    merged.load_state(state[3:] + state[:4])
    assert merged.compute().metrics == metrics


def test_metrics_json_holds_the_numbers_and_context(tmp_path):
    metrics = {name: i / 100 for i, name in enumerate(COCO_METRIC_NAMES)}
    written = json.loads(write_metrics_json(tmp_path / "metrics.json", metrics, {"epoch": 3}).read_text())
    assert written == {**metrics, "epoch": 3}


def test_coco_results_use_xywh_and_category_ids():
    entries = coco_results(7, [[10.0, 20.0, 40.0, 80.0]], [0.5], [42], {"file_name": "x.png"})
    assert entries == [
        {"image_id": 7, "category_id": 42, "bbox": [10.0, 20.0, 30.0, 60.0], "score": 0.5, "file_name": "x.png"}
    ]
