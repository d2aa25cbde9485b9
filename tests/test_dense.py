"""Dense scenes: nothing caps the detections silently; the checkpoint's max_detections is the default everywhere."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest
import torch
from helpers import quiet_trainer, tiny_module, tiny_shapes_data

from centernet.cli.main import main
from centernet.evaluation import COCO_METRIC_NAMES, DENSE_METRIC_NAMES, evaluate_coco
from centernet.inference import Detector
from centernet.inference.export import read_metadata


@pytest.fixture(scope="module")
def dense_checkpoint(shapes_root, tmp_path_factory) -> str:
    """A tiny model trained one step with ``max_detections: 300`` on 256 px inputs (its heatmaps have > 300 peaks)."""
    torch.manual_seed(0)
    data = tiny_shapes_data(shapes_root, batch_size=8, image_size=256)
    module = tiny_module(data, image_size=256, max_detections=300, optimizer={"lr": 1e-6})
    trainer = quiet_trainer(max_steps=1, limit_val_batches=0)
    trainer.fit(module, datamodule=data)
    path = tmp_path_factory.mktemp("dense") / "dense.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


def _per_image(predictions_json) -> Counter:
    return Counter(entry["file_name"] for entry in json.loads(predictions_json.read_text()))


def test_predict_returns_the_checkpoints_number_of_detections(dense_checkpoint, shapes_root, tmp_path):
    images = f"{shapes_root}/shapes-v1-seed0-train16-val8-64px/val/images"
    main(["predict", "--checkpoint", dense_checkpoint, "--source", images, "--output", str(tmp_path / "a"),
          "--conf", "0", "--no-draw", "--backend", "eager"])  # fmt: skip
    assert set(_per_image(tmp_path / "a" / "predictions.json").values()) == {300}
    main(
        [
            "predict",
            "--checkpoint",
            dense_checkpoint,
            "--source",
            images,
            "--output",
            str(tmp_path / "b"),
            "--conf",
            "0",
            "--no-draw",
            "--max-det",
            "500",
        ]
    )  # fmt: skip (ONNX Runtime, exported with K = 500)
    assert set(_per_image(tmp_path / "b" / "predictions.json").values()) == {500}
    detector = Detector.from_checkpoint(dense_checkpoint)
    assert detector.max_detections == 300
    assert len(detector.predict(f"{images}/000001.png", score_threshold=0.0)[0].scores) == 300


def test_validate_reports_coco_numbers_and_all_detections(dense_checkpoint, tmp_path):
    validated = main(["validate", "--checkpoint", dense_checkpoint, "--output", str(tmp_path)])
    assert validated["max_detections"] == 300
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert all(name in metrics for name in (*COCO_METRIC_NAMES, *DENSE_METRIC_NAMES))
    per_image = Counter(entry["image_id"] for entry in json.loads((tmp_path / "predictions.json").read_text()))
    assert set(per_image.values()) == {300}


def test_exported_graphs_take_k_from_the_model_or_the_option(dense_checkpoint, tmp_path):
    main(["export", "--checkpoint", dense_checkpoint, "--output", str(tmp_path / "m.onnx"), "--no-check"])
    assert read_metadata(tmp_path / "m.onnx")["max_detections"] == 300
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    boxes, scores, labels = session.run(None, {"images": np.random.default_rng(0).random((1, 3, 256, 256), "float32")})
    assert scores.shape == (1, 300)
    main(["export", "--checkpoint", dense_checkpoint, "--output", str(tmp_path / "k.onnx"), "--max-det", "500",
          "--dynamic"])  # fmt: skip
    exported = Detector.load(tmp_path / "k.onnx")
    assert exported.max_detections == 500
    with pytest.raises(ValueError, match=r"at most 500 detections per image; export it with --max-det 600"):
        exported.predict(np.zeros((64, 64, 3), np.uint8), max_detections=600)


def test_dense_numbers_count_every_detection():
    """250 objects in one image, 250 good detections: COCO's AR at 100 detections is capped at 100/250."""
    rng = np.random.default_rng(0)
    annotations, results = [], []
    for i in range(250):
        x, y = (float(v) for v in rng.uniform(0, 480, 2))
        annotations.append({"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [x, y, 15, 15], "area": 225.0,
                            "iscrowd": 0})  # fmt: skip
        results.append({"image_id": 1, "category_id": 1, "bbox": [x, y, 15, 15], "score": float(rng.random())})
    truth = {"images": [{"id": 1, "width": 500, "height": 500}], "annotations": annotations,
             "categories": [{"id": 1, "name": "tree"}]}  # fmt: skip
    standard = evaluate_coco(truth, results)
    dense = evaluate_coco(truth, results, max_detections=300)
    assert standard.metrics["mar_100"] == pytest.approx(100 / 250)
    assert {name: dense.metrics[name] for name in COCO_METRIC_NAMES} == standard.metrics  # still COCO's 12
    assert dense.metrics["mar_all_dets"] == pytest.approx(1.0)
    assert dense.metrics["map_50_all_dets"] == pytest.approx(1.0)
    assert set(DENSE_METRIC_NAMES).isdisjoint(standard.metrics)
