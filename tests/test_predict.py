"""Prediction: boxes round-trip to original pixels through the real decoding; batching, input kinds,
test-time augmentation, NMS, YOLO/COCO output and the ``predict`` command on images and video."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from centernet.boxes import class_aware_nms
from centernet.cli.main import main
from centernet.inference import Detector, Prediction
from centernet.inference.backends import Backend
from centernet.tasks.detection.decode import decode_detections
from centernet.tasks.detection.flip import merge_flipped_maps
from centernet.tasks.detection.task import DetectionTask


class _Oracle(nn.Module):
    """A "network" that finds the red (class 0) and green (class 1) rectangle of its input and renders the
    CenterNet maps of their exact bounding boxes, so the whole letterbox -> decode -> map-back path is real."""

    stride = 4
    max_detections = 100
    task = DetectionTask()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        num, _, height, width = images.shape
        out_h, out_w = height // 4, width // 4
        heatmap = torch.full((num, 2, out_h, out_w), -10.0)
        size = torch.zeros(num, 2, out_h, out_w)
        offset = torch.zeros(num, 2, out_h, out_w)
        for n in range(num):
            for c in range(2):
                mask = images[n, c] > 0.5  # (H, W)
                if not mask.any():
                    continue
                ys, xs = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
                x1, x2, y1, y2 = float(xs[0]), float(xs[-1] + 1), float(ys[0]), float(ys[-1] + 1)
                cx, cy = (x1 + x2) / 8, (y1 + y2) / 8  # output cells
                i, j = int(cy), int(cx)
                heatmap[n, c, i, j] = 10.0
                size[n, :, i, j] = torch.tensor([(x2 - x1) / 4, (y2 - y1) / 4])
                offset[n, :, i, j] = torch.tensor([cx - j, cy - i])
        return {"heatmap": heatmap, "size": size, "offset": offset}

    def decode(self, outputs, max_detections=None):
        return decode_detections(outputs["heatmap"], outputs["size"], outputs["offset"], 4, max_detections or 100)


def _scene(width: int, height: int, red: tuple, green: tuple) -> np.ndarray:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[red[1] : red[3], red[0] : red[2], 0] = 255
    image[green[1] : green[3], green[0] : green[2], 1] = 255
    return image


RED, GREEN = (40, 16, 120, 64), (160, 40, 248, 120)


@pytest.fixture()
def oracle() -> Detector:
    return Detector(_Oracle(), ["red", "green"], [5, 9], image_size=128)


def _by_label(prediction: Prediction) -> dict[int, np.ndarray]:
    return {int(label): box for label, box in zip(prediction.labels, prediction.boxes, strict=True)}


def test_known_boxes_round_trip_resized_and_padded(oracle):
    # 256 x 128 -> resized by 1/2 to 128 x 64, padded to 128 x 128: the boxes must come back exactly.
    (prediction,) = oracle.predict(_scene(256, 128, RED, GREEN), score_threshold=0.5)
    boxes = _by_label(prediction)
    assert sorted(boxes) == [0, 1] and prediction.image_size == (128, 256)
    np.testing.assert_allclose(boxes[0], RED, atol=1e-3)
    np.testing.assert_allclose(boxes[1], GREEN, atol=1e-3)
    assert prediction.names == [["red", "green"][i] for i in prediction.labels]
    assert prediction.category_ids == [[5, 9][i] for i in prediction.labels]


def test_known_boxes_round_trip_keep_resolution(oracle):
    # 250 x 130 at its own size, padded to 256 x 160.
    red, green = (3, 5, 97, 61), (101, 33, 247, 129)
    (prediction,) = oracle.predict(_scene(250, 130, red, green), score_threshold=0.5, keep_resolution=True)
    boxes = _by_label(prediction)
    np.testing.assert_allclose(boxes[0], red, atol=1e-3)
    np.testing.assert_allclose(boxes[1], green, atol=1e-3)


def test_flip_and_multi_scale_keep_exact_boxes(oracle):
    # Centres mid-cell at the network input (x = 4j + 2), so a mirrored peak flips back onto the same cell.
    red = (44, 16, 124, 64)
    image = _scene(256, 128, red, GREEN)
    (flipped,) = oracle.predict(image, score_threshold=0.5, flip=True)
    np.testing.assert_allclose(_by_label(flipped)[0], red, atol=1e-3)
    np.testing.assert_allclose(_by_label(flipped)[1], GREEN, atol=1e-3)
    image = _scene(256, 128, RED, GREEN)
    # Scales 0.5 and 1 find each box twice; class-aware NMS merges them into one per object.
    (multi,) = oracle.predict(image, score_threshold=0.5, scales=(0.5, 1.0))
    assert sorted(multi.labels.tolist()) == [0, 1]
    np.testing.assert_allclose(_by_label(multi)[0], RED, atol=1e-3)
    np.testing.assert_allclose(_by_label(multi)[1], GREEN, atol=1e-3)


def test_merge_flipped_maps_flips_back():
    heatmap = torch.arange(2 * 1 * 2 * 3, dtype=torch.float32).reshape(2, 1, 2, 3)
    heatmap[1] = heatmap[0].flip(-1) + 2.0  # the mirror's map, as a network equivariant to flips would give
    size = torch.stack([torch.ones(2, 2, 3), 3 * torch.ones(2, 2, 3)])
    offset = torch.stack([torch.full((2, 2, 3), 0.25), torch.full((2, 2, 3), 0.75)])
    merged = merge_flipped_maps({"heatmap": heatmap, "size": size, "offset": offset}, 1)
    torch.testing.assert_close(merged["heatmap"], heatmap[:1] + 1.0)
    torch.testing.assert_close(merged["size"], torch.full((1, 2, 2, 3), 2.0))
    torch.testing.assert_close(merged["offset"], offset[:1])
    with pytest.raises(ValueError, match="ltrb"):
        merge_flipped_maps({"heatmap": heatmap, "ltrb": size}, 1)


def test_class_aware_nms():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 1, 0])
    assert class_aware_nms(boxes, scores, labels, 0.5).tolist() == [0, 2, 3]
    assert class_aware_nms(boxes, scores, labels, 0.5, max_detections=2).tolist() == [0, 2]


def test_nms_option_removes_duplicate_peaks(oracle, monkeypatch):
    image = _scene(256, 128, RED, GREEN)
    duplicate = {
        "boxes": torch.tensor([[[20.0, 8, 60, 32], [21, 8, 60, 32], [80, 20, 124, 60]]]),
        "scores": torch.tensor([[0.9, 0.8, 0.7]]),
        "labels": torch.tensor([[0, 0, 1]]),
    }

    class _Fixed(Backend):  # two peaks of one object (a duplicate), as a poorly trained heatmap may give
        def __call__(self, images):
            return duplicate

    monkeypatch.setattr(oracle, "backend", _Fixed())
    (plain,) = oracle.predict(image, score_threshold=0.1)
    (suppressed,) = oracle.predict(image, score_threshold=0.1, nms_iou=0.5)
    assert len(plain.scores) == 3 and suppressed.scores.tolist() == pytest.approx([0.9, 0.7])


def test_batched_equals_one_by_one_for_every_input_kind(oracle, tmp_path):
    rng = np.random.default_rng(0)
    scenes = [_scene(256, 128, RED, GREEN), _scene(128, 128, (8, 8, 40, 60), (64, 64, 120, 100))]
    scenes += [rng.integers(0, 120, (90, 70, 3), dtype=np.uint8)]
    for i, scene in enumerate(scenes):
        cv2.imwrite(str(tmp_path / f"{i}.png"), cv2.cvtColor(scene, cv2.COLOR_RGB2BGR))
    single = [oracle.predict(scene, score_threshold=0.5)[0] for scene in scenes]
    variants = [
        oracle.predict(scenes, score_threshold=0.5, batch_size=3),
        oracle.predict([Image.fromarray(s) for s in scenes], score_threshold=0.5),
        oracle.predict(tmp_path, score_threshold=0.5),  # a folder
        oracle.predict(str(tmp_path / "*.png"), score_threshold=0.5),  # a glob pattern
        oracle.predict([tmp_path / f"{i}.png" for i in range(3)], score_threshold=0.5, keep_resolution=False),
    ]
    for batched in variants:
        assert len(batched) == 3
        for a, b in zip(batched, single, strict=True):
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
            np.testing.assert_array_equal(a.labels, b.labels)
    # Float tensors in [0, 1]: one (3, H, W) or a stacked (N, 3, H, W) batch.
    tensor = torch.from_numpy(scenes[1]).permute(2, 0, 1).float() / 255
    from_tensor = oracle.predict(torch.stack([tensor, tensor]), score_threshold=0.5)
    assert len(from_tensor) == 2
    np.testing.assert_allclose(from_tensor[1].boxes, single[1].boxes, atol=1e-4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        oracle.predict(tensor * 255)
    with pytest.raises(TypeError, match="cannot predict"):
        oracle.predict(42)


def test_yolo_and_coco_lines():
    prediction = Prediction(
        boxes=np.array([[10.0, 20.0, 50.0, 60.0]], dtype=np.float32),
        scores=np.array([0.75], dtype=np.float32),
        labels=np.array([1]),
        names=["b"],
        category_ids=[9],
        image_size=(100, 200),
    )
    assert prediction.to_yolo() == ["1 0.150000 0.400000 0.200000 0.400000"]
    assert prediction.to_yolo(with_scores=True) == ["1 0.150000 0.400000 0.200000 0.400000 0.75000"]
    (entry,) = prediction.to_coco(3)
    assert entry == {"image_id": 3, "category_id": 9, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.75}
    drawn = prediction.draw(np.zeros((100, 200, 3), dtype=np.uint8))
    assert drawn.shape == (100, 200, 3) and drawn.any()


def test_half_precision_needs_a_gpu(tiny_checkpoint):
    with pytest.raises(ValueError, match="CUDA"):
        Detector.from_checkpoint(tiny_checkpoint, half=True)


def test_predict_command_on_a_glob_with_yolo_txt(tiny_checkpoint, shapes_root, tmp_path):
    images = f"{shapes_root}/shapes-v1-seed0-train16-val8-64px/val/images"
    out = tmp_path / "out"
    main(["predict", "--checkpoint", tiny_checkpoint, "--source", f"{images}/00000[0-2].png", "--output", str(out)]
         + ["--conf", "0.05", "--save-txt", "--batch-size", "2"])  # fmt: skip
    assert sorted(p.name for p in out.glob("*.png")) == ["000000.png", "000001.png", "000002.png"]
    results = json.loads((out / "predictions.json").read_text())
    assert results and {r["file_name"] for r in results} <= {"000000.png", "000001.png", "000002.png"}
    # The YOLO lines are the same detections as the COCO results (64 x 64 images).
    for name in ("000000", "000001", "000002"):
        lines = (out / "labels" / f"{name}.txt").read_text().splitlines()
        entries = [r for r in results if r["file_name"] == f"{name}.png"]
        assert len(lines) == len(entries)
        for line, entry in zip(lines, entries, strict=True):
            label, cx, cy, w, h, score = (float(v) for v in line.split())
            x, y, bw, bh = entry["bbox"]
            assert int(label) + 1 == entry["category_id"]  # shapes: category id = label + 1
            np.testing.assert_allclose([cx * 64, cy * 64, w * 64, h * 64], [x + bw / 2, y + bh / 2, bw, bh], atol=1e-3)
            assert score == pytest.approx(entry["score"], abs=1e-4)


def test_predict_command_on_a_video(tiny_checkpoint, tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 64))
    rng = np.random.default_rng(0)
    for _ in range(5):
        writer.write(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    main(["predict", "--checkpoint", tiny_checkpoint, "--source", str(video), "--output", str(out), "--conf", "0.0"]
         + ["--batch-size", "2", "--save-txt"])  # fmt: skip
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = 0
    while capture.read()[0]:
        frames += 1
    capture.release()
    assert frames == 5
    results = json.loads((out / "predictions.json").read_text())
    assert {r["frame"] for r in results} == set(range(5)) and {r["image_id"] for r in results} == set(range(5))
    assert len(list((out / "labels").glob("clip_*.txt"))) == 5
