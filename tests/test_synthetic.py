"""Tests of the built-in shapes dataset: determinism, invariants of the annotations, the cache."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from centernet.data import SHAPE_CLASSES, CocoDetection, ensure_shapes_dataset, generate_shapes_image
from centernet.data import synthetic as synthetic_module

SIZE = 64
NUM_TRAIN, NUM_VAL = 48, 8  # train image 16 is one of the empty ones (index % 32 == 16)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return ensure_shapes_dataset(tmp_path_factory.mktemp("cache"), NUM_TRAIN, NUM_VAL, SIZE, seed=3)


def _annotations(path) -> dict:
    return json.loads(path.read_text())


def test_generation_is_deterministic_per_image():
    a = generate_shapes_image(SIZE, 0, "train", 5)
    b = generate_shapes_image(SIZE, 0, "train", 5)
    for field in ("image", "boxes", "labels", "areas", "instance_mask"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.image, generate_shapes_image(SIZE, 1, "train", 5).image)
    assert not np.array_equal(a.image, generate_shapes_image(SIZE, 0, "val", 5).image)
    assert not np.array_equal(a.image, generate_shapes_image(SIZE, 0, "train", 6).image)


def test_cache_is_deterministic_and_independent_of_counts(shapes, tmp_path):
    same = ensure_shapes_dataset(tmp_path / "a", NUM_TRAIN, NUM_VAL, SIZE, seed=3)
    assert same.root != shapes.root
    assert same.train_annotations.read_bytes() == shapes.train_annotations.read_bytes()
    assert same.val_annotations.read_bytes() == shapes.val_annotations.read_bytes()
    for name in ("000000.png", "000031.png"):
        assert (same.train_images / name).read_bytes() == (shapes.train_images / name).read_bytes()
    # Image i does not depend on how many images are generated.
    fewer = ensure_shapes_dataset(tmp_path / "b", 4, 2, SIZE, seed=3)
    assert (fewer.train_images / "000003.png").read_bytes() == (shapes.train_images / "000003.png").read_bytes()
    other = ensure_shapes_dataset(tmp_path / "c", 4, 2, SIZE, seed=4)
    assert (other.train_images / "000003.png").read_bytes() != (shapes.train_images / "000003.png").read_bytes()
    assert other.root.name != fewer.root.name  # the seed is part of the cache key


def test_annotations_respect_the_generator_rules(shapes):
    for paths_images, path in (
        (shapes.train_images, shapes.train_annotations),
        (shapes.val_images, shapes.val_annotations),
    ):
        data = _annotations(path)
        assert [c["id"] for c in data["categories"]] == [1, 2, 3, 4, 5]
        assert [c["name"] for c in data["categories"]] == list(SHAPE_CLASSES)
        assert len(list(paths_images.glob("*.png"))) == len(data["images"])
    data = _annotations(shapes.train_annotations)
    assert len(data["images"]) == NUM_TRAIN
    counts = {image["id"]: 0 for image in data["images"]}
    for ann in data["annotations"]:
        counts[ann["image_id"]] += 1
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= SIZE and y + h <= SIZE, ann
        assert 0.08 <= max(w, h) / SIZE <= 0.5, ann
        assert min(w, h) >= 1 and 0 < ann["area"] <= w * h and ann["iscrowd"] == 0, ann
        assert float(x).is_integer() and float(w).is_integer(), ann  # boxes of whole pixels
    empty = sorted(image_id for image_id, n in counts.items() if n == 0)
    assert empty == [17]  # image index 16 (id = index + 1)
    assert all(1 <= n <= 12 for image_id, n in counts.items() if image_id not in empty)
    assert max(counts.values()) > 6  # crowded images happen
    assert {ann["category_id"] for ann in data["annotations"]} == {1, 2, 3, 4, 5}


def test_boxes_are_tight_around_the_visible_pixels():
    for index in range(8):
        sample = generate_shapes_image(SIZE, 0, "train", index)
        assert sample.image.shape == (SIZE, SIZE, 3) and sample.image.dtype == np.uint8
        for k, ((x, y, w, h), area) in enumerate(zip(sample.boxes, sample.areas, strict=True)):
            rows, cols = np.nonzero(sample.instance_mask == k)
            assert (x, y, w, h) == (cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1)
            assert area == len(rows)
            # every object is visible: its colour differs clearly from the pixels just around it
            mask = (sample.instance_mask == k).astype(np.uint8)
            ring = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool) & ~mask.astype(bool)
            colour = np.median(sample.image[mask.astype(bool)].astype(float), axis=0)
            distance = np.linalg.norm(sample.image[ring].astype(float) - colour, axis=1)
            assert np.median(distance) >= 40, (index, k)


def test_cache_is_reused_and_interrupted_runs_leave_nothing(shapes, tmp_path, monkeypatch):
    mtime = shapes.train_annotations.stat().st_mtime_ns
    image_mtime = (shapes.train_images / "000000.png").stat().st_mtime_ns
    again = ensure_shapes_dataset(shapes.root.parent, NUM_TRAIN, NUM_VAL, SIZE, seed=3)
    assert again == shapes
    assert shapes.train_annotations.stat().st_mtime_ns == mtime
    assert (shapes.train_images / "000000.png").stat().st_mtime_ns == image_mtime
    assert [p.name for p in shapes.root.parent.iterdir()] == [shapes.root.name]  # no temp folders left

    real_write_split = synthetic_module._write_split

    def fail_on_val(folder, split, *args):
        if split == "val":
            raise KeyboardInterrupt
        real_write_split(folder, split, *args)

    monkeypatch.setattr(synthetic_module, "_write_split", fail_on_val)
    with pytest.raises(KeyboardInterrupt):
        ensure_shapes_dataset(tmp_path, 4, 2, SIZE, seed=0)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(synthetic_module, "_write_split", real_write_split)
    paths = ensure_shapes_dataset(tmp_path, 4, 2, SIZE, seed=0)
    assert paths.val_annotations.is_file()


def test_json_loads_with_pycocotools_and_the_dataset(shapes):
    coco = COCO(str(shapes.val_annotations))
    assert len(coco.getImgIds()) == NUM_VAL and sorted(coco.getCatIds()) == [1, 2, 3, 4, 5]
    dataset = CocoDetection(shapes.val_images, shapes.val_annotations)
    assert len(dataset) == NUM_VAL and dataset.class_names == list(SHAPE_CLASSES)
    for i in range(NUM_VAL):
        sample = dataset[i]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=sample["image_id"]))
        assert sample["image"].shape == (3, SIZE, SIZE)
        cx, cy, w, h = (sample["bboxes"] * SIZE).unbind(-1)
        xywh = torch.stack([cx - w / 2, cy - h / 2, w, h], -1)
        torch.testing.assert_close(xywh, torch.tensor([a["bbox"] for a in anns]).reshape(-1, 4))
        assert (sample["labels"] + 1).tolist() == [a["category_id"] for a in anns]


def test_argument_validation(tmp_path):
    with pytest.raises(ValueError, match="image_size"):
        ensure_shapes_dataset(tmp_path, 4, 2, image_size=16)
    with pytest.raises(ValueError, match="num_val"):
        ensure_shapes_dataset(tmp_path, 4, 0)
    with pytest.raises(ValueError, match="split"):
        generate_shapes_image(SIZE, 0, "test", 0)
