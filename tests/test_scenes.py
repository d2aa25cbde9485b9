"""The built-in large-image scenes: many small objects, tight boxes, dense and sparse regions; the tiles demo."""

from __future__ import annotations

import numpy as np
import pytest

from centernet.data.scenes import SCENE_CLASSES, ensure_scenes_dataset, generate_scene


def test_scene_objects_are_small_tight_and_separate():
    scene = generate_scene(768, 0, "train", 0)
    assert scene.image.shape == (768, 768, 3) and scene.image.dtype == np.uint8
    boxes = scene.boxes  # (n, 4) COCO x, y, w, h
    assert len(boxes) >= 50 and set(scene.labels.tolist()) == set(range(len(SCENE_CLASSES)))
    assert boxes[:, 2:].min() >= 3 and boxes[:, 2:].max() <= 40
    assert (boxes[:, :2] >= 0).all() and (boxes[:, :2] + boxes[:, 2:] <= 768).all()
    assert (scene.areas <= boxes[:, 2] * boxes[:, 3]).all() and (scene.areas > 0).all()
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    overlap_w = np.minimum(x2[:, None], x2[None]) - np.maximum(x1[:, None], x1[None])
    overlap_h = np.minimum(y2[:, None], y2[None]) - np.maximum(y1[:, None], y1[None])
    touching = (overlap_w > 0) & (overlap_h > 0)
    assert touching.sum() == len(boxes)  # each box overlaps only itself
    # Dense and sparse regions: the busiest 128 px cell holds several times the objects of the average one.
    centres = ((boxes[:, :2] + boxes[:, 2:] / 2) // 128).astype(int)
    counts = np.bincount(centres[:, 1] * 6 + centres[:, 0], minlength=36)
    assert counts.max() >= 3 * counts.mean() and (counts == 0).sum() >= 1
    again = generate_scene(768, 0, "train", 0)
    assert np.array_equal(again.image, scene.image) and np.array_equal(again.boxes, scene.boxes)


def test_scene_boxes_are_the_drawn_pixels():
    scene = generate_scene(256, 3, "val", 1, objects=20)
    background = generate_scene(256, 3, "val", 1, objects=0).image.astype(int)
    changed = np.abs(scene.image.astype(int) - background).max(axis=2) > 40  # the objects' pixels (noise is 4)
    inside = np.zeros_like(changed)
    for x, y, w, h in scene.boxes.astype(int):
        inside[y : y + h, x : x + w] = True
    assert changed[~inside].sum() == 0  # nothing drawn outside the boxes


def test_scenes_dataset_is_coco(tmp_path):
    import json

    paths = ensure_scenes_dataset(tmp_path, num_train=1, num_val=1, side=256)
    coco = json.loads(paths.val_annotations.read_text())
    assert [c["name"] for c in coco["categories"]] == list(SCENE_CLASSES)
    assert coco["images"][0]["width"] == 256 and len(coco["annotations"]) >= 3
    assert ensure_scenes_dataset(tmp_path, num_train=1, num_val=1, side=256) == paths  # cached


def test_demo_task_option():
    from centernet.cli.demo import _task

    assert _task(["--task", "tiles", "--trainer.max_epochs=1"]) == ("tiles", ["--trainer.max_epochs=1"])
    assert _task(["--task=pose"]) == ("pose", [])
    assert _task(["--trainer.max_epochs=1", "--task=track"]) == ("track", ["--trainer.max_epochs=1"])
    assert _task([]) == ("detection", [])
    with pytest.raises(ValueError, match="--task"):
        _task(["--task", "pose3d"])
