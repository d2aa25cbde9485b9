"""The data validation policy, case by case: boxes, unusable files, colour modes, EXIF, no cap, nothing lost."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import tiny_network
from helpers.writers import noise_item, write_coco, write_voc, write_yolo
from PIL import Image

from centernet.data import (
    CenterNetDataModule,
    DatasetError,
    DataWarning,
    ImageFileError,
    decode_rgb,
    inspect_image,
)

NAMES = ["cat", "dog"]


def _coco_module(image_dir: Path, path: Path, **kwargs) -> CenterNetDataModule:
    paths = {"train_images": str(image_dir), "train_annotations": str(path)}
    paths.update(val_images=str(image_dir), val_annotations=str(path))
    return CenterNetDataModule(dataset="coco", image_size=64, batch_size=2, num_workers=0, **paths, **kwargs)


# --- boxes ------------------------------------------------------------------------------------------------------


def test_clipped_boxes_are_counted_and_bad_boxes_dropped_with_a_warning_naming_file_and_index(tmp_path):
    item = noise_item("a", 32, 64, [(-5, 2, 10, 12), (3, 3, 9, 9), (60, 20, 80, 40), (70, 2, 80, 9)], [0, 1, 0, 1])
    path = write_yolo(tmp_path, {"train": [item], "val": [item]}, NAMES)
    labels = tmp_path / "labels" / "train" / "a.txt"
    lines = labels.read_text().splitlines()
    lines.insert(2, "1 nan 0.5 0.1 0.1")  # line 3, box index 2
    labels.write_text("\n".join(lines) + "\n")
    dm = CenterNetDataModule(dataset="yolo", yolo_data=str(path), image_size=64, num_workers=0, batch_size=1)
    with pytest.warns(DataWarning) as caught:
        dm.setup("fit")
    messages = [str(w.message) for w in caught]
    assert any(m.startswith(f"{labels}: box 2 (line 3) of a.png") and "non-finite" in m for m in messages)
    assert any(m.startswith(f"{labels}: box 4 (line 5) of a.png") and "no area inside" in m for m in messages)
    train = dm.problems["train"]
    assert train.clipped == 2 and len(train.dropped) == 2  # (-5..10) and (60..80) clipped; NaN and outside dropped
    record = dm.train_dataset.source.records[0]
    np.testing.assert_allclose(record.boxes, [[0, 2, 10, 12], [3, 3, 9, 9], [60, 20, 64, 32]])
    assert record.labels.tolist() == [0, 1, 0] and record.refs == ["line 1", "line 2", "line 4"]


def test_unknown_classes_are_errors_naming_the_file(tmp_path):
    item = noise_item("a", 32, 32, [(1, 1, 9, 9)], [0])
    path = write_yolo(tmp_path / "yolo", {"train": [item]}, NAMES)
    (tmp_path / "yolo" / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n")
    dm = CenterNetDataModule(dataset="yolo", yolo_data=str(path), image_size=32, num_workers=0)
    with pytest.raises(DatasetError, match=r"labels/train/a.txt:2: class 7 is not in the names"):
        dm.setup("fit")
    images, xml = write_voc(tmp_path / "voc", [item], NAMES)
    dm = CenterNetDataModule(
        dataset="voc", voc_classes=["dog"], train_images=str(images), train_annotations=str(xml), image_size=32
    )
    with pytest.raises(DatasetError, match=r"a.xml: object 0 has class name 'cat'"):
        dm.setup("fit")


# --- unusable files ---------------------------------------------------------------------------------------------


def _corrupt_dataset(tmp_path: Path) -> tuple[Path, Path, dict[str, Path]]:
    items = [noise_item(name, 48, 64, [(4, 4, 20, 20)], [0], seed=i) for i, name in enumerate("abcdef")]
    image_dir, path = write_coco(tmp_path, items, NAMES)
    data = json.loads(path.read_text())
    for image in data["images"]:
        image["file_name"] = image["file_name"].replace(".png", ".jpg")
    path.write_text(json.dumps(data))
    rng = np.random.default_rng(0)
    for image in data["images"]:
        cv2.imwrite(str(image_dir / image["file_name"]), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    kinds = ("truncated", "empty", "text", "missing")
    bad = {kind: image_dir / f"{name}.jpg" for kind, name in zip(kinds, "bcde", strict=True)}
    full = bad["truncated"].read_bytes()
    bad["truncated"].write_bytes(full[: len(full) // 2])
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("this is not a picture\n")
    bad["missing"].unlink()
    return image_dir, path, bad


def test_unusable_image_files_are_errors_before_training_or_skipped_and_counted(tmp_path):
    image_dir, path, bad = _corrupt_dataset(tmp_path)
    expected = {
        "truncated": "truncated or corrupt image",
        "empty": "zero-byte file",
        "text": "not an image file",
        "missing": "image file not found",
    }
    for kind, file in bad.items():
        with pytest.raises(ImageFileError, match=expected[kind]):
            inspect_image(file)
    dm = _coco_module(image_dir, path)
    with pytest.raises(DatasetError) as error:
        dm.setup("fit")
    assert len(error.value.errors) == 4
    for kind, message in zip(bad, error.value.errors, strict=True):
        assert message.startswith(f"{bad[kind]}: {expected[kind]}"), message
    assert dm.train_dataset is None  # nothing was built: the error comes before any DataLoader

    dm = _coco_module(image_dir, path, invalid_images="skip")
    with pytest.warns(DataWarning, match="skipped 4 unusable image"):
        dm.setup("fit")
    assert len(dm.problems["train"].skipped) == 4 and len(dm.train_dataset) == 2
    ids = torch.cat([batch["image_id"] for batch in dm.val_dataloader()]).tolist()
    assert ids == [1, 6]  # a.jpg and f.jpg


def test_colour_modes_become_8_bit_rgb(tmp_path):
    rng = np.random.default_rng(0)
    gray16 = rng.integers(0, 65536, (8, 12), dtype=np.uint16)
    bgr16 = rng.integers(0, 65536, (8, 12, 3), dtype=np.uint16)
    rgba = rng.integers(0, 256, (8, 12, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (8, 12), dtype=np.uint8)
    indices = rng.integers(0, 4, (8, 12), dtype=np.uint8)
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "gray16.png"), gray16)
    cv2.imwrite(str(tmp_path / "bgr16.png"), bgr16)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    paletted = Image.fromarray(indices, "P")
    paletted.putpalette(palette.reshape(-1).tolist())
    paletted.save(tmp_path / "palette.png")
    expected = {
        "gray16.png": np.repeat((gray16 >> 8).astype(np.uint8)[..., None], 3, axis=2),
        "bgr16.png": (bgr16 >> 8).astype(np.uint8)[..., ::-1],
        "rgba.png": rgba[..., :3],
        "gray.png": np.repeat(gray[..., None], 3, axis=2),
        "palette.png": palette[indices],
    }
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I;16")
    for name, want in expected.items():
        assert inspect_image(tmp_path / name).width == 12
        got = decode_rgb(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == (8, 12, 3), name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_exif_orientation_is_ignored_and_a_rotated_annotation_size_is_reported(tmp_path):
    stored = np.zeros((32, 48, 3), dtype=np.uint8)
    stored[:, :24] = (255, 0, 0)  # left half red, right half blue, as stored
    stored[:, 24:] = (0, 0, 255)
    item = noise_item("r", 32, 48, [(2, 2, 20, 30)], [0])
    image_dir, path = write_coco(tmp_path, [item], NAMES)
    data = json.loads(path.read_text())
    data["images"][0]["file_name"] = "r.jpg"
    path.write_text(json.dumps(data))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(stored).save(image_dir / "r.jpg", exif=exif, quality=95)
    assert inspect_image(image_dir / "r.jpg").orientation == 6

    dm = _coco_module(image_dir, path)
    dm.setup("fit")
    assert dm.problems["train"].exif_rotated == [str(image_dir / "r.jpg")]
    sample = dm.val_dataset[0]
    assert sample["orig_size"] == (32, 48)  # the stored size, not the displayed 48x32
    image = decode_rgb(image_dir / "r.jpg")
    assert image.shape == (32, 48, 3) and image[16, 4, 0] > 200 and image[16, 44, 2] > 200  # not rotated

    data["images"][0].update(width=32, height=48)  # annotated on the rotated (displayed) image
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"r.jpg: the decoded image is 48x32 .* records 32x48 .*EXIF orientation 6"):
        _coco_module(image_dir, path).setup("fit")


# --- no cap, nothing lost ---------------------------------------------------------------------------------------


def test_an_image_with_500_boxes_trains_with_all_500(tmp_path):
    boxes = [(4 * (i % 25) + 1, 6 * (i // 25) + 1, 4 * (i % 25) + 4, 6 * (i // 25) + 6) for i in range(500)]
    item = noise_item("dense", 128, 128, boxes, [i % 2 for i in range(500)])
    image_dir, path = write_coco(tmp_path, [item, noise_item("other", 128, 128, [(1, 1, 30, 30)], [1])], NAMES)
    dm = CenterNetDataModule(
        dataset="coco",
        train_images=str(image_dir),
        train_annotations=str(path),
        val_images=str(image_dir),
        val_annotations=str(path),
        image_size=128,
        batch_size=2,
        num_workers=0,
        scale_range=(1.0, 1.0),  # no zoom: no crop can remove a box
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["bboxes"].shape[1] == 500 and sorted(batch["mask"].sum(1).tolist()) == [1, 500]
    assert next(iter(dm.val_dataloader()))["mask"].sum() == 501
    model = tiny_network(2)
    losses = model.compute_loss(model(batch), batch)
    assert torch.isfinite(losses["total"])


def _random_items(seed: int) -> list:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(6):
        height, width = int(rng.integers(40, 120)), int(rng.integers(40, 120))
        boxes, labels = [], []
        for _ in range(int(rng.integers(0, 12))):
            x1, y1 = rng.integers(-10, width), rng.integers(-10, height)
            boxes.append((int(x1), int(y1), int(x1 + rng.integers(-3, 40)), int(y1 + rng.integers(-3, 40))))
            labels.append(int(rng.integers(0, 2)))
        items.append(noise_item(f"im{i}", height, width, boxes, labels, seed=i))
    return items


def _valid_boxes_in_the_files(items) -> list[tuple[int, int, tuple[float, ...]]]:
    """Every valid box of the source, clipped: (image index, label, x1 y1 x2 y2)."""
    valid = []
    for index, item in enumerate(items):
        height, width = item.image.shape[:2]
        for (x1, y1, x2, y2), label in zip(item.boxes, item.labels, strict=True):
            c = (max(x1, 0), max(y1, 0), min(x2, width), min(y2, height))
            if c[2] > c[0] and c[3] > c[1]:
                valid.append((index, label, tuple(float(v) for v in c)))
    return valid


@pytest.mark.parametrize("kind", ["coco", "voc", "yolo"])
def test_every_valid_box_in_the_files_is_found_in_the_batches(tmp_path, kind):
    items = _random_items(seed=3)
    expected = _valid_boxes_in_the_files(items)
    assert len(expected) > 20 and sum(len(item.boxes) for item in items) > len(expected)  # some are invalid
    if kind == "coco":
        image_dir, path = write_coco(tmp_path, items, NAMES)
        dm = _coco_module(image_dir, path)
    elif kind == "voc":
        image_dir, xml = write_voc(tmp_path, items, NAMES)
        dm = CenterNetDataModule(
            dataset="voc", voc_classes=NAMES, val_images=str(image_dir), val_annotations=str(xml), image_size=64
        )
    else:
        path = write_yolo(tmp_path, {"val": items}, NAMES)
        dm = CenterNetDataModule(dataset="yolo", yolo_data=str(path), image_size=64, num_workers=0)
    dm.batch_size = dm.val_batch_size = 4
    with pytest.warns(DataWarning):  # the invalid ones are dropped with warnings
        dm.setup("validate")
    found = []
    for batch in dm.val_dataloader():
        size = batch["image"].shape[-1]
        for i in range(len(batch["image_id"])):
            n = int(batch["mask"][i].sum())
            cx, cy, w, h = (batch["bboxes"][i, :n].double() * size).unbind(-1)
            sx, sy = batch["scale"][i].double().tolist()
            xyxy = torch.stack([(cx - w / 2) / sx, (cy - h / 2) / sy, (cx + w / 2) / sx, (cy + h / 2) / sy], -1)
            for box, label in zip(xyxy.tolist(), batch["labels"][i, :n].tolist(), strict=True):
                found.append((int(batch["image_id"][i]) - 1, label, box))
    assert len(found) == len(expected)
    remaining = list(found)
    for index, label, box in expected:
        match = next(
            (f for f in remaining if f[:2] == (index, label) and np.allclose(f[2], box, atol=0.05)),
            None,
        )
        assert match is not None, (index, label, box)
        remaining.remove(match)
