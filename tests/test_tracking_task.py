"""The tracking task: targets and decoding of the displacement agree, the extra inputs start ignored, the loss
trains them, and greedy association gives the expected ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import tiny_network

from centernet.tasks import build_task
from centernet.tasks.tracking import GreedyAssociator
from centernet.tasks.tracking.targets import render_tracking_targets


def _moving_batch(size: int = 128) -> dict[str, torch.Tensor]:
    """Three objects (pixels of a ``size`` image) with known motion since the previous frame; the third is new."""
    boxes = torch.tensor([[30.5, 40.25, 20.0, 16.0], [90.0, 70.75, 12.0, 30.0], [60.0, 100.0, 10.0, 10.0]])
    previous = torch.tensor([[22.0, 47.5], [97.25, 61.0], [0.0, 0.0]])
    return {
        "bboxes": (boxes / size).unsqueeze(0),
        "labels": torch.tensor([[0, 1, 0]]),
        "mask": torch.ones(1, 3),
        "prev_centers": (previous / size).unsqueeze(0),
        "track_mask": torch.tensor([[1.0, 1.0, 0.0]]),
    }


def _maps_from_targets(batch: dict[str, torch.Tensor], size: int, stride: int = 4, with_offset: bool = True):
    """Raw maps that a perfect network would predict: a peak at each centre cell, the targets at that cell."""
    task = build_task("tracking")
    out = size // stride
    heatmap = torch.full((1, 2, out, out), -20.0)
    size_map, offset_map, tracking_map = (torch.zeros(1, 2, out, out) for _ in range(3))
    everyone = torch.ones(1, 3)
    targets = render_tracking_targets(batch["bboxes"], batch["prev_centers"], batch["mask"], everyone, (out, out))
    centre = batch["bboxes"][0, :, :2] * out
    for row in range(3):
        x, y = (int(v) for v in centre[row].floor())
        heatmap[0, batch["labels"][0, row], y, x] = 5.0 - row
        size_map[0, :, y, x] = batch["bboxes"][0, row, 2:] * out
        if with_offset:
            offset_map[0, :, y, x] = centre[row] - centre[row].floor()
        tracking_map[0, :, y, x] = targets.tracking[0, row]
    maps = {"heatmap": heatmap, "size": size_map, "offset": offset_map, "tracking": tracking_map}
    return task.decode(maps, stride, max_detections=3)


def test_tracking_targets_hold_the_displacement_in_output_cells():
    batch = _moving_batch()
    targets = render_tracking_targets(
        batch["bboxes"], batch["prev_centers"], batch["mask"], batch["track_mask"], (32, 32)
    )
    expected = torch.tensor([[22.0 - 30.5, 47.5 - 40.25], [97.25 - 90.0, 61.0 - 70.75], [0.0, 0.0]]) / 4
    assert torch.allclose(targets.tracking[0, :2], expected[:2], atol=1e-6)
    assert targets.mask.tolist() == [[1.0, 1.0, 0.0]]  # the new object has no target
    assert targets.indices[0, 0] == 10 * 32 + 7  # centre (30.5, 40.25) px -> cell (7, 10)


def test_decoded_previous_centres_equal_the_known_motion():
    batch = _moving_batch()
    decoded = _maps_from_targets(batch, 128)
    centres = (decoded["boxes"][0, :, :2] + decoded["boxes"][0, :, 2:]) / 2
    previous = centres + decoded["tracking"][0]
    assert torch.allclose(previous[:2], torch.tensor([[22.0, 47.5], [97.25, 61.0]]), atol=1e-4)
    # Without the sub-cell offset the previous centre is still right up to the stride.
    coarse = _maps_from_targets(batch, 128, with_offset=False)
    coarse_previous = (coarse["boxes"][0, :, :2] + coarse["boxes"][0, :, 2:]) / 2 + coarse["tracking"][0]
    error = (coarse_previous[:2] - torch.tensor([[22.0, 47.5], [97.25, 61.0]])).abs()
    assert error.max() < 4 and error.max() > 0


def test_extra_inputs_start_ignored_and_then_learn():
    torch.manual_seed(0)
    network = tiny_network(num_classes=2, task="tracking").eval()
    image = torch.rand(2, 3, 64, 64)
    extras = {"prev_image": torch.rand(2, 3, 64, 64), "prev_heatmap": torch.rand(2, 1, 64, 64)}
    with torch.no_grad():
        alone = network(image)
        with_extras = network(image, extras)
    for name in ("heatmap", "size", "offset", "tracking"):
        assert torch.equal(alone[name], with_extras[name]), name
    batch = {"image": image, **extras, **{k: v.expand(2, *v.shape[1:]) for k, v in _moving_batch(64).items()}}
    network.train()
    losses = network.compute_loss(network(batch), batch)
    assert set(losses) == {"heatmap", "size", "offset", "tracking", "total"}
    assert losses["tracking"] > 0
    losses["total"].backward()
    assert network.extra_inputs.conv.weight.grad.abs().sum() > 0  # the extras get a gradient from zero
    with torch.no_grad():
        network.extra_inputs.conv.weight.normal_(std=0.1)
        network.eval()
        assert not torch.equal(network(image)["heatmap"], network(image, extras)["heatmap"])


def test_a_detection_checkpoint_loads_into_a_tracker():
    detector = tiny_network(num_classes=2)
    tracker = tiny_network(num_classes=2, task="tracking")
    missing, unexpected = tracker.load_state_dict(detector.state_dict(), strict=False)
    assert not unexpected
    assert sorted(missing) == sorted(
        ["extra_inputs.conv.weight"] + [f"head.tracking.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
    )


def test_fine_tuning_a_tracker_from_a_detection_checkpoint(tmp_path):
    from centernet.training.finetune import load_finetune_weights

    detector = tiny_network(num_classes=2)
    torch.save(detector.state_dict(), tmp_path / "detector.pt")
    tracker = tiny_network(num_classes=2, task="tracking")
    fresh = load_finetune_weights(tracker, tmp_path / "detector.pt", "head.heatmap.2")
    assert sorted(fresh) == sorted(
        ["extra_inputs.conv.weight"] + [f"head.tracking.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
    )
    assert torch.equal(tracker.backbone.conv1.weight, detector.backbone.conv1.weight)
    assert torch.equal(tracker.head.heatmap[2].bias, detector.head.heatmap[2].bias)
    assert not tracker.extra_inputs.conv.weight.any()  # still zero: the tracker starts as the detector
    torch.save(tracker.state_dict(), tmp_path / "tracker.pt")
    with pytest.raises(ValueError, match="unexpected keys"):  # a detector does not silently drop a tracker's layers
        load_finetune_weights(tiny_network(num_classes=2), tmp_path / "tracker.pt", "head.heatmap.2")


def test_tracking_needs_the_size_head():
    with pytest.raises(ValueError, match="size"):
        build_task("tracking", head="ltrb")


def _box(cx: float, cy: float, side: float = 10.0) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def test_crossing_objects_keep_their_ids_with_displacements():
    associator = GreedyAssociator(max_age=2)
    baseline = GreedyAssociator(max_age=2)
    ids, baseline_ids = [], []
    for t in range(9):  # A moves right, B left, 6 px a frame; they pass each other between t = 4 and 5
        boxes = np.array([_box(26 + 6 * t, 50), _box(77 - 6 * t, 50)])
        displacement = np.array([[-6.0, 0.0], [6.0, 0.0]]) if t else np.zeros((2, 2))
        ids.append(associator.update(boxes, np.array([0.9, 0.8]), np.array([0, 0]), displacement).tolist())
        baseline_ids.append(baseline.update(boxes, np.array([0.9, 0.8]), np.array([0, 0])).tolist())
    assert ids == [[1, 2]] * 9
    assert baseline_ids[-1] == [2, 1]  # nearest-centre matching swaps them where they meet


def test_an_object_hidden_for_a_few_frames_gets_its_id_back_and_a_new_one_gets_a_new_id():
    def run(max_age: int) -> list[list[int]]:
        associator = GreedyAssociator(max_age=max_age)
        out = []
        for t in range(12):
            boxes, scores = [_box(20 + 3 * t, 30)], [0.9]
            if not 4 <= t <= 6:  # the second object is hidden in frames 4, 5, 6
                boxes.append(_box(80 - 4 * t, 80 + 1 * t))
                scores.append(0.8)
            if t >= 9:  # a new object enters
                boxes.append(_box(10, 110))
                scores.append(0.7)
            motion = np.array([[-3.0, 0.0], [4.0, -1.0], [0.0, 0.0]])[: len(boxes)] if t else None
            if t >= 9:
                motion[2] = 0.0
            labels = np.zeros(len(boxes), dtype=np.int64)
            out.append(associator.update(np.array(boxes), np.array(scores), labels, motion).tolist())
        return out

    ids = run(max_age=5)
    assert ids[3] == [1, 2] and ids[4] == [1] and ids[7] == [1, 2]
    assert ids[9] == [1, 2, 3] and ids[11] == [1, 2, 3]
    short = run(max_age=2)  # lost for 3 frames > max_age: the object comes back as a new track
    assert short[7] == [1, 3] and short[9] == [1, 3, 4]


def test_weak_detections_start_no_track_and_labels_must_match():
    associator = GreedyAssociator(detection_threshold=0.3, new_track_threshold=0.5)
    ids = associator.update(np.array([_box(10, 10), _box(50, 50)]), np.array([0.9, 0.4]), np.array([0, 0]))
    assert ids.tolist() == [1, -1]
    # Next frame: the same place but another class is not the same object; a weak one may continue a track.
    ids = associator.update(np.array([_box(10, 10)]), np.array([0.9]), np.array([1]))
    assert ids.tolist() == [2]
    ids = associator.update(np.array([_box(11, 10), _box(12, 10)]), np.array([0.45, 0.35]), np.array([0, 1]))
    assert ids.tolist() == [1, 2]


def test_a_replaced_first_convolution_is_an_error_not_a_silent_detector():
    network = tiny_network(num_classes=2, task="tracking").eval()
    network.backbone.conv1 = torch.nn.Conv2d(3, 64, 7, 2, 3, bias=False)  # e.g. what BatchNorm folding does
    extras = {"prev_image": torch.rand(1, 3, 64, 64), "prev_heatmap": torch.rand(1, 1, 64, 64)}
    with pytest.raises(RuntimeError, match="extra inputs were not used"):
        network(torch.rand(1, 3, 64, 64), extras)
    network(torch.rand(1, 3, 64, 64))  # the image alone still runs
