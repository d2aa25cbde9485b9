"""Tests of the pose task: encode -> decode round trip, snapping, flip test-time augmentation, the criterion and
COCO keypoint evaluation (against pycocotools)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centernet.boxes import Letterbox, cxcywh_to_xyxy, relative_to_absolute
from centernet.tasks import build_task
from centernet.tasks.detection.targets import render_targets
from centernet.tasks.pose.config import PoseConfig
from centernet.tasks.pose.decode import decode_poses
from centernet.tasks.pose.skeleton import Skeleton
from centernet.tasks.pose.targets import render_pose_targets

STRIDE = 4
HEIGHT, WIDTH = 96, 128
# Four joints: a head, a left and a right hand, a tail (mirrors onto itself).
SKELETON = Skeleton.from_names(["head", "left_hand", "right_hand", "tail"], [(0, 1), (0, 2), (0, 3)])


def _people():
    """People on a 96 x 128 image: boxes (N, D, 4) relative cxcywh, keypoints (N, D, 4, 3) relative, mask (N, D).

    Image 0: a person with an unlabelled joint, one whose joints touch the left, right and bottom borders, and two
    people sharing a centre cell (rows 2 and 3, the later row wins that cell). Image 1: one person and padding.
    """
    boxes = torch.zeros(2, 4, 4)
    keypoints = torch.zeros(2, 4, 4, 3)
    mask = torch.zeros(2, 4)
    boxes[0, 0] = torch.tensor([0.3, 0.35, 0.2, 0.4])
    keypoints[0, 0] = torch.tensor([[0.3, 0.2, 2], [0.23, 0.4, 2], [0.37, 0.41, 1], [0.0, 0.0, 0]])  # tail unlabelled
    boxes[0, 1] = torch.tensor([0.5, 0.75, 1.0, 0.5])
    keypoints[0, 1] = torch.tensor([[0.52, 0.55, 2], [0.0, 0.8, 2], [1.0, 0.8, 2], [0.5, 1.0, 2]])  # on the borders
    boxes[0, 2] = torch.tensor([0.8113, 0.3013, 0.2, 0.3])
    keypoints[0, 2] = torch.tensor([[0.8, 0.2, 2], [0.74, 0.35, 2], [0.87, 0.34, 2], [0.81, 0.44, 2]])
    boxes[0, 3] = torch.tensor([0.8117, 0.3017, 0.3, 0.5])  # the same centre cell as row 2
    keypoints[0, 3] = torch.tensor([[0.82, 0.1, 2], [0.7, 0.3, 2], [0.9, 0.31, 2], [0.83, 0.5, 2]])
    mask[0] = 1
    boxes[1, 0] = torch.tensor([0.55, 0.45, 0.25, 0.5])
    keypoints[1, 0] = torch.tensor([[0.56, 0.25, 2], [0.47, 0.5, 2], [0.63, 0.52, 2], [0.55, 0.66, 2]])
    mask[1, 0] = 1
    boxes[1, 1:] = torch.rand(3, 4)  # padding rows hold garbage that must be ignored
    keypoints[1, 1:] = torch.rand(3, 4, 3) + 0.5
    return boxes, keypoints, mask


def _logit(heatmap: torch.Tensor) -> torch.Tensor:
    return torch.logit(heatmap.clamp(1e-6, 1 - 1e-6))


def _perfect_maps(boxes, keypoints, mask):
    """The maps a perfect network predicts: targets at their cells (the later row wins a shared cell)."""
    num_images, num_rows, num_joints, _ = keypoints.shape
    out_h, out_w = HEIGHT // STRIDE, WIDTH // STRIDE
    people = render_targets(boxes, torch.zeros(num_images, num_rows, dtype=torch.long), mask, 1, (out_h, out_w))
    joints = render_pose_targets(boxes, keypoints, mask, (out_h, out_w))
    size = torch.zeros(num_images, 2, out_h * out_w)
    offset = torch.zeros(num_images, 2, out_h * out_w)
    regression = torch.zeros(num_images, 2 * num_joints, out_h * out_w)
    joint_offset = torch.zeros(num_images, 2, out_h * out_w)
    for n, d in mask.nonzero().tolist():
        cell = people.indices[n, d]
        size[n, :, cell], offset[n, :, cell] = people.size[n, d], people.offset[n, d]
        regression[n, :, cell] = joints.joints[n, d].reshape(-1)
        for k in range(num_joints):
            if joints.joint_mask[n, d, k]:
                row = d * num_joints + k
                joint_offset[n, :, joints.joint_indices[n, row]] = joints.joint_offset[n, row]
    shape = (num_images, -1, out_h, out_w)
    return {
        "heatmap": _logit(people.heatmap),
        "size": size.view(shape),
        "offset": offset.view(shape),
        "joints": regression.view(shape),
        "joint_heatmap": _logit(joints.joint_heatmap),
        "joint_offset": joint_offset.view(shape),
    }


def _decoded_people(decoded, n):
    keep = decoded["scores"][n] > 0.5
    return decoded["boxes"][n][keep], decoded["keypoints"][n][keep]


@pytest.mark.parametrize("snap", [True, False])
def test_encode_decode_round_trip(snap):
    boxes, keypoints, mask = _people()
    decoded = decode_poses(_perfect_maps(boxes, keypoints, mask), STRIDE, 20, PoseConfig(snap=snap))
    gt_boxes = cxcywh_to_xyxy(relative_to_absolute(boxes, (HEIGHT, WIDTH)))  # (N, D, 4) input pixels
    gt_points = keypoints[..., :2] * torch.tensor([WIDTH, HEIGHT])  # (N, D, K, 2) input pixels
    expected = {0: [0, 1, 3], 1: [0]}  # row 2 shares its centre cell with row 3, which wins it
    for n, rows in expected.items():
        found_boxes, found_joints = _decoded_people(decoded, n)
        assert len(found_boxes) == len(rows)
        for d in rows:
            match = (found_boxes - gt_boxes[n, d]).abs().amax(-1) < 1e-3
            assert match.sum() == 1, (n, d)
            joints = found_joints[match][0]  # (K, 3)
            labelled = keypoints[n, d, :, 2] > 0
            assert torch.allclose(joints[labelled, :2], gt_points[n, d][labelled], atol=1e-3), (n, d)
            assert torch.allclose(joints[labelled, 2], torch.ones(int(labelled.sum())), atol=1e-4)
            assert (joints[~labelled, 2] < 0.5).all()  # an unlabelled joint has no peak of its own


def test_snapping_corrects_a_coarse_regression_and_stays_in_the_box():
    boxes, keypoints, mask = _people()
    maps = _perfect_maps(boxes, keypoints, mask)
    maps["joints"] = maps["joints"] + 0.8  # every regressed joint 0.8 cells (3.2 px) off along x and y
    gt = keypoints[1, 0, :, :2] * torch.tensor([WIDTH, HEIGHT])
    snapped = _decoded_people(decode_poses(maps, STRIDE, 20, PoseConfig(snap=True)), 1)[1][0]
    regressed = _decoded_people(decode_poses(maps, STRIDE, 20, PoseConfig(snap=False)), 1)[1][0]
    assert torch.allclose(snapped[:, :2], gt, atol=1e-3)
    assert torch.allclose(regressed[:, :2], gt + 3.2, atol=1e-3)
    # A peak outside the person's box is never taken: with a box of zero size nothing snaps.
    maps["size"] = torch.zeros_like(maps["size"])
    unsnapped = _decoded_people(decode_poses(maps, STRIDE, 20, PoseConfig(snap=True)), 1)[1][0]
    assert torch.allclose(unsnapped[:, :2], gt + 3.2, atol=1e-3)


def _mirror(boxes, keypoints):
    """The people of the horizontally mirrored images: x -> 1 - x, left and right joints swapped."""
    boxes, keypoints = boxes.clone(), keypoints.clone()
    boxes[..., 0] = 1 - boxes[..., 0]
    keypoints[..., 0] = torch.where(keypoints[..., 2] > 0, 1 - keypoints[..., 0], 0.0)
    return boxes, keypoints[:, :, SKELETON.flip_permutation()]


def test_flip_merges_a_mirrored_image_into_the_original_skeleton():
    boxes, keypoints, mask = _people()
    # Points on a cell boundary (x exactly 0, 0.5 or 1) mirror onto a boundary of another cell: move them inside.
    keypoints[0, 1, :, 0] = keypoints[0, 1, :, 0].clamp(0.01, 0.99)
    boxes[0, 1, 0], keypoints[0, 1, 3, 0] = 0.51, 0.505
    mirrored_boxes, mirrored_keypoints = _mirror(boxes, keypoints)
    maps = _perfect_maps(boxes, keypoints, mask)
    mirrored = _perfect_maps(mirrored_boxes, mirrored_keypoints, mask)
    task = build_task("pose", data=SKELETON)
    both = {key: torch.cat([maps[key], mirrored[key]]) for key in maps}
    merged = task.merge_flipped(both, 2)
    for key in ("heatmap", "joint_heatmap", "size"):
        assert torch.allclose(merged[key], maps[key], atol=1e-4), key
    for snap in (False, True):  # without snapping the joints are the merged regression's alone
        expected = decode_poses(maps, STRIDE, 20, PoseConfig(snap=snap))
        got = decode_poses(merged, STRIDE, 20, PoseConfig(snap=snap))
        assert torch.allclose(got["boxes"], expected["boxes"], atol=1e-3)
        labelled = expected["keypoints"][..., 2] > 0.5  # (unlabelled joints regress to nothing in particular)
        assert labelled.sum() == 3 + 4 + 4 + 4
        assert torch.allclose(got["keypoints"][labelled], expected["keypoints"][labelled], atol=1e-3)
    # Without the left/right swap, the hands would trade places.
    unswapped = build_task("pose", data=Skeleton(SKELETON.joint_names, SKELETON.edges)).merge_flipped(both, 2)
    assert not torch.allclose(unswapped["joint_heatmap"], maps["joint_heatmap"], atol=1e-2)


def test_criterion_is_zero_where_the_regression_is_perfect_and_masks_unlabelled_joints():
    boxes, keypoints, mask = _people()
    task = build_task("pose", data=SKELETON)
    criterion = task.build_criterion(1, STRIDE)
    maps = _perfect_maps(boxes[1:], keypoints[1:], mask[1:])
    batch = {"bboxes": boxes[1:], "keypoints": keypoints[1:], "mask": mask[1:], "labels": torch.zeros(1, 4).long()}
    losses = criterion(maps, batch)
    for name in ("size", "offset", "joints", "joint_offset"):
        assert float(losses[name]) < 1e-6, name
    # An unlabelled joint's regression is free: changing it changes no loss.
    keypoints[1, 0, 3, 2] = 0
    maps["joints"][:, 6:] += 5.0  # the tail's (dx, dy) everywhere
    losses = criterion(maps, {**batch, "keypoints": keypoints[1:]})
    assert float(losses["joints"]) < 1e-6
    keypoints[1, 0, 3, 2] = 2
    assert float(criterion(maps, {**batch, "keypoints": keypoints[1:]})["joints"]) == pytest.approx(5.0 * 2 / 8)


def test_keypoints_map_back_to_original_pixels_with_the_people():
    task = build_task("pose", data=SKELETON)
    letterbox = Letterbox.fit((200, 100), 128)  # scale 0.64
    one = {
        "boxes": torch.tensor([[10.0, 20.0, 50.0, 90.0]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([0]),
        "keypoints": torch.tensor([[[32.0, 64.0, 0.8], [0.0, 0.0, 0.1], [64.0, 128.0, 0.5], [200.0, 10.0, 0.2]]]),
    }
    out = task.to_original(one, letterbox)
    assert torch.allclose(out["keypoints"][0, 0], torch.tensor([50.0, 100.0, 0.8]))
    assert torch.allclose(out["keypoints"][0, 3], torch.tensor([100.0, 15.625, 0.2]))  # clipped to the image
    selected = task.select({**out, "scores": torch.tensor([0.9])}, 0.5, 10, 0.5)
    assert torch.equal(selected["keypoints"], out["keypoints"])
    result = task.result(selected, ["person"], [1], (200, 100))
    entry = result.to_coco(7)[0]
    assert entry["keypoints"][:3] == [50.0, 100.0, 0.8] and len(entry["keypoints"]) == 12
    line = result.to_yolo()[0].split()
    assert len(line) == 1 + 4 + 4 * 3 and float(line[5]) == pytest.approx(0.5) and float(line[6]) == 0.5


def _random_keypoint_dataset(seed: int):
    """A COCO keypoints json with 5 joints and noisy results of it (with misses and false positives)."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, 9):
        images.append({"id": image_id, "width": 640, "height": 480})
        for _ in range(rng.integers(0, 4)):
            w, h = rng.uniform(30, 300), rng.uniform(40, 300)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            joints = np.stack([rng.uniform(x, x + w, 5), rng.uniform(y, y + h, 5), rng.choice([0, 1, 2], 5)], 1)
            joints[joints[:, 2] == 0, :2] = 0
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x, y, w, h],
                    "area": w * h * 0.6,
                    "iscrowd": 0,
                    "keypoints": joints.reshape(-1).tolist(),
                    "num_keypoints": int((joints[:, 2] > 0).sum()),
                }
            )
            if rng.random() < 0.85:
                noisy = joints.copy()
                noisy[:, :2] += rng.normal(0, rng.uniform(1, 25), (5, 2))
                noisy[:, 2] = rng.uniform(0, 1, 5)
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": [x, y, w, h],
                        "score": float(rng.uniform(0.1, 1)),
                        "keypoints": noisy.reshape(-1).tolist(),
                    }
                )
        for _ in range(rng.integers(0, 2)):  # a false positive
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [10.0, 10.0, 50.0, 80.0],
                    "score": float(rng.uniform(0, 0.5)),
                    "keypoints": np.concatenate([rng.uniform(0, 400, (5, 2)), np.ones((5, 1))], 1).reshape(-1).tolist(),
                }
            )
    gt = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    return gt, results


def test_keypoint_evaluation_equals_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from centernet.evaluation import KEYPOINT_METRIC_NAMES
    from centernet.tasks.pose.evaluator import PoseEvaluator

    gt, results = _random_keypoint_dataset(0)
    sigmas = [0.03, 0.05, 0.07, 0.09, 0.11]
    evaluator = PoseEvaluator(["person"], [1], sigmas)
    for image in gt["images"]:
        annotations = [a for a in gt["annotations"] if a["image_id"] == image["id"]]
        detections = [r for r in results if r["image_id"] == image["id"]]
        xywh = np.array([a["bbox"] for a in annotations]).reshape(-1, 4)
        det_xywh = np.array([r["bbox"] for r in detections]).reshape(-1, 4)
        ground_truth = {
            "boxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1),
            "labels": np.zeros(len(annotations), np.int64),
            "iscrowd": np.zeros(len(annotations), np.int64),
            "area": np.array([a["area"] for a in annotations]),
            "keypoints": np.array([a["keypoints"] for a in annotations]).reshape(-1, 5, 3),
        }
        result = {
            "boxes": np.concatenate([det_xywh[:, :2], det_xywh[:, :2] + det_xywh[:, 2:]], 1),
            "scores": np.array([r["score"] for r in detections]),
            "labels": np.zeros(len(detections), np.int64),
            "keypoints": np.array([r["keypoints"] for r in detections]).reshape(-1, 5, 3),
        }
        evaluator.update(image["id"], (480, 640), ground_truth, result)
    ours = evaluator.compute().metrics

    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    reference = COCOeval(coco, coco.loadRes(results), iouType="keypoints")
    reference.params.kpt_oks_sigmas = np.array(sigmas)
    reference.evaluate()
    reference.accumulate()
    reference.summarize()
    assert 0.05 < reference.stats[0] < 0.95  # a test set that is neither trivial nor hopeless
    for name, value in zip(KEYPOINT_METRIC_NAMES, reference.stats[:10], strict=True):
        assert ours[name] == pytest.approx(value, abs=1e-6), name
    assert ours["map"] > 0  # the people's box numbers are there too


def test_skeleton_metadata():
    assert SKELETON.flip_pairs == ((1, 2),)
    assert SKELETON.flip_permutation() == [0, 2, 1, 3]
    assert SKELETON.sigmas == (0.0669,) * 4
    assert Skeleton.from_dict(SKELETON.to_dict()) == SKELETON
    with pytest.raises(ValueError, match="flip pair"):
        Skeleton(("a", "b"), flip_pairs=((0, 2),))
    with pytest.raises(ValueError, match="skeleton"):
        build_task("pose")
