"""Inference API: letterbox preprocessing is undone exactly; batching does not change results."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_network

from centernet.data.imagefile import ImageFileError
from centernet.inference import Detector
from centernet.inference.inputs import list_images, read_rgb


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    model = tiny_network(3)
    return Detector(model, ["a", "b", "c"], [10, 20, 30], image_size=64)


def test_boxes_map_back_to_original_pixels(detector, monkeypatch):
    """A decoder that reports known boxes in network-input pixels must give them back in original pixels."""
    original = np.array([[20.0, 10.0, 120.0, 60.0], [0.0, 0.0, 200.0, 100.0]])
    image = np.zeros((100, 200, 3), dtype=np.uint8)  # letterboxed to 64 x 32 (sx = sy = 0.32), padded to 64 x 64
    scale_x, scale_y = 64 / 200, 32 / 100

    def fake_decode(outputs, max_detections=None):
        boxes = torch.tensor(original * [scale_x, scale_y, scale_x, scale_y], dtype=torch.float32)
        return {"boxes": boxes[None], "scores": torch.tensor([[0.9, 0.8]]), "labels": torch.tensor([[2, 0]])}

    monkeypatch.setattr(detector.model, "decode", fake_decode)
    (prediction,) = detector.predict(image, score_threshold=0.5)
    np.testing.assert_allclose(prediction.boxes, original, atol=1e-4)
    assert prediction.names == ["c", "a"] and prediction.category_ids == [30, 10]


def test_batched_prediction_equals_one_by_one(detector):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in ((64, 64, 3), (50, 90, 3), (120, 40, 3))]
    batched = detector.predict(images, score_threshold=0.0, batch_size=3)
    single = [detector.predict(image, score_threshold=0.0)[0] for image in images]
    assert len(batched) == 3
    for a, b in zip(batched, single, strict=True):
        assert len(a.scores) > 0
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
        np.testing.assert_array_equal(a.labels, b.labels)


def test_paths_folders_and_bad_files(detector, tmp_path):
    rng = np.random.default_rng(1)
    for name in ("b.png", "a.jpg"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.png"]
    assert len(detector.predict(tmp_path)) == 2
    assert len(detector.predict([tmp_path / "a.jpg", rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)])) == 2
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a jpeg")
    with pytest.raises(ImageFileError, match="fake.jpg: not an image file"):
        read_rgb(fake)
    with pytest.raises(ValueError, match="RGB uint8"):
        detector.predict(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
