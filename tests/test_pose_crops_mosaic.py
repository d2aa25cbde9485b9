"""Keypoints through native-resolution crops and the mosaic: joints follow their boxes' geometry exactly, joints
that leave the visible part become unlabelled, and joints are dropped with their boxes."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from centernet.data.coco import CocoDetection
from centernet.data.crops import NativeCrops
from centernet.data.datamodule import CenterNetDataModule
from centernet.data.mosaic import Mosaic
from centernet.data.stick_figures import STICK_JOINTS

JOINTS = ["centre", "top_left", "bottom_right"]


def _people(box: tuple[float, float, float, float]) -> list[list[float]]:
    """Joints of a person box: its centre, its top-left and its bottom-right corner, all labelled."""
    x1, y1, x2, y2 = box
    return [[(x1 + x2) / 2, (y1 + y2) / 2, 2], [x1, y1, 2], [x2, y2, 1]]


def _coco_people(root, boxes, size=(150, 200)):
    """A COCO keypoint dataset of one (height, width) image with one person per xyxy box."""
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), np.zeros((*size, 3), np.uint8))
    annotations = [
        {"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
         "keypoints": np.ravel(_people((x1, y1, x2, y2))).tolist()}
        for i, (x1, y1, x2, y2) in enumerate(boxes)
    ]  # fmt: skip
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": size[1], "height": size[0]}],
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "keypoints": JOINTS}],
    }
    (root / "a.json").write_text(json.dumps(data))
    return root, root / "a.json"


def test_native_crops_of_keypoint_data_keep_joints_on_their_boxes(tmp_path):
    images, annotations = _coco_people(tmp_path / "data", [(20, 20, 40, 50), (120, 60, 144, 84)])
    dataset = CocoDetection(images, annotations)
    dataset.crops = NativeCrops(64, scale_range=(1.0, 1.0), min_visibility=0.3)
    dataset.set_random_seed(0)
    whole, cut = 0, 0
    for _ in range(5):
        for index in range(len(dataset)):
            sample = dataset[index]
            boxes = sample["bboxes"].numpy() * 64  # (n, 4) cx, cy, w, h crop pixels
            joints = sample["keypoints"].numpy() * [64, 64, 1]  # (n, K, 3) crop pixels
            assert joints.shape == (len(boxes), 3, 3)
            for (cx, cy, w, h), person in zip(boxes, joints, strict=True):
                x1, y1, x2, y2 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
                labelled = person[:, 2] > 0
                assert (person[~labelled] == 0).all()
                if np.isclose([w, h], [20, 30]).all() or np.isclose([w, h], [24, 24]).all():  # the whole box
                    np.testing.assert_allclose(person, [[cx, cy, 2], [x1, y1, 2], [x2, y2, 1]], atol=0.5)
                    whole += 1
                else:  # cut by the crop: the joints still inside lie in the visible part of the box
                    assert not labelled.all()
                    inside = person[labelled, :2]
                    assert ((inside >= [x1 - 0.5, y1 - 0.5]) & (inside <= [x2 + 0.5, y2 + 0.5])).all()
                    cut += 1
    assert whole > 0 and cut > 0


def test_native_crops_zoom_and_shift_joints_as_their_boxes():
    image = np.zeros((200, 200, 3), np.uint8)
    box = np.array([[60.0, 60.0, 84.0, 90.0]], np.float32)
    # Centre, top-left corner, and a hand 30 px right of the box: a crop holding the box may leave the hand out.
    joints = np.array([[[72, 75, 2], [60, 60, 2], [114, 75, 1]]], np.float32)
    crops = NativeCrops(64, scale_range=(0.8, 1.25), object_bias=1.0, min_visibility=0.3)
    rng = np.random.default_rng(0)
    hands_in, hands_out = 0, 0
    for _ in range(60):
        crop, boxes, labels, kept = crops(image, box, np.array([0]), 0, rng, keypoints=joints)
        assert crop.shape == (64, 64, 3) and kept.shape == (len(boxes), 3, 3) and kept.dtype == np.float32
        if not len(boxes):
            continue
        (x1, y1, x2, y2), person = boxes[0].astype(np.float64), kept[0]
        scale = (x2 - x1) / 24
        if not (np.isclose(scale, (y2 - y1) / 30) and 0.8 - 1e-6 <= scale <= 1.25 + 1e-6):
            assert not (person[:, 2] > 0).all()  # the box is cut: so is one of its corner joints
            continue
        np.testing.assert_allclose(person[:2], [[(x1 + x2) / 2, (y1 + y2) / 2, 2], [x1, y1, 2]], atol=1e-3)
        hand = x1 + 54 * scale  # 54 px right of the box's left side, zoomed
        if hand <= 64:
            np.testing.assert_allclose(person[2], [hand, (y1 + y2) / 2, 1], atol=1e-3)
            hands_in += 1
        else:  # out of the crop: unlabelled, its box kept
            assert person[2].tolist() == [0, 0, 0]
            hands_out += 1
    assert hands_in > 0 and hands_out > 0
    assert len(crops(image, box, np.array([0]), 0, rng)) == 3  # box-only data: (crop, boxes, labels) as before


# (height, width), person box x1 y1 x2 y2, joints (centre, top-left corner, a hand outside the box). The second
# tile's hand lies past its image's right edge (data that skipped validation): it would land on the neighbouring
# tile, so it must be unlabelled there too, not only off the canvas.
_TILES = [
    ((64, 64), (10, 10, 30, 40), [[20, 25, 2], [10, 10, 2], [40, 25, 1]]),
    ((32, 32), (4, 4, 14, 20), [[9, 12, 2], [4, 4, 2], [36, 10, 2]]),
    ((128, 96), (20, 40, 60, 100), [[40, 70, 2], [20, 40, 2], [80, 70, 2]]),
    ((16, 32), (2, 2, 12, 14), [[7, 8, 2], [0, 0, 0], [28, 8, 1]]),
]


def _load_tile(index: int) -> tuple[np.ndarray, ...]:
    """One of :data:`_TILES`, its label the tile's index (so that a mosaic's box tells which tile it came from)."""
    size, box, joints = _TILES[index]
    return (np.zeros((*size, 3), np.uint8), np.array([box], np.float32), np.array([index]),
            np.array([joints], np.float32))  # fmt: skip


def test_mosaic_moves_joints_with_their_tile_and_unlabels_those_off_the_canvas():
    mosaic = Mosaic(64, p=1.0, min_visibility=0.25)
    mosaic.set_random_seed(0)
    exact, off = 0, 0
    for k in range(40):
        image, boxes, labels, joints = mosaic(k % 4, _load_tile, len(_TILES))
        assert image.shape == (128, 128, 3) and joints.shape == (len(boxes), 3, 3) and len(labels) == len(boxes)
        labelled = joints[..., 2] > 0
        points = joints[labelled][:, :2]  # (labelled joints, 2) canvas pixels
        assert (joints[~labelled] == 0).all() and ((points >= 0) & (points <= 128)).all()
        for (x1, y1, x2, y2), label, person in zip(boxes.astype(np.float64), labels, joints, strict=True):
            (height, width), (bx1, by1, bx2, by2), source = _TILES[label]
            scale = 64 / max(height, width)  # the tile's longer side to 64 px: exact for these sizes
            if not np.allclose([x2 - x1, y2 - y1], [(bx2 - bx1) * scale, (by2 - by1) * scale]):
                continue  # cut by the canvas: where its tile lies is not known here
            # The tile's part on the canvas, from where the whole box landed.
            tx, ty = x1 - bx1 * scale, y1 - by1 * scale
            window = (max(tx, 0), max(ty, 0), min(tx + width * scale, 128), min(ty + height * scale, 128))
            for (jx, jy, v), got in zip(source, person, strict=True):
                x, y = x1 + (jx - bx1) * scale, y1 + (jy - by1) * scale  # the offset to the box, scaled
                if v > 0 and window[0] <= x <= window[2] and window[1] <= y <= window[3]:
                    np.testing.assert_allclose(got, [x, y, v], atol=1e-4)
                    exact += 1
                else:
                    assert got.tolist() == [0, 0, 0]
                    off += v > 0
    assert exact > 40 and off > 0
    assert len(Mosaic(64, p=1.0)(0, lambda i: _load_tile(i)[:3], 4)) == 3  # box-only data: no fourth element


@pytest.mark.parametrize("options", [{"image_size": 128}, {"image_size": 64, "native_resolution": True}])
def test_stick_figures_train_with_mosaic_and_joints_stay_with_their_people(tmp_path, options):
    data = CenterNetDataModule(dataset="stick_figures", shapes_root=str(tmp_path), shapes_train_images=4,
                               shapes_val_images=2, batch_size=2, num_workers=0, mosaic=1.0, **options)  # fmt: skip
    assert data.mosaic is not None  # keypoint data with a mosaic was an error
    data.prepare_data()
    data.setup("fit")
    dataset = data.train_dataset
    dataset.set_random_seed(0)
    side, checked = options["image_size"], 0
    for index in list(range(len(dataset))) * 3:
        sample = dataset[index]
        boxes, joints = sample["bboxes"].numpy() * side, sample["keypoints"].numpy()  # boxes: cx, cy, w, h pixels
        assert boxes.shape == (len(boxes), 4) and joints.shape == (len(boxes), len(STICK_JOINTS), 3)
        joints = joints * [side, side, 1]
        for (cx, cy, w, h), person in zip(boxes, joints, strict=True):
            inside = person[person[:, 2] > 0, :2]
            low, high = np.array([cx - w / 2, cy - h / 2]) - 1.5, np.array([cx + w / 2, cy + h / 2]) + 1.5
            assert ((inside >= low) & (inside <= high)).all()  # within 1.5 px of the person's box
            checked += len(inside)
    assert checked > 50
    batch = next(iter(data.train_dataloader()))
    assert batch["keypoints"].shape[2:] == (len(STICK_JOINTS), 3)
