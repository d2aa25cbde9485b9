"""Keypoint data: COCO person-keypoints json and YOLO pose readers, the keypoint validation policy, augmentation
(joints move with the image, mirrors swap left and right, joints pushed out become unlabelled), collate, and the
generated stick-figure dataset."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
import yaml

from centernet.data.coco import parse_coco, read_keypoint_info
from centernet.data.collate import collate_detections
from centernet.data.datamodule import CenterNetDataModule
from centernet.data.keypoints import flip_pairs_from_names, flip_permutation
from centernet.data.records import DatasetError, Problems
from centernet.data.stick_figures import STICK_JOINTS, generate_stick_figure_image
from centernet.data.transforms import build_eval_transform, build_train_transform
from centernet.data.validation import DataWarning, validate_source
from centernet.data.yolo import parse_yolo, read_yolo_yaml

JOINTS = ["head", "left_hand", "right_hand"]


def _coco_keypoints(tmp_path, annotations, skeleton=((1, 2), (1, 3))):
    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((60, 80, 3), np.uint8))
    data = {
        "images": [{"id": 1, "file_name": "a.png", "width": 80, "height": 60}],
        "annotations": [{"id": i + 1, "image_id": 1, "category_id": 1, **a} for i, a in enumerate(annotations)],
        "categories": [{"id": 1, "name": "person", "keypoints": JOINTS, "skeleton": [list(e) for e in skeleton]}],
    }
    path = tmp_path / "keypoints.json"
    path.write_text(json.dumps(data))
    return images, path


def test_coco_keypoints_are_read_with_the_joints_metadata(tmp_path):
    images, path = _coco_keypoints(
        tmp_path,
        [
            {"bbox": [10, 10, 30, 40], "keypoints": [20, 15, 2, 12, 30, 1, 35, 31, 2], "num_keypoints": 3},
            {"bbox": [50, 5, 20, 20]},  # no keypoints: all unlabelled
        ],
    )
    info = read_keypoint_info(path)
    assert info == {"joint_names": JOINTS, "edges": [[0, 1], [0, 2]], "flip_pairs": [[1, 2]]}
    source = parse_coco(images, path, Problems())
    assert source.keypoints == info
    keypoints = source.records[0].keypoints
    assert keypoints.shape == (2, 3, 3)
    assert keypoints[0].tolist() == [[20, 15, 2], [12, 30, 1], [35, 31, 2]]
    assert (keypoints[1] == 0).all()


@pytest.mark.parametrize(
    ("keypoints", "message"),
    [
        ([20, 15, 2, 12, 30, 1], "has 6 keypoint values; expected 3 x 3 joints = 9"),
        ([20, 15, 2, 12, 30, 1, 35, 31, 5], "each must be 0, 1 or 2"),
        ("20 15 2", "expected a list of numbers"),
    ],
)
def test_malformed_coco_keypoints_are_errors_naming_the_file_and_annotation(tmp_path, keypoints, message):
    images, path = _coco_keypoints(tmp_path, [{"bbox": [10, 10, 30, 40], "keypoints": keypoints}])
    problems = Problems()
    parse_coco(images, path, problems)
    assert len(problems.errors) == 1
    assert str(path) in problems.errors[0] and "annotation id=1" in problems.errors[0] and message in problems.errors[0]


def test_keypoint_policy_unlabels_non_finite_and_outside_joints_with_a_warning(tmp_path):
    images, path = _coco_keypoints(
        tmp_path,
        [{"bbox": [10, 10, 30, 40], "keypoints": [20, 15, 2, 90, 30, 2, 80, 60, 2]}],  # x=90 > width 80
    )
    source = parse_coco(images, path, Problems())
    source.records[0].keypoints[0, 0, 0] = np.nan
    with pytest.warns(DataWarning) as caught:
        validated, problems = validate_source(source)
    messages = [str(w.message) for w in caught]
    assert any("joint 0 of annotation id=1" in m and "non-finite" in m for m in messages)
    assert any("joint 1 of annotation id=1" in m and "outside the 80x60 image" in m for m in messages)
    assert all(str(path) in m for m in messages)
    # Unlabelled, the object itself kept; the joint on the bottom-right corner is inside.
    assert validated.records[0].keypoints[0].tolist() == [[0, 0, 0], [0, 0, 0], [80, 60, 2]]
    assert len(validated.records[0]) == 1 and len(problems.dropped) == 2


def _yolo_pose(tmp_path, lines, extra=None):
    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images" / "train" / "a.png"), np.zeros((50, 100, 3), np.uint8))
    (tmp_path / "labels" / "train" / "a.txt").write_text("\n".join(lines) + "\n")
    data = {"path": str(tmp_path), "train": "images/train", "names": ["person"], "kpt_shape": [3, 3], **(extra or {})}
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_yolo_pose_lines_are_read_and_validated_into_pixels(tmp_path):
    path = _yolo_pose(tmp_path, ["0 0.5 0.5 0.4 0.6 0.5 0.3 2 0.4 0.6 1 0.0 0.0 0"], {"flip_idx": [0, 2, 1]})
    data = read_yolo_yaml(path)
    assert data.kpt_shape == (3, 3)
    assert data.keypoints["flip_pairs"] == [[1, 2]] and data.keypoints["joint_names"] == [
        "joint_0",
        "joint_1",
        "joint_2",
    ]
    source, _ = validate_source(parse_yolo(data, "train", Problems()))
    assert np.allclose(source.records[0].keypoints[0], [[50, 15, 2], [40, 30, 1], [0, 0, 0]])
    assert np.allclose(source.records[0].boxes[0], [30, 10, 70, 40])


def test_yolo_pose_row_with_the_wrong_count_is_an_error_naming_file_and_line(tmp_path):
    path = _yolo_pose(tmp_path, ["0 0.5 0.5 0.4 0.6 0.5 0.3 2 0.4 0.6 1 0.0 0.0 0", "0 0.5 0.5 0.4 0.6 0.5 0.3 2"])
    problems = Problems()
    parse_yolo(read_yolo_yaml(path), "train", problems)
    assert len(problems.errors) == 1
    assert "a.txt:2" in problems.errors[0] and "= 14 values, got 8" in problems.errors[0]
    with pytest.raises(ValueError, match="flip_idx"):
        read_yolo_yaml(_yolo_pose(tmp_path / "b", ["0 0.5 0.5 0.4 0.6 " + "0.5 0.5 2 " * 3], {"flip_idx": [1, 2, 0]}))


def test_flip_pairs_from_names():
    assert flip_pairs_from_names(["nose", "left_eye", "right_eye", "l_knee", "r_knee", "hip_L", "hip_R"]) == [
        [1, 2],
        [3, 4],
        [5, 6],
    ]


def _person(image_size=(64, 64)):
    image = np.zeros((*image_size, 3), np.uint8)
    boxes = np.array([[10, 10, 40, 50]], np.float32)
    keypoints = np.array([[[25, 12, 2], [12, 30, 2], [38, 31, 1]]], np.float32)  # head, left hand, right hand
    return image, boxes, keypoints


def test_a_mirror_moves_the_joints_and_swaps_left_and_right():
    transform = build_train_transform(64, scale_range=(1.0, 1.0), hflip_prob=1.0, color_jitter=0.0)
    transform.flip_permutation = flip_permutation({"joint_names": JOINTS, "flip_pairs": [[1, 2]]})
    image, boxes, keypoints = _person()
    out = transform(image=image, bboxes=boxes, labels=np.array([0]), keypoints=keypoints)
    assert np.allclose(out["bboxes"], [[24, 10, 54, 50]])
    # Mirrored x -> 64 - x; the joint labelled left hand is now the one at the image's right.
    assert np.allclose(out["keypoints"][0], [[39, 12, 2], [26, 31, 1], [52, 30, 2]])


def test_joints_pushed_out_of_the_image_become_unlabelled_and_follow_their_boxes():
    transform = build_train_transform(64, scale_range=(2.0, 2.0), hflip_prob=0.0, color_jitter=0.0, min_visibility=0.0)
    image, boxes, keypoints = _person()
    boxes = np.concatenate([boxes, [[50, 50, 60, 60]]]).astype(np.float32)
    keypoints = np.concatenate([keypoints, [[[55, 55, 2], [52, 58, 2], [0, 0, 0]]]]).astype(np.float32)
    transform.set_random_seed(3)
    for _ in range(10):
        out = transform(image=image, bboxes=boxes, labels=np.array([0, 1]), keypoints=keypoints)
        assert len(out["keypoints"]) == len(out["bboxes"])
        joints = out["keypoints"]
        labelled = joints[..., 2] > 0
        assert ((joints[..., :2] >= 0) & (joints[..., :2] <= 64)).all()
        assert (joints[~labelled] == 0).all()
        for box, label, person in zip(out["bboxes"], out["labels"], joints, strict=True):
            inside = person[person[:, 2] > 0, :2]
            assert ((inside >= box[:2] - 1e-3) & (inside <= box[2:] + 1e-3)).all(), label  # joints stay with their box
    assert labelled.sum() < 5  # the zoom-and-crop pushed some joints out


def test_eval_transform_scales_joints_and_collate_pads_them():
    image, boxes, keypoints = _person((100, 50))
    out = build_eval_transform(64)(image=image, bboxes=boxes, labels=np.array([0]), keypoints=keypoints)
    assert np.allclose(out["keypoints"][0, 0], [25 * 0.64, 12 * 0.64, 2])
    import torch

    samples = [
        {"image": torch.zeros(3, 8, 8), "bboxes": torch.rand(n, 4), "labels": torch.zeros(n, dtype=torch.long),
         "keypoints": torch.ones(n, 3, 3), "image_id": i, "orig_size": (8, 8), "scale": (1.0, 1.0)}
        for i, n in enumerate((2, 0))
    ]  # fmt: skip
    batch = collate_detections(samples)
    assert batch["keypoints"].shape == (2, 2, 3, 3)
    assert (batch["keypoints"][0] == 1).all() and (batch["keypoints"][1] == 0).all()


def test_stick_figures_are_deterministic_and_consistently_labelled():
    first = generate_stick_figure_image(128, 0, "train", 5)
    again = generate_stick_figure_image(128, 0, "train", 5)
    assert np.array_equal(first.image, again.image) and np.array_equal(first.keypoints, again.keypoints)
    visibilities, lefts_on_the_right = [], []
    for index in range(40):
        sample = generate_stick_figure_image(128, 0, "val", index)
        assert len(sample.boxes) >= 1
        joints = sample.keypoints
        visibilities += joints[..., 2].ravel().tolist()
        labelled = joints[..., 2] > 0
        assert ((joints[..., :2] >= 0) & (joints[..., :2] <= 128))[labelled].all()
        assert (joints[~labelled][:, :2] == 0).all()
        shoulders = labelled[:, 2] & labelled[:, 3]
        lefts_on_the_right += (joints[shoulders, 2, 0] > joints[shoulders, 3, 0]).tolist()
    counts = np.bincount(np.asarray(visibilities, dtype=int), minlength=3)
    assert counts[0] > 0 and counts[1] > 0 and counts[2] > counts[1]  # some invisible, some occluded, most visible
    assert all(lefts_on_the_right)  # the figures face the camera


def test_stick_figure_data_module_links_the_joints_and_batches_keypoints(tmp_path):
    data = CenterNetDataModule(
        dataset="stick_figures",
        shapes_root=str(tmp_path),
        shapes_train_images=4,
        shapes_val_images=2,
        image_size=128,
        batch_size=2,
        num_workers=0,
    )
    assert data.task_data["joint_names"] == list(STICK_JOINTS) and [2, 3] in data.task_data["flip_pairs"]
    data.prepare_data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # the generated data needs no repair
        data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["keypoints"].shape[2:] == (len(STICK_JOINTS), 3)
    assert ((batch["keypoints"][..., :2] >= 0) & (batch["keypoints"][..., :2] <= 1)).all()
    val = next(iter(data.val_dataloader()))
    assert val["gt_keypoints"][0].shape[1:] == (len(STICK_JOINTS), 3)
    assert CenterNetDataModule(dataset="stick_figures", mosaic=0.5).mosaic is not None  # joints go through mosaics
    with pytest.raises(DatasetError):
        pass_through = _broken_split(tmp_path)
        CenterNetDataModule(dataset="coco", train_annotations=str(pass_through), val_annotations=str(pass_through),
                            train_images=str(tmp_path), val_images=str(tmp_path)).setup("fit")  # fmt: skip


def _broken_split(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "missing.png"}],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "keypoints": [1]}],
                "categories": [{"id": 1, "name": "person", "keypoints": JOINTS}],
            }
        )
    )
    return path
