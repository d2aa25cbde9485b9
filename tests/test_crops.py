"""Native-resolution training: crops per epoch follow the image area, every box is seen each epoch, and the data
module trains and validates (sliced) with them."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch

from centernet.data.crops import NativeCrops


def _boxes(rng: np.random.Generator, count: int, height: int, width: int, largest: float) -> np.ndarray:
    """(count, 4) xyxy boxes of 4..largest px with their centres anywhere in the image (edges included)."""
    sizes = rng.uniform(4, largest, size=(count, 2))
    centres = rng.uniform([0, 0], [width, height], size=(count, 2))
    boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
    return boxes.astype(np.float32)


def test_crops_per_epoch_follow_the_image_area():
    crops = NativeCrops(128, scale_range=(0.8, 1.25))
    cell = (128 - 2 * 8) / 1.25  # 89.6 original pixels: the crop minus its margins, at the largest zoom
    assert crops.count(100, 80) == 2 * 1 and crops.count(50, 50) == 1
    assert crops.count(1000, 700) == math.ceil(1000 / cell) * math.ceil(700 / cell) == 12 * 8
    small, large = crops.count(1000, 1000), crops.count(10_000, 10_000)
    assert small == 12 * 12 and large == 112 * 112  # 100x the area, ~100x the crops (87x: rounding up per axis)
    assert NativeCrops(128, scale_range=(0.5, 0.9)).count(1000, 1000) == math.ceil(1000 / 112) ** 2  # no zoom-in


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_box_of_a_large_image_is_seen_over_an_epoch(seed):
    rng = np.random.default_rng(seed)
    height, width = 1100, 1500
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    crops = NativeCrops(128, scale_range=(0.6, 1.4), min_visibility=0.3)
    margin = 8 / 1.4  # half the largest box that is sure to be whole in some crop, at the largest zoom
    boxes = _boxes(rng, 400, height, width, largest=2 * margin)
    ids = np.arange(len(boxes))  # labels as box ids: which boxes each crop kept
    seen = np.zeros(len(boxes), dtype=int)
    for cell in range(crops.count(height, width)):
        crop, kept, labels = crops(image, boxes, ids, cell, rng)
        assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
        seen[labels] += 1
    assert (seen >= 1).all(), f"{int((seen == 0).sum())} of {len(boxes)} boxes never seen"
    # The same random position without the grid would miss many: a crop covers ~1/count of the image.
    assert seen.mean() < 4


def test_a_crop_cuts_the_image_and_boxes_consistently():
    rng = np.random.default_rng(0)
    image = np.zeros((400, 600, 3), dtype=np.uint8)
    box = np.array([[300.0, 200.0, 340.0, 230.0]], dtype=np.float32)
    image[200:230, 300:340] = 255
    crops = NativeCrops(128, scale_range=(1.0, 1.0), min_visibility=0.3)
    found = 0
    for cell in range(crops.count(400, 600)):
        crop, kept, _ = crops(image, box, np.array([0]), cell, rng)
        if len(kept) and (kept[0, 2] - kept[0, 0]) == 40 and (kept[0, 3] - kept[0, 1]) == 30:
            x1, y1, x2, y2 = (int(round(v)) for v in kept[0])
            assert crop[y1:y2, x1:x2].min() == 255  # at scale 1 the white box is exactly where its box says
            assert crop.sum() == 255 * 3 * 40 * 30
            found += 1
    assert found >= 1


def test_object_bias_centres_crops_on_objects():
    rng = np.random.default_rng(0)
    image = np.zeros((2000, 2000, 3), dtype=np.uint8)
    box = np.array([[1500.0, 300.0, 1520.0, 320.0]], dtype=np.float32)
    biased = NativeCrops(128, scale_range=(1.0, 1.0), object_bias=1.0)
    even = NativeCrops(128, scale_range=(1.0, 1.0), object_bias=0.0)
    count = even.count(2000, 2000)
    assert sum(len(biased(image, box, np.array([0]), c, rng)[1]) for c in range(count)) == count
    assert sum(len(even(image, box, np.array([0]), c, rng)[1]) for c in range(count)) <= 4


def _large_coco(root, sizes, boxes_per_image=30):
    """A COCO dataset of large images (random backgrounds with white squares) at ``root``."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i, (height, width) in enumerate(sizes):
        image = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
        for _ in range(boxes_per_image):
            x, y = int(rng.integers(0, width - 16)), int(rng.integers(0, height - 16))
            image[y : y + 12, x : x + 12] = 255
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1,
                                "bbox": [x, y, 12, 12], "area": 144, "iscrowd": 0})  # fmt: skip
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": width, "height": height})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "square"}]}))  # fmt: skip
    return root / "images", path


@pytest.mark.parametrize("options", [{}, {"mosaic": 1.0}, {"augmentations": [{"name": "VerticalFlip", "p": 0.5}]}])
def test_datamodule_samples_native_crops(tmp_path, options):
    from centernet.data.datamodule import CenterNetDataModule
    from centernet.data.sampler import SeededSamples

    images, annotations = _large_coco(tmp_path / "data", [(700, 500), (60, 80)])
    data = CenterNetDataModule(dataset="coco", train_images=str(images), train_annotations=str(annotations),
                               val_images=str(images), val_annotations=str(annotations), image_size=128,
                               batch_size=4, num_workers=0, native_resolution=True, scale_range=(0.8, 1.25),
                               **options)  # fmt: skip
    data.setup("fit")
    crops = NativeCrops(128, scale_range=(0.8, 1.25))
    assert len(data.train_dataset) == crops.count(700, 500) + 1
    assert data.train_dataset.locate(len(data.train_dataset) - 1) == (1, 0)
    samples = SeededSamples(data.train_dataset)
    sample = samples[(3, 7)]
    assert sample["image"].shape == (3, 128, 128) and sample["image_id"] == 1
    again = samples[(3, 7)]  # the crop is a function of the sample's seed
    assert (sample["image"] == again["image"]).all()
    if not options:  # zoom 0.8-1.25 of squares of 12 px: every kept box is at most 15 px, at least 9.6 unless cut
        boxes = np.concatenate([samples[(k, k)]["bboxes"].numpy() * 128 for k in range(20)])  # cxcywh, crop px
        assert len(boxes) >= 5 and (boxes[:, 2:] <= 15.01).all() and np.median(boxes[:, 2:]) >= 9.6
    batch = next(iter(data.train_dataloader()))
    assert batch["image"].shape == (4, 3, 128, 128)
    val = data.val_dataset[0]
    assert val["image"].shape == (3, 700, 500) and data.val_tile == 128  # validated at its own size, sliced


def test_fit_validates_native_resolution_with_sliced_inference(tmp_path):
    from helpers.training import quiet_trainer, tiny_module

    from centernet.data.datamodule import CenterNetDataModule

    images, annotations = _large_coco(tmp_path / "data", [(400, 300), (200, 260)])
    data = CenterNetDataModule(dataset="coco", train_images=str(images), train_annotations=str(annotations),
                               val_images=str(images), val_annotations=str(annotations), image_size=64,
                               batch_size=8, num_workers=0, native_resolution=True)  # fmt: skip
    module = tiny_module(data, image_size=64, max_detections=50)
    trainer = quiet_trainer(max_steps=2, limit_val_batches=2, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=data)
    seen = {}  # image id -> what validation scored
    update = module.evaluator.update

    def record(image_id, size, truth, result):  # noqa: ANN001, ANN202
        seen[image_id] = {key: value.clone() for key, value in result.items()}
        return update(image_id, size, truth, result)

    module.evaluator.update = record
    results = trainer.validate(module, datamodule=data, verbose=False)[0]
    assert "val/map" in results and module.last_val_image_ids == [1, 2]
    # The same detections as the Detector's sliced inference of the same weights (at most max_detections per image,
    # as a whole-image pass keeps), so the same numbers from the same evaluator.
    from centernet.data.imagefile import decode_rgb
    from centernet.inference import Detector

    detector = Detector(module.model, data.class_names, data.category_ids, 64)
    evaluator = detector.task.evaluator(data.class_names, data.category_ids, 50)
    for record_ in sorted(data.val_dataset.source.records, key=lambda r: r.image_id):
        prediction = detector.predict(decode_rgb(record_.path), 0.0, tile=64)[0]
        validated = seen[record_.image_id]
        assert len(prediction.boxes) == len(validated["boxes"]) == 50  # hundreds of tiles' peaks, capped alike
        order = torch.argsort(validated["scores"], descending=True, stable=True)
        np.testing.assert_allclose(validated["scores"][order].numpy(), prediction.scores, atol=1e-5)
        truth = {"boxes": record_.boxes, "labels": record_.labels, "iscrowd": record_.iscrowd, "area": record_.area}
        evaluator.update(record_.image_id, (record_.height, record_.width), truth, prediction)
    metrics = evaluator.compute().metrics
    for name, value in metrics.items():
        assert abs(value - results[f"val/{name}"]) < 1e-4, name
