"""Tests of centernet.losses and of the criterion's behaviour on images without objects."""

from __future__ import annotations

import torch

from centernet.losses import focal_loss_with_logits, masked_l1_loss
from centernet.tasks.detection.config import DetectionLossConfig
from centernet.tasks.detection.criterion import CenterNetCriterion


def _reference_focal_loss(logits, target, num_objects):
    """The penalty-reduced focal loss written plainly in float64 (alpha = 2, beta = 4)."""
    x, y = logits.double(), target.double()
    p = torch.sigmoid(x)
    positive = y == 1
    positive_sum = ((1 - p) ** 2 * torch.log(p))[positive].sum()
    negative_sum = ((1 - y) ** 4 * p**2 * torch.log(1 - p))[~positive].sum()
    return -(positive_sum + negative_sum) / max(1, num_objects)


def _random_heatmap_problem(seed=0, shape=(2, 3, 8, 12)):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=generator) * 3
    target = torch.rand(shape, generator=generator) * 0.999
    positive = torch.rand(shape, generator=generator) < 0.05
    target[positive] = 1.0
    return logits, target, int(positive.sum())


def test_focal_loss_matches_float64_reference():
    logits, target, num_objects = _random_heatmap_problem()
    assert num_objects > 0
    loss = focal_loss_with_logits(logits, target, num_objects)
    assert loss.dtype == torch.float32 and loss.shape == ()
    torch.testing.assert_close(loss.double(), _reference_focal_loss(logits, target, num_objects), rtol=1e-5, atol=0)
    # The normaliser is max(1, num_objects), also as a tensor.
    zero = focal_loss_with_logits(logits, target, torch.tensor(0.0))
    torch.testing.assert_close(zero.double(), _reference_focal_loss(logits, target, 0), rtol=1e-5, atol=0)


def test_focal_loss_gradients_at_extreme_logits():
    # Cells: positive at -100 (confidently wrong), positive at +100 (right), negative (target 0.5) at +100
    # (wrong), negative (target 0) at -100 (right).
    logits = torch.tensor([-100.0, 100.0, 100.0, -100.0], requires_grad=True)
    target = torch.tensor([1.0, 1.0, 0.5, 0.0])
    loss = focal_loss_with_logits(logits, target, 2)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    torch.testing.assert_close(loss, torch.tensor((100.0 + 0.5**4 * 100.0) / 2))
    # Confidently wrong cells get the full gradient: d/dx = -(1 - p)^2 / 2 ~ -1/2 and (1 - y)^4 p^2 / 2 ~ 1/32.
    torch.testing.assert_close(logits.grad[0], torch.tensor(-0.5))
    torch.testing.assert_close(logits.grad[2], torch.tensor(0.5**4 / 2))
    # Confidently right cells: the exact gradient (~1e-87) underflows float32 to 0 (not NaN).
    assert logits.grad[1].abs() < 1e-30 and logits.grad[3].abs() < 1e-30


def test_focal_loss_under_bfloat16_autocast_is_float32():
    logits, target, num_objects = _random_heatmap_problem(seed=1)
    expected = focal_loss_with_logits(logits, target, num_objects)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = focal_loss_with_logits(logits, target, num_objects)
        from_bf16 = focal_loss_with_logits(logits.bfloat16(), target, num_objects)
    assert loss.dtype == torch.float32 and from_bf16.dtype == torch.float32
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=0)
    reference = _reference_focal_loss(logits.bfloat16(), target, num_objects)
    torch.testing.assert_close(from_bf16.double(), reference, rtol=1e-5, atol=0)


def test_masked_l1_loss_normalises_per_real_coordinate():
    pred = torch.tensor([[[1.0, 2.0], [9.0, 9.0]], [[0.0, 0.0], [5.0, -5.0]]])  # (N=2, D=2, K=2)
    target = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # Real rows: |1| + |2| + |-1| + |-1| = 5 over 2 objects x 2 coordinates.
    torch.testing.assert_close(masked_l1_loss(pred, target, mask), torch.tensor(5 / 4))
    empty = masked_l1_loss(pred, target, torch.zeros(2, 2))
    assert empty.item() == 0.0


def _random_outputs(num_images, num_classes=3, output_size=(16, 24), seed=0):
    generator = torch.Generator().manual_seed(seed)
    out_h, out_w = output_size
    return {
        "heatmap": torch.randn(num_images, num_classes, out_h, out_w, generator=generator) - 2,
        "size": torch.rand(num_images, 2, out_h, out_w, generator=generator) * 10,
        "offset": torch.rand(num_images, 2, out_h, out_w, generator=generator),
    }


def _batch(bboxes, labels, mask):
    return {"bboxes": torch.tensor(bboxes), "labels": torch.tensor(labels), "mask": torch.tensor(mask)}


def test_image_without_boxes_alone():
    criterion = CenterNetCriterion(num_classes=3)
    outputs = _random_outputs(1)
    losses = criterion(outputs, _batch([[[0.0, 0.0, 0.0, 0.0]]], [[0]], [[0.0]]))
    assert torch.isfinite(losses["heatmap"]) and losses["heatmap"] > 0
    assert losses["size"].item() == 0.0 and losses["offset"].item() == 0.0
    torch.testing.assert_close(losses["total"], losses["heatmap"])


def test_image_without_boxes_in_a_batch():
    criterion = CenterNetCriterion(num_classes=3)
    outputs = _random_outputs(3)
    boxes = [[[0.3, 0.4, 0.2, 0.3], [0.7, 0.2, 0.1, 0.4]], [[0.0] * 4, [0.0] * 4], [[0.5, 0.5, 0.6, 0.5], [0.0] * 4]]
    batch = _batch(boxes, [[0, 2], [0, 0], [1, 0]], [[1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    losses = criterion(outputs, batch)
    keep = [0, 2]  # the non-empty images alone
    non_empty = criterion({k: v[keep] for k, v in outputs.items()}, {k: v[keep] for k, v in batch.items()})
    assert losses["size"] > 0 and losses["offset"] > 0
    torch.testing.assert_close(losses["size"], non_empty["size"], rtol=1e-6, atol=0)
    torch.testing.assert_close(losses["offset"], non_empty["offset"], rtol=1e-6, atol=0)
    assert torch.isfinite(losses["heatmap"]) and losses["heatmap"] > non_empty["heatmap"]  # more negatives, same N


def test_criterion_total_and_shared_cell():
    weights = DetectionLossConfig(heatmap_weight=2.0, size_weight=0.5, offset_weight=3.0)
    criterion = CenterNetCriterion(num_classes=2, loss=weights)
    outputs = _random_outputs(1, num_classes=2, output_size=(8, 8))
    outputs = {k: v.requires_grad_() for k, v in outputs.items()}
    outputs["size"].data.fill_(5.0)
    # Two objects centred in the same cell (4, 4) with widths 3 and 7 cells (image 32 x 32): the L1 pulls
    # of the shared size prediction (5) cancel.
    batch = _batch([[[0.55, 0.55, 3 / 8, 5 / 8], [0.55, 0.55, 7 / 8, 5 / 8]]], [[0, 1]], [[1.0, 1.0]])
    losses = criterion(outputs, batch)
    torch.testing.assert_close(losses["size"], torch.tensor((2 + 0 + 2 + 0) / 4))
    expected_total = 2.0 * losses["heatmap"] + 0.5 * losses["size"] + 3.0 * losses["offset"]
    torch.testing.assert_close(losses["total"], expected_total)
    losses["size"].backward()
    assert outputs["size"].grad[0, 0, 4, 4].item() == 0.0  # width: -1/4 + 1/4
    assert outputs["size"].grad.abs().sum() == 0.0  # height matches exactly, no other cell is read
