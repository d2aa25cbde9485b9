"""``centernet validate`` and COCO evaluation: the numbers are pycocotools' own, recomputed independently."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from centernet.cli.main import main
from centernet.evaluation import COCO_METRIC_NAMES, evaluate_coco
from centernet.inference import Detector

SHAPES = ["circle", "square", "triangle", "diamond", "cross"]


def _pycocotools(dataset: dict, results: list[dict]) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def _per_class_ap(evaluator: COCOeval) -> list[float]:
    precision = evaluator.eval["precision"][:, :, :, 0, -1]  # (T, R, K)
    return [float(p[p > -1].mean()) if (p > -1).any() else -1.0 for p in np.moveaxis(precision, 2, 0)]


def _noisy_set(seed: int = 0) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, 9):
        images.append({"id": image_id, "width": 320, "height": 240, "file_name": f"{image_id}.png"})
        for _ in range(int(rng.integers(1, 6))):
            x, y, w, h = rng.uniform(0, 200), rng.uniform(0, 150), rng.uniform(4, 110), rng.uniform(4, 80)
            category = int(rng.choice([5, 9, 11]))
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                 "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0}
            )  # fmt: skip
            if rng.uniform() < 0.8:  # found, with noise; sometimes with the wrong class
                noisy = [x + rng.normal(0, 4), y + rng.normal(0, 4), w + rng.normal(0, 4), h + rng.normal(0, 4)]
                wrong = rng.uniform() < 0.1
                results.append(
                    {"image_id": image_id, "category_id": 9 if wrong else category, "bbox": noisy,
                     "score": float(rng.uniform(0.05, 1))}
                )  # fmt: skip
        results.append({"image_id": image_id, "category_id": 5, "bbox": [10, 10, 50, 40], "score": 0.3})
    categories = [{"id": 5, "name": "a"}, {"id": 9, "name": "b"}, {"id": 11, "name": "c"}, {"id": 12, "name": "d"}]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def test_evaluate_coco_equals_pycocotools():
    dataset, results = _noisy_set()
    evaluation = evaluate_coco(dataset, results)
    reference = _pycocotools(dataset, results)
    assert 0.2 < evaluation.metrics["map"] < 0.95
    np.testing.assert_allclose([evaluation.metrics[n] for n in COCO_METRIC_NAMES], reference.stats, atol=1e-6)
    np.testing.assert_allclose([c["ap"] for c in evaluation.per_class], _per_class_ap(reference), atol=1e-6)
    assert [c["category_id"] for c in evaluation.per_class] == [5, 9, 11, 12]
    assert evaluation.per_class[3]["ap"] == -1.0 and evaluation.per_class[3]["num_ground_truth"] == 0
    assert evaluation.precision.shape == (10, 101, 4)


def test_evaluate_coco_perfect_and_empty_results():
    dataset, _ = _noisy_set(1)
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        for a in dataset["annotations"]
    ]
    evaluation = evaluate_coco(dataset, perfect)
    assert evaluation.metrics["map"] == pytest.approx(1.0) and evaluation.metrics["map_50"] == pytest.approx(1.0)
    assert [c["ap"] for c in evaluation.per_class] == pytest.approx([1.0, 1.0, 1.0, -1.0])
    empty = evaluate_coco(dataset, [])
    assert empty.metrics["map"] == 0.0 and [c["ap"] for c in empty.per_class] == [0.0, 0.0, 0.0, -1.0]


@pytest.fixture(scope="module")
def own_detections_set(tiny_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """Images whose ground truth is partly the tiny model's own detections (jittered) and partly missed boxes,
    so the untrained model scores a non-trivial AP."""
    root = tmp_path_factory.mktemp("own")
    rng = np.random.default_rng(0)
    shapes = [(64, 64), (48, 80), (96, 56), (64, 64), (70, 90)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]
    (root / "images").mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(root / "images" / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    predictions = Detector.from_checkpoint(tiny_checkpoint).predict(images, score_threshold=0.0)
    entries, annotations = [], []
    for i, ((h, w), prediction) in enumerate(zip(shapes, predictions, strict=True)):
        entries.append({"id": 100 + i, "file_name": f"{i}.png", "width": w, "height": h})
        boxes = [(box, cid) for box, cid in zip(prediction.boxes, prediction.category_ids, strict=True)][:3]
        boxes.append((np.array([2.0, 2.0, 30.0, 20.0]), 3))  # never found
        for box, category_id in boxes:
            # Jittered, then kept inside the image: the json is then exactly the ground truth validate scores
            # against (boxes clipped by the validation policy; see the test of clipped and dropped boxes).
            x1, y1, x2, y2 = (float(v) + rng.normal(0, 0.5) for v in box)
            x1, x2 = min(max(x1, 0.0), w - 1.0), min(max(x2, 0.0), w)
            y1, y2 = min(max(y1, 0.0), h - 1.0), min(max(y2, 0.0), h)
            width, height = max(1.0, x2 - x1), max(1.0, y2 - y1)
            annotations.append(
                {"id": len(annotations) + 1, "image_id": 100 + i, "category_id": int(category_id),
                 "bbox": [x1, y1, width, height], "area": width * height, "iscrowd": 0}
            )  # fmt: skip
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(SHAPES)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": categories}))
    return root / "images", path


@pytest.mark.parametrize("mode", [[], ["--keep-resolution"]])
def test_validate_reproduces_pycocotools_from_its_predictions(tiny_checkpoint, own_detections_set, tmp_path, mode):
    images, annotations = own_detections_set
    out = tmp_path / "val"
    main(["validate", "--checkpoint", tiny_checkpoint, "--images", str(images), "--annotations", str(annotations)]
         + ["--output", str(out), "--batch-size", "2", *mode])  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    results = json.loads((out / "predictions.json").read_text())
    reference = _pycocotools(json.loads(annotations.read_text()), results)
    np.testing.assert_allclose([metrics[name] for name in COCO_METRIC_NAMES], reference.stats[:12], atol=1e-6)
    np.testing.assert_allclose([c["ap"] for c in metrics["per_class"]], _per_class_ap(reference), atol=1e-6)
    assert metrics["mode"] == ("keep_resolution" if mode else "resize")
    assert {r["image_id"] for r in results} == {100, 101, 102, 103, 104}
    if not mode:  # the ground truth was taken from resized predictions, so they must score
        assert metrics["map_50"] > 0.3
    for name in ("pr_curve_iou50.png", "pr_curve_iou50-95.png"):
        plot = cv2.imread(str(out / name))
        assert plot is not None and plot.shape[0] > 100


def test_validate_reads_the_data_of_the_checkpoint_or_a_config(tiny_checkpoint, shapes_root, tmp_path, capsys):
    main(["validate", "--checkpoint", tiny_checkpoint, "--output", str(tmp_path / "a")])
    table = capsys.readouterr().out
    assert "AP per class" in table and "triangle" in table and "map_50" in table
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["images"] == 8
    config = tmp_path / "config.yaml"
    config.write_text(
        "trainer:\n  max_epochs: 1\ndata:\n  dataset: shapes\n  image_size: 64\n"
        f"  shapes_root: {shapes_root}\n  shapes_train_images: 16\n  shapes_val_images: 8\n  shapes_image_size: 64\n"
    )
    main(["validate", "--checkpoint", tiny_checkpoint, "--config", str(config), "--output", str(tmp_path / "b")])
    first, second = (json.loads((tmp_path / d / "predictions.json").read_text()) for d in ("a", "b"))
    assert first == second
    typo = tmp_path / "typo.yaml"
    typo.write_text("data:\n  dataset: shapes\n  val_image: x\n")
    with pytest.raises(ValueError, match="val_image"):
        main(["validate", "--checkpoint", tiny_checkpoint, "--config", str(typo)])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": [], "annotations": [], "categories": [{"id": 40, "name": "x"}]}))
    with pytest.raises(ValueError, match="category ids"):
        main(["validate", "--checkpoint", tiny_checkpoint, "--images", str(tmp_path), "--annotations", str(bad)])


def test_validate_scores_a_voc_dataset_like_its_coco_copy(tiny_checkpoint, own_detections_set, tmp_path):
    """A Pascal VOC config is validated through the same policy (boxes clipped to the image) and scored as COCO."""
    from helpers.writers import Item, write_voc

    images_dir, annotations = own_detections_set
    dataset = json.loads(annotations.read_text())
    items, clipped = [], copy.deepcopy(dataset)
    for entry in dataset["images"]:
        image = cv2.cvtColor(cv2.imread(str(images_dir / entry["file_name"])), cv2.COLOR_BGR2RGB)
        boxes, labels = [], []
        for a in clipped["annotations"]:
            if a["image_id"] == entry["id"]:
                x, y, w, h = a["bbox"]
                x1, y1 = max(0.0, x), max(0.0, y)
                x2, y2 = min(float(entry["width"]), x + w), min(float(entry["height"]), y + h)
                a["bbox"], a["area"] = [x1, y1, x2 - x1, y2 - y1], (x2 - x1) * (y2 - y1)
                boxes.append((x1, y1, x2, y2))
                labels.append(a["category_id"] - 1)
        items.append(Item(Path(entry["file_name"]).stem, image, boxes, labels))
    voc_images, voc_annotations = write_voc(tmp_path / "voc", items, SHAPES)
    config = tmp_path / "voc.yaml"
    config.write_text(
        f"data:\n  dataset: voc\n  val_images: {voc_images}\n  val_annotations: {voc_annotations}\n"
        f"  voc_classes: {json.dumps(SHAPES)}\n  image_size: 64\n"
    )
    out = tmp_path / "val"
    main(["validate", "--checkpoint", tiny_checkpoint, "--config", str(config), "--output", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    results = json.loads((out / "predictions.json").read_text())
    # VOC image ids are 1-based positions of the sorted files (0.png, 1.png, ...); the json's ids are 100 + i.
    for result in results:
        result["image_id"] = 100 + result["image_id"] - 1
    reference = _pycocotools(clipped, results)
    assert reference.stats[1] > 0.3  # a non-trivial AP50, so equality is not 0 == 0
    np.testing.assert_allclose([metrics[name] for name in COCO_METRIC_NAMES], reference.stats[:12], atol=1e-6)


def test_swapped_class_names_under_the_same_ids_are_refused(tiny_checkpoint, own_detections_set, tmp_path):
    images, annotations = own_detections_set
    data = json.loads(annotations.read_text())
    names = [c["name"] for c in data["categories"]]
    data["categories"][0]["name"], data["categories"][1]["name"] = names[1], names[0]
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"names categories differently from the model: id 1: 'square' \(model: 'circle'\)"
    ):
        main(["validate", "--checkpoint", tiny_checkpoint, "--images", str(images), "--annotations", str(swapped)])


def test_a_box_validate_drops_is_not_scored_and_an_empty_split_is_an_error(
    tiny_checkpoint, own_detections_set, tmp_path
):
    images, annotations = own_detections_set
    dataset = json.loads(annotations.read_text())
    with_degenerate = copy.deepcopy(dataset)
    with_degenerate["annotations"].append(
        {"id": 999, "image_id": 100, "category_id": 1, "bbox": [5.0, 5.0, 0.0, 12.0], "area": 0.0, "iscrowd": 0}
    )  # zero width: dropped with a warning naming it, so it must not count as a missed object either
    degenerate = tmp_path / "degenerate.json"
    degenerate.write_text(json.dumps(with_degenerate))
    numbers = []
    for name, path in (("clean", annotations), ("degenerate", degenerate)):
        out = tmp_path / name
        with pytest.warns(UserWarning, match="annotation id=999") if name == "degenerate" else contextlib.nullcontext():
            main(["validate", "--checkpoint", tiny_checkpoint, "--images", str(images), "--annotations", str(path),
                  "--output", str(out)])  # fmt: skip
        numbers.append(json.loads((out / "metrics.json").read_text()))
    assert [numbers[1][name] for name in COCO_METRIC_NAMES] == [numbers[0][name] for name in COCO_METRIC_NAMES]
    assert numbers[0]["map_50"] > 0.3

    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**dataset, "images": [], "annotations": []}))
    with pytest.raises(ValueError, match=r"empty.json: no images \(the split is empty\)"):
        main(["validate", "--checkpoint", tiny_checkpoint, "--images", str(images), "--annotations", str(empty),
              "--output", str(tmp_path / "e")])  # fmt: skip
