"""The training pipeline from a YAML list, min_visibility, and the mosaic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.writers import noise_item, write_yolo

from centernet.data import CenterNetDataModule, Mosaic, build_transform_from_config

_CROP = [{"name": "Crop", "x_min": 0, "y_min": 0, "x_max": 32, "y_max": 32}]


def test_listed_transforms_run_in_order_then_fit_the_input_size():
    image = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8)
    boxes = np.array([[0, 0, 10, 10], [24, 24, 40, 40]], dtype=np.float32)  # the second keeps 25% after the crop
    labels = np.array([0, 1])
    strict = build_transform_from_config(_CROP, 64, min_visibility=0.3)(image=image, bboxes=boxes, labels=labels)
    assert strict["image"].shape == (64, 64, 3)
    np.testing.assert_allclose(strict["bboxes"], [[0, 0, 20, 20]])  # crop 32 px, then fit to 64: x2
    assert strict["labels"].tolist() == [0]
    loose = build_transform_from_config(_CROP, 64, min_visibility=0.2)(image=image, bboxes=boxes, labels=labels)
    np.testing.assert_allclose(loose["bboxes"], [[0, 0, 20, 20], [48, 48, 64, 64]])
    assert loose["labels"].tolist() == [0, 1]
    flipped = build_transform_from_config([{"name": "HorizontalFlip", "p": 1.0}], 64)(
        image=image, bboxes=boxes, labels=labels
    )
    np.testing.assert_array_equal(flipped["image"], image[:, ::-1])
    wide = np.zeros((32, 128, 3), np.uint8)
    fitted = build_transform_from_config([], 64)(image=wide, bboxes=boxes, labels=labels)
    assert fitted["image"].shape == (64, 64, 3)  # longest side fitted, padded at the bottom
    np.testing.assert_allclose(fitted["bboxes"], [[0, 0, 5, 5], [12, 12, 20, 16]])  # the second clipped at y=32


def test_config_errors_name_the_entry():
    with pytest.raises(ValueError, match=r"augmentations\[1\] \(HorizontalFlip\): Argument\(s\) 'prob' are not valid"):
        build_transform_from_config([{"name": "Blur"}, {"name": "HorizontalFlip", "prob": 0.5}], 64)
    with pytest.raises(ValueError, match=r"augmentations\[0\]: 'HorizontalFlp' .* did you mean HorizontalFlip"):
        build_transform_from_config([{"name": "HorizontalFlp"}], 64)
    with pytest.raises(ValueError, match=r"augmentations\[0\].transforms\[1\]: 'Blurr'"):
        build_transform_from_config([{"name": "OneOf", "transforms": [{"name": "Blur"}, {"name": "Blurr"}]}], 64)
    with pytest.raises(ValueError, match=r"augmentations\[0\]: expected a mapping with a 'name'"):
        build_transform_from_config(["HorizontalFlip"], 64)
    with pytest.raises(ValueError, match="min_visibility"):
        CenterNetDataModule(dataset="shapes", image_size=64, augmentations=[], min_visibility=1.5)
    with pytest.raises(ValueError, match="mosaic is a probability"):
        CenterNetDataModule(dataset="shapes", image_size=64, mosaic=-0.5)


def _tiles() -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], np.ndarray]:
    """Four 64 px images; each box is a solid square in the colour of its label."""
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=np.uint8)
    rng = np.random.default_rng(0)
    tiles = []
    for _ in range(4):
        image = np.zeros((64, 64, 3), dtype=np.uint8)
        boxes, labels = [], []
        for cell in rng.choice(16, size=3, replace=False):  # distinct cells of a 4x4 grid: squares never overlap
            x, y, label = 16 * int(cell % 4), 16 * int(cell // 4), int(rng.integers(0, 4))
            image[y : y + 16, x : x + 16] = colours[label]
            boxes.append([x, y, x + 16, y + 16])
            labels.append(label)
        tiles.append((image, np.array(boxes, np.float32), np.array(labels)))
    return tiles, colours


def test_mosaic_places_four_images_and_keeps_boxes_on_their_objects():
    tiles, colours = _tiles()
    load = tiles.__getitem__
    mosaic = Mosaic(64, p=1.0, min_visibility=0.25)
    mosaic.set_random_seed(0)
    checked = 0
    for _ in range(10):
        image, boxes, labels = mosaic(0, load, len(tiles))
        assert image.shape == (128, 128, 3) and len(boxes) == len(labels)
        assert (boxes >= 0).all() and (boxes <= 128).all() and (boxes[:, 2:] - boxes[:, :2] >= 1).all()
        uncovered = image.sum(axis=2) > 0
        for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
            x1, y1, x2, y2 = (int(round(float(v))) for v in (x1, y1, x2, y2))
            assert (image[y1:y2, x1:x2] == colours[label]).all()  # the box is exactly the visible square
            uncovered[y1:y2, x1:x2] = False
            checked += 1
        # Coloured pixels outside the kept boxes belong to dropped squares, each less than 25% visible.
        assert uncovered.sum() < 0.25 * 16 * 16 * (12 - len(boxes)) + 1
    assert checked > 40
    again = Mosaic(64, p=1.0, min_visibility=0.25)
    again.set_random_seed(0)
    first = Mosaic(64, p=1.0, min_visibility=0.25)
    first.set_random_seed(0)
    a, b = again(1, load, 4), first(1, load, 4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    untouched = Mosaic(64, p=0.0)(2, load, 4)
    assert untouched[0] is tiles[2][0]


def test_datamodule_mosaic_and_yaml_pipeline(tmp_path):
    items = [noise_item(f"i{k}", 48, 64, [(4, 4, 30, 30), (30, 20, 60, 44)], [0, 1], seed=k) for k in range(4)]
    path = write_yolo(tmp_path, {"train": items, "val": items}, ["a", "b"])
    dm = CenterNetDataModule(
        dataset="yolo",
        yolo_data=str(path),
        image_size=64,
        batch_size=4,
        num_workers=0,
        mosaic=1.0,
        augmentations=[{"name": "RandomScale", "scale_limit": 0.2, "p": 1.0}, {"name": "HorizontalFlip"}],
    )
    dm.setup("fit")
    assert dm.train_dataset.mosaic is not None and dm.val_dataset.mosaic is None
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)
    real = batch["mask"].bool()
    assert batch["mask"].sum(1).max() > 2  # a mosaic holds boxes of several images
    assert (batch["bboxes"][real] >= 0).all() and (batch["bboxes"][real] <= 1).all()
