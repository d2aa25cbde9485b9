"""Tests of the data path: COCO loading, label map, transforms, collate and the DataModule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from centernet.data import (
    CenterNetDataModule,
    CocoDetection,
    DataWarning,
    build_eval_transform,
    build_train_transform,
    collate_detections,
    read_categories,
)
from centernet.data import coco as coco_module

CATEGORIES = [{"id": 12, "name": "zebra"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]  # unsorted on purpose


def _write_coco(root: Path, images: list[tuple[int, str, int, int]], annotations: list[dict], categories=CATEGORIES):
    """Write noise PNGs (image_id, file_name, height, width) and a COCO json; returns (image_dir, json_path)."""
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for _, file_name, height, width in images:
        cv2.imwrite(str(image_dir / file_name), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    for i, ann in enumerate(annotations):
        ann.setdefault("id", i + 1)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    data = {
        "images": [{"id": i, "file_name": f, "height": h, "width": w} for i, f, h, w in images],
        "annotations": annotations,
        "categories": categories,
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return image_dir, path


def _sample(num_boxes: int, image_id: int, size: int = 64) -> dict:
    bboxes = torch.rand(num_boxes, 4)
    return {
        "image": torch.rand(3, size, size),
        "bboxes": bboxes,
        "labels": torch.arange(num_boxes, dtype=torch.int64) + 1,
        "image_id": image_id,
        "orig_size": (size + 1, size + 2),
        "scale": (0.5, 0.25),
    }


# --- collate ---------------------------------------------------------------------------------------------------


def test_collate_pads_boxes_and_builds_mask():
    samples = [_sample(2, 10), _sample(0, 11), _sample(3, 12)]
    batch = collate_detections(samples)
    assert batch["image"].shape == (3, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert batch["bboxes"].shape == (3, 3, 4) and batch["bboxes"].dtype == torch.float32
    assert batch["labels"].shape == (3, 3) and batch["labels"].dtype == torch.int64
    assert batch["mask"].dtype == torch.float32
    assert batch["mask"].tolist() == [[1, 1, 0], [0, 0, 0], [1, 1, 1]]
    for i, sample in enumerate(samples):
        n = len(sample["labels"])
        assert torch.equal(batch["bboxes"][i, :n], sample["bboxes"])
        assert torch.equal(batch["labels"][i, :n], sample["labels"])
        assert torch.equal(batch["image"][i], sample["image"])
        assert (batch["bboxes"][i, n:] == 0).all() and (batch["labels"][i, n:] == 0).all()
    assert batch["image_id"].tolist() == [10, 11, 12] and batch["image_id"].dtype == torch.int64
    assert batch["orig_size"].tolist() == [[65, 66]] * 3 and batch["orig_size"].dtype == torch.int64
    assert batch["scale"].tolist() == [[0.5, 0.25]] * 3 and batch["scale"].dtype == torch.float32
    assert "gt_boxes" not in batch  # only passed on when the samples carry them


def test_collate_all_empty_keeps_one_padding_slot():
    batch = collate_detections([_sample(0, 1), _sample(0, 2)])
    assert batch["bboxes"].shape == (2, 1, 4) and batch["labels"].shape == (2, 1) and batch["mask"].shape == (2, 1)
    assert batch["mask"].sum() == 0 and batch["bboxes"].abs().sum() == 0 and batch["labels"].sum() == 0


def test_collate_rejects_images_of_different_sizes():
    with pytest.raises(ValueError, match="sample 1 has image shape"):
        collate_detections([_sample(1, 1, size=64), _sample(1, 2, size=96)])


# --- COCO loading and label map -------------------------------------------------------------------------------


def test_label_map_round_trip(tmp_path):
    anns = [
        {"image_id": 1, "category_id": 12, "bbox": [1, 2, 10, 10]},
        {"image_id": 1, "category_id": 3, "bbox": [20, 2, 10, 10]},
        {"image_id": 1, "category_id": 7, "bbox": [40, 2, 10, 10]},
        {"image_id": 1, "category_id": 3, "bbox": [1, 30, 10, 10]},
    ]
    image_dir, path = _write_coco(tmp_path, [(1, "a.png", 64, 64)], anns)
    dataset = CocoDetection(image_dir, path)
    assert dataset.category_ids == [3, 7, 12]
    assert dataset.class_names == ["cat", "dog", "zebra"]
    assert read_categories(path) == (["cat", "dog", "zebra"], [3, 7, 12])
    sample = dataset[0]
    assert sample["labels"].dtype == torch.int64
    assert [dataset.category_ids[label] for label in sample["labels"].tolist()] == [12, 3, 7, 3]
    # without a transform, boxes are relative to the original image
    x, y, w, h = anns[1]["bbox"]
    expected = torch.tensor([(x + w / 2) / 64, (y + h / 2) / 64, w / 64, h / 64])
    torch.testing.assert_close(sample["bboxes"][1], expected)
    assert sample["scale"] == (1.0, 1.0) and sample["orig_size"] == (64, 64) and sample["image_id"] == 1


def test_read_categories_scans_large_files_without_parsing_them(tmp_path, monkeypatch):
    # The key "categories" also appears as a value before the real key: the scanner must skip it.
    text = json.dumps(
        {
            "info": {"description": "categories"},
            "images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
            "annotations": [],
            "categories": CATEGORIES,
        }
    )
    path = tmp_path / "big.json"
    path.write_text(text)
    monkeypatch.setattr(coco_module, "_SCAN_THRESHOLD_BYTES", 0)
    monkeypatch.setattr(coco_module, "_load_json", lambda p: pytest.fail("must not parse the whole file"))
    assert read_categories(path) == (["cat", "dog", "zebra"], [3, 7, 12])


def test_eval_transform_boxes_map_back_to_the_json(tmp_path):
    # 128x256 (h x w) and 256x128 images at image_size 128: scale 0.5 exactly, so the mapping is exact.
    images = [(5, "wide.png", 128, 256), (9, "tall.png", 256, 128), (13, "empty.png", 128, 256)]
    anns = [
        {"image_id": 5, "category_id": 3, "bbox": [10.5, 20.25, 30.0, 40.0]},
        {"image_id": 5, "category_id": 12, "bbox": [200.0, 0.0, 56.0, 128.0]},
        {"image_id": 5, "category_id": 7, "bbox": [0.0, 0.0, 256.0, 128.0], "iscrowd": 1},
        {"image_id": 9, "category_id": 7, "bbox": [3.0, 150.75, 100.5, 60.0]},
    ]
    image_dir, path = _write_coco(tmp_path, images, [dict(a) for a in anns])
    dataset = CocoDetection(image_dir, path, transform=build_eval_transform(128))
    assert len(dataset) == 3
    batch = collate_detections([dataset[i] for i in range(len(dataset))])
    assert batch["image"].shape == (3, 3, 128, 128)
    assert batch["image_id"].tolist() == [5, 9, 13]
    assert batch["orig_size"].tolist() == [[128, 256], [256, 128], [128, 256]]
    assert batch["scale"].tolist() == [[0.5, 0.5]] * 3
    assert batch["mask"].tolist() == [[1, 1], [1, 0], [0, 0]]  # crowd excluded, empty image has no boxes
    assert (batch["image"][0, :, 64:, :] == 0).all()  # letterbox padding at the bottom of the wide image
    assert (batch["image"][1, :, :, 64:] == 0).all()  # and at the right of the tall one

    height, width = batch["image"].shape[-2:]
    expected = {5: [anns[0], anns[1]], 9: [anns[3]], 13: []}
    for i, image_id in enumerate(batch["image_id"].tolist()):
        n = int(batch["mask"][i].sum())
        cx, cy, w, h = batch["bboxes"][i, :n].double().unbind(-1)
        scale = batch["scale"][i].double().repeat(2)  # sx, sy, sx, sy
        xywh = torch.stack([(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height], -1) / scale
        want = torch.tensor([a["bbox"] for a in expected[image_id]], dtype=torch.float64).reshape(-1, 4)
        torch.testing.assert_close(xywh, want, atol=1e-3, rtol=0)
        labels = [dataset.category_ids[label] for label in batch["labels"][i, :n].tolist()]
        assert labels == [a["category_id"] for a in expected[image_id]]

    # Ground truth for evaluation: every annotation, crowd included, xyxy in original pixels, untouched.
    for i, image_id in enumerate(batch["image_id"].tolist()):
        anns_i = [a for a in anns if a["image_id"] == image_id]
        xyxy = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns_i)]
        torch.testing.assert_close(batch["gt_boxes"][i], torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4))
        assert batch["gt_iscrowd"][i].tolist() == [a.get("iscrowd", 0) for a in anns_i]
        assert [dataset.category_ids[k] for k in batch["gt_labels"][i].tolist()] == [a["category_id"] for a in anns_i]
        assert batch["gt_area"][i].tolist() == [a["bbox"][2] * a["bbox"][3] for a in anns_i]


def test_boxes_outside_the_image_are_clipped_and_empty_ones_dropped(tmp_path):
    anns = [
        {"image_id": 1, "category_id": 3, "bbox": [-4.0, 50.0, 20.0, 30.0]},  # sticks out left and bottom
        {"image_id": 1, "category_id": 7, "bbox": [10.0, 10.0, 0.0, 5.0]},  # zero width
        {"image_id": 1, "category_id": 12, "bbox": [70.0, 10.0, 5.0, 5.0]},  # entirely right of the image
    ]
    image_dir, path = _write_coco(tmp_path, [(1, "a.png", 64, 64)], anns)
    with pytest.warns(DataWarning) as caught:
        dataset = CocoDetection(image_dir, path)
    assert [str(w.message).split(": ", 1)[1].split(" of ")[0] for w in caught] == [
        "box 1 (annotation id=2)",
        "box 2 (annotation id=3)",
    ]
    assert dataset.problems.clipped == 1
    sample = dataset[0]
    assert sample["labels"].tolist() == [0]
    torch.testing.assert_close(sample["bboxes"][0], torch.tensor([8 / 64, 57 / 64, 16 / 64, 14 / 64]))


def test_coco_errors_name_the_file_and_the_value(tmp_path):
    image_dir, path = _write_coco(tmp_path, [(1, "a.png", 64, 64), (2, "broken.png", 64, 64)], [])
    (image_dir / "broken.png").write_bytes(b"not a png")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        CocoDetection(image_dir, tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="no_images"):
        CocoDetection(tmp_path / "no_images", path)
    # An unreadable image fails at construction (before training), naming the file.
    with pytest.raises(ValueError, match="broken.png: not an image file"):
        CocoDetection(image_dir, path)
    with pytest.warns(DataWarning, match="skipped 1 unusable image"):
        dataset = CocoDetection(image_dir, path, invalid_images="skip")
    assert len(dataset) == 1 and len(dataset.problems.skipped) == 1
    assert dataset[0]["bboxes"].shape == (0, 4) and dataset[0]["labels"].shape == (0,)  # no boxes is valid

    bad = [{"image_id": 1, "category_id": 3, "bbox": [1, 2, -3, 4], "id": 77, "area": 1.0}]
    _, path = _write_coco(tmp_path / "bad", [(1, "a.png", 64, 64)], bad)
    with pytest.warns(DataWarning, match=r"bad/annotations.json: box 0 \(annotation id=77\).*no area"):
        assert len(CocoDetection(image_dir, path)[0]["labels"]) == 0  # negative width: dropped with a warning
    _, path = _write_coco(
        tmp_path / "malformed", [(1, "a.png", 64, 64)], [{"image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]}]
    )
    data = json.loads(path.read_text())
    data["annotations"][0].update(bbox=[1, 2, "x", 4], id=78)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"malformed/annotations.json: annotation id=78 has bbox="):
        CocoDetection(image_dir, path)
    unknown = [{"image_id": 1, "category_id": 99, "bbox": [1, 2, 3, 4], "id": 5}]
    _, path = _write_coco(tmp_path / "unknown", [(1, "a.png", 64, 64)], unknown)
    with pytest.raises(ValueError, match="category_id=99"):
        CocoDetection(image_dir, path)
    _, path = _write_coco(tmp_path / "size", [(1, "a.png", 32, 64)], [])  # the file in image_dir is 64x64
    with pytest.raises(ValueError, match=r"a.png: the decoded image is 64x64 .* records 64x32"):
        CocoDetection(image_dir, path)


# --- transforms -----------------------------------------------------------------------------------------------


def test_image_size_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match="multiple of 32.*100"):
        build_eval_transform(100)
    with pytest.raises(ValueError, match="multiple of 32.*100"):
        build_train_transform(100)


def test_train_transform_output_size_and_valid_boxes():
    transform = build_train_transform(64)
    transform.set_random_seed(0)
    rng = np.random.default_rng(0)
    kept = 0
    for trial in range(40):
        height, width = int(rng.integers(40, 200)), int(rng.integers(40, 200))
        x1 = rng.uniform(0, width - 8, 5)
        y1 = rng.uniform(0, height - 8, 5)
        boxes = np.stack([x1, y1, x1 + rng.uniform(4, width - x1), y1 + rng.uniform(4, height - y1)], 1)
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        out = transform(image=image, bboxes=boxes.astype(np.float32), labels=np.arange(5))
        assert out["image"].shape == (64, 64, 3) and out["image"].dtype == np.uint8, trial
        assert out["scale"] == (1.0, 1.0)
        b = out["bboxes"]
        assert len(b) == len(out["labels"])
        assert (b >= 0).all() and (b[:, [0, 2]] <= 64).all() and (b[:, [1, 3]] <= 64).all(), trial
        assert (b[:, 2] - b[:, 0] >= 1).all() and (b[:, 3] - b[:, 1] >= 1).all(), trial
        kept += len(b)
    assert kept > 0


def test_train_transform_keeps_labels_aligned_with_boxes():
    # Each box is a solid patch of a colour unique to its label: after scaling, cropping and flipping, the
    # pixel at each output box centre must still have the colour of that box's label.
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], dtype=np.uint8)
    boxes = np.array([[4, 4, 40, 40], [60, 10, 100, 50], [10, 60, 50, 110], [70, 70, 116, 116]], np.float32)
    image = np.zeros((120, 120, 3), dtype=np.uint8)
    for (x1, y1, x2, y2), colour in zip(boxes.astype(int), colours, strict=True):
        image[y1:y2, x1:x2] = colour
    labels = np.array([2, 0, 3, 1])  # a permutation, so a shuffled label would point at the wrong colour
    transform = build_train_transform(64, color_jitter=0.0, min_visibility=0.5)
    transform.set_random_seed(1)
    checked = 0
    for _ in range(20):
        out = transform(image=image, bboxes=boxes, labels=labels)
        for (x1, y1, x2, y2), label in zip(out["bboxes"], out["labels"], strict=True):
            pixel = out["image"][int((y1 + y2) / 2), int((x1 + x2) / 2)].astype(int)
            expected = colours[list(labels).index(label)].astype(int)
            assert np.abs(pixel - expected).max() <= 40, (label, pixel, expected)
            checked += 1
    assert checked > 20

    # A single box that no crop can lose (no zoom, image already at the output size) keeps its label.
    keep_all = build_train_transform(64, scale_range=(1.0, 1.0), color_jitter=0.0)
    single = keep_all(image=np.zeros((64, 64, 3), np.uint8), bboxes=boxes[:1] / 2, labels=np.array([3]))
    assert single["labels"].tolist() == [3] and single["bboxes"].shape == (1, 4)


def test_horizontal_flip_mirrors_cx():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    boxes = np.array([[4.0, 8.0, 20.0, 40.0], [30.0, 2.0, 62.0, 12.0]], np.float32)
    kwargs = {"scale_range": (1.0, 1.0), "color_jitter": 0.0}
    same = build_train_transform(64, hflip_prob=0.0, **kwargs)(image=image, bboxes=boxes, labels=np.array([0, 1]))
    flip = build_train_transform(64, hflip_prob=1.0, **kwargs)(image=image, bboxes=boxes, labels=np.array([0, 1]))
    np.testing.assert_allclose(same["bboxes"], boxes, atol=1e-4)
    np.testing.assert_array_equal(flip["image"], image[:, ::-1])
    np.testing.assert_allclose(flip["bboxes"][:, [0, 2]], 64 - boxes[:, [2, 0]], atol=1e-4)
    np.testing.assert_allclose(flip["bboxes"][:, [1, 3]], boxes[:, [1, 3]], atol=1e-4)
    assert flip["labels"].tolist() == [0, 1]


# --- DataModule ---------------------------------------------------------------------------------------------


def _check_batch(batch: dict, batch_size: int, image_size: int, num_classes: int) -> None:
    assert batch["image"].shape == (batch_size, 3, image_size, image_size) and batch["image"].dtype == torch.float32
    assert 0 <= batch["image"].min() and batch["image"].max() <= 1
    depth = batch["bboxes"].shape[1]
    assert depth >= 1 and batch["bboxes"].shape == (batch_size, depth, 4) and batch["bboxes"].dtype == torch.float32
    assert batch["labels"].shape == (batch_size, depth) and batch["labels"].dtype == torch.int64
    assert batch["mask"].shape == (batch_size, depth) and batch["mask"].dtype == torch.float32
    assert batch["image_id"].shape == (batch_size,) and batch["image_id"].dtype == torch.int64
    assert batch["orig_size"].shape == (batch_size, 2) and batch["orig_size"].dtype == torch.int64
    assert batch["scale"].shape == (batch_size, 2) and batch["scale"].dtype == torch.float32
    real = batch["mask"].bool()
    assert ((batch["labels"][real] >= 0) & (batch["labels"][real] < num_classes)).all()
    assert (batch["bboxes"][real] >= 0).all() and (batch["bboxes"][real] <= 1).all()
    assert (batch["bboxes"][real][:, 2:] > 0).all()


def test_datamodule_shapes(tmp_path):
    dm = CenterNetDataModule(
        dataset="shapes",
        shapes_root=str(tmp_path),
        shapes_train_images=8,
        shapes_val_images=4,
        shapes_image_size=64,
        image_size=64,
        batch_size=3,
        num_workers=0,
    )
    assert dm.num_classes == 5 and dm.class_names[0] == "circle" and dm.category_ids == [1, 2, 3, 4, 5]
    assert list(tmp_path.iterdir()) == []  # nothing generated before prepare_data
    dm.prepare_data()
    dm.setup("fit")
    assert Path(dm.val_annotations).is_file() and dm.val_dataset.image_ids == [1, 2, 3, 4]
    train = list(dm.train_dataloader())
    assert len(train) == 2  # 8 images, batch 3, last partial batch dropped
    for batch in train:
        _check_batch(batch, 3, 64, dm.num_classes)
    val = list(dm.val_dataloader())
    assert [len(b["image_id"]) for b in val] == [3, 1]
    _check_batch(val[0], 3, 64, dm.num_classes)
    assert torch.cat([b["image_id"] for b in val]).tolist() == [1, 2, 3, 4]
    assert (val[0]["scale"] == 1.0).all() and (val[0]["orig_size"] == 64).all()


def test_datamodule_coco_categories_paths_and_worker_seeds(tmp_path):
    with pytest.raises(ValueError, match="train_annotations"):
        CenterNetDataModule(dataset="coco", image_size=64)
    with pytest.raises(ValueError, match="multiple of 32"):
        CenterNetDataModule(dataset="shapes", image_size=48)
    # Four copies of the same picture: two workers must still apply different random augmentations. (Four entries
    # of one file are an error: each would train the others' objects as background.)
    images = [(i, f"same{i}.png", 96, 96) for i in range(1, 5)]
    image_dir, path = _write_coco(
        tmp_path, images, [{"image_id": i, "category_id": 7, "bbox": [8, 8, 40, 40]} for i in range(1, 5)]
    )
    for i in range(2, 5):
        shutil.copyfile(image_dir / "same1.png", image_dir / f"same{i}.png")
    dm = CenterNetDataModule(
        dataset="coco", train_annotations=str(path), image_size=64, batch_size=1, num_workers=2, color_jitter=0.0
    )
    assert (dm.num_classes, dm.class_names, dm.category_ids) == (3, ["cat", "dog", "zebra"], [3, 7, 12])
    with pytest.raises(ValueError, match="train_images"):
        dm.setup("fit")
    dm = CenterNetDataModule(
        dataset="coco",
        train_images=str(image_dir),
        train_annotations=str(path),
        val_images=str(image_dir),
        val_annotations=str(path),
        image_size=64,
        batch_size=1,
        num_workers=2,
    )
    dm.setup("fit")
    torch.manual_seed(0)
    loader = dm.train_dataloader()
    batches = iter(loader)
    first_two = [next(batches)["image"], next(batches)["image"]]  # one from each worker
    assert not torch.equal(first_two[0], first_two[1])


def test_eval_letterbox_is_undone_exactly_when_the_short_side_rounds(tmp_path):
    """300x200 -> 128 px: the short side becomes round(85.33) = 85, so sy = 85/200, not 128/300."""
    anns = [{"image_id": 1, "category_id": 3, "bbox": [17.0, 150.5, 250.0, 49.5]}]
    image_dir, path = _write_coco(tmp_path, [(1, "odd.png", 200, 300)], anns)
    sample = CocoDetection(image_dir, path, transform=build_eval_transform(128))[0]
    assert sample["scale"] == (128 / 300, 85 / 200)
    assert (sample["image"][:, 85:, :] == 0).all() and (sample["image"][:, 84, :] != 0).any()
    cx, cy, w, h = (sample["bboxes"][0].double() * 128).tolist()
    sx, sy = sample["scale"]
    recovered = [(cx - w / 2) / sx, (cy - h / 2) / sy, w / sx, h / sy]
    assert recovered == pytest.approx([17.0, 150.5, 250.0, 49.5], abs=1e-3)
