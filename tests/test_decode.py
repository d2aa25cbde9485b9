"""Tests of the detection decoding, including the encode -> decode round trip with the target rendering."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import per_image

from centernet.boxes import cxcywh_to_xyxy, relative_to_absolute
from centernet.tasks.detection.decode import decode_detections
from centernet.tasks.detection.targets import render_targets

STRIDE = 4


def _round_trip_batch():
    """Boxes (relative cxcywh) on a 96 x 128 image (H x W): tiny, large, at the border, sharing cells, padding."""
    height, width = 96, 128
    generator = torch.Generator().manual_seed(0)
    num_images, num_rows = 3, 12
    bboxes = torch.rand(num_images, num_rows, 4, generator=generator)
    bboxes[..., 2:] = bboxes[..., 2:] * 0.5 + 0.02
    labels = torch.randint(0, 3, (num_images, num_rows), generator=generator)
    mask = torch.ones(num_images, num_rows)
    special = [
        [1 / width, 0.5, 2 / width, 2 / height],  # tiny (2 px) touching the left border
        [0.5, 0.5, 0.9, 0.9],  # large: 90 % of the image
        [1 - 0.1, 1 - 0.15, 0.2, 0.3],  # touching the bottom-right corner
        [1.0, 0.0, 0.2, 0.2],  # centre exactly on the top-right corner (cell clamped, offset (1, 0))
        [0.3, 0.3, 2 / width, 3 / height],  # tiny, interior
    ]
    bboxes[0, : len(special)] = torch.tensor(special)
    # Boxes sharing a centre cell: rows 5 and 6 (same class) and rows 7 and 8 (different classes).
    bboxes[0, 5], bboxes[0, 6] = torch.tensor([0.61, 0.41, 0.3, 0.2]), torch.tensor([0.612, 0.412, 0.1, 0.4])
    bboxes[1, 7], bboxes[1, 8] = torch.tensor([0.21, 0.71, 0.2, 0.2]), torch.tensor([0.211, 0.711, 0.4, 0.1])
    labels[0, 5], labels[0, 6], labels[1, 7], labels[1, 8] = 1, 1, 0, 2
    mask[1, 9:] = 0  # padding rows
    mask[2] = 0  # an image without boxes
    bboxes[mask == 0] = torch.rand(int((mask == 0).sum()), 4, generator=generator)  # padding must be ignored
    return bboxes, labels, mask, (height, width)


def test_encode_decode_round_trip():
    bboxes, labels, mask, (height, width) = _round_trip_batch()
    num_images, num_rows = mask.shape
    out_h, out_w = height // STRIDE, width // STRIDE
    targets = render_targets(bboxes, labels, mask, 3, (out_h, out_w))

    # Dense size / offset maps holding the targets at their cells; when objects share a cell, the last row
    # written wins, as a network can only predict one box per cell.
    size = torch.zeros(num_images, 2, out_h * out_w)
    offset = torch.zeros(num_images, 2, out_h * out_w)
    for n, d in mask.nonzero().tolist():
        size[n, :, targets.indices[n, d]] = targets.size[n, d]
        offset[n, :, targets.indices[n, d]] = targets.offset[n, d]
    size, offset = size.view(num_images, 2, out_h, out_w), offset.view(num_images, 2, out_h, out_w)

    # Expected collisions, from the boxes themselves: every object but the last of each shared centre cell.
    cells: dict[tuple[int, int, int], list[int]] = {}
    for n, d in mask.nonzero().tolist():
        cx, cy = float(bboxes[n, d, 0]) * width / STRIDE, float(bboxes[n, d, 1]) * height / STRIDE
        x, y = min(math.floor(cx), out_w - 1), min(math.floor(cy), out_h - 1)
        cells.setdefault((n, y, x), []).append(d)
    losers = {(n, d) for (n, _, _), rows in cells.items() for d in rows[:-1]}
    assert len(losers) == 2  # the two planted pairs, nothing else
    num_peaks = len({(n, y, x, int(labels[n, d])) for (n, y, x), rows in cells.items() for d in rows})

    detections = decode_detections(torch.logit(targets.heatmap), size, offset, stride=STRIDE, max_detections=200)
    images = per_image(detections)
    assert sum(len(image["scores"]) for image in images) == num_peaks  # every peak, nothing else
    gt_boxes = cxcywh_to_xyxy(relative_to_absolute(bboxes, (height, width)))  # (N, D, 4) input pixels
    missed = set()
    for n, image in enumerate(images):
        assert (image["scores"] == 1).all()
        rows = mask[n].nonzero().flatten().tolist()
        for d in rows:
            close = (image["boxes"] - gt_boxes[n, d]).abs().amax(dim=-1) < 1e-3  # (k,)
            if not (close & (image["labels"] == labels[n, d])).any():
                missed.add((n, d))
        for box in image["boxes"]:  # no spurious box: each detection is some object's box
            assert any((box - gt_boxes[n, d]).abs().max() < 1e-3 for d in rows)
    assert missed == losers


@pytest.mark.parametrize("max_detections, expected_k", [(5, 5), (10**6, 3 * 6 * 8)])
def test_number_of_detections_is_capped(max_detections, expected_k):
    heatmap = torch.randn(2, 3, 6, 8)
    detections = decode_detections(
        heatmap, torch.rand(2, 2, 6, 8), torch.rand(2, 2, 6, 8), max_detections=max_detections
    )
    assert detections["boxes"].shape == (2, expected_k, 4)
    assert detections["scores"].shape == (2, expected_k) and detections["labels"].shape == (2, expected_k)
    assert detections["boxes"].dtype == torch.float32 and detections["labels"].dtype == torch.int64
    assert (detections["scores"][:, :-1] >= detections["scores"][:, 1:]).all()


def test_batched_decode_equals_per_image_decode():
    generator = torch.Generator().manual_seed(3)
    heatmap = torch.randn(4, 3, 12, 16, generator=generator)
    size = torch.rand(4, 2, 12, 16, generator=generator) * 8
    offset = torch.rand(4, 2, 12, 16, generator=generator)
    batched = decode_detections(heatmap, size, offset, max_detections=20)
    for n in range(4):
        single = decode_detections(heatmap[n : n + 1], size[n : n + 1], offset[n : n + 1], max_detections=20)
        for key in ("boxes", "scores", "labels"):
            assert torch.equal(batched[key][n : n + 1], single[key]), key


def test_peaks_classes_and_box_geometry():
    heatmap = torch.full((1, 2, 6, 8), -10.0)
    heatmap[0, 0, 2, 3] = 3.0  # a peak ...
    heatmap[0, 0, 2, 4] = 2.0  # ... and its weaker neighbour, suppressed
    heatmap[0, 1, 2, 3] = 1.0  # the same cell, another class: also emitted
    heatmap[0, 0, 5, 7] = 25.0  # saturated peak (sigmoid rounds to 1) ...
    heatmap[0, 0, 4, 7] = 20.0  # ... next to a saturated non-peak that must not count as a plateau
    size = torch.zeros(1, 2, 6, 8)
    offset = torch.zeros(1, 2, 6, 8)
    size[0, :, 2, 3] = torch.tensor([4.0, 2.0])
    offset[0, :, 2, 3] = torch.tensor([0.5, 0.25])
    detections = per_image(decode_detections(heatmap, size, offset, stride=4, max_detections=10), 0.5)[0]
    assert detections["labels"].tolist() == [0, 0, 1]
    torch.testing.assert_close(detections["scores"], torch.sigmoid(torch.tensor([25.0, 3.0, 1.0])))
    # Centre ((3 + 0.5) * 4, (2 + 0.25) * 4) = (14, 9), size (16, 8).
    torch.testing.assert_close(detections["boxes"][1], torch.tensor([6.0, 5.0, 22.0, 13.0]))
    torch.testing.assert_close(detections["boxes"][2], detections["boxes"][1])


def test_separable_3x3_maximum_equals_max_pooling():
    """The eager peak search (rows then columns) is the 3x3 max-pool that exported graphs run, borders included."""
    from centernet.tasks.detection.decode import _max_3x3

    logits = torch.randn(2, 3, 7, 9, generator=torch.Generator().manual_seed(0))
    logits[0, 0, 0, 0] = 50.0  # a corner peak: the padding must not count as a neighbour
    expected = torch.nn.functional.max_pool2d(logits, kernel_size=3, stride=1, padding=1)
    assert torch.equal(_max_3x3(logits), expected)
    assert _max_3x3(logits)[0, 0, 1, 1] == 50.0 and _max_3x3(logits)[0, 0, 2, 2] < 50.0


def _reference_top_peaks(logits: torch.Tensor, k: int):
    """The textbook decoding: 3x3 max-pool, -inf at non-peaks, one top-K over all classes and cells."""
    pooled = torch.nn.functional.max_pool2d(logits, kernel_size=3, stride=1, padding=1)
    peaks = torch.where(pooled == logits, logits, float("-inf")).flatten(1)
    values, index = peaks.topk(k, dim=1)
    cells = logits.shape[2] * logits.shape[3]
    return torch.sigmoid(values), index // cells, index % cells


def test_fast_peak_search_equals_the_textbook_decoding():
    """Peak ranking by arithmetic and the chunked top-K select exactly the peaks of max-pool + where + topk."""
    from centernet.tasks.detection.decode import _top_peaks

    logits = torch.randn(3, 5, 32, 40, generator=torch.Generator().manual_seed(1)) * 3
    # A neighbour larger by one float step: the smaller cell is not a peak, however small the gap.
    logits[1, 2, 10, 10] = 30.0
    logits[1, 2, 10, 11] = torch.nextafter(torch.tensor(30.0), torch.tensor(31.0))
    for k in (100, 700):  # 5 * 32 * 40 / 8 = 800 values per chunk: both use the chunked top-K
        scores, labels, cells = _top_peaks(logits, k)
        expected_scores, expected_labels, expected_cells = _reference_top_peaks(logits, k)
        peaks = expected_scores > 0  # beyond the last peak the reference order among -inf is arbitrary
        assert torch.equal(scores > 0, peaks)
        assert torch.equal(scores[peaks], expected_scores[peaks])
        assert torch.equal(labels[peaks], expected_labels[peaks]) and torch.equal(cells[peaks], expected_cells[peaks])
    scores, labels, cells = _top_peaks(logits[1:2], 5)
    assert (labels[0, 0], cells[0, 0]) == (2, 10 * 40 + 11) and 10 * 40 + 10 not in cells[labels == 2].tolist()


def test_chunked_top_k_equals_top_k():
    from centernet.tasks.detection.decode import _topk_rows

    values = torch.randn(4, 8 * 300, generator=torch.Generator().manual_seed(2))
    values[0, :600] = values[0, :600] + 10  # all of row 0's top-K in its first two chunks
    for k in (1, 100, 300):
        top, index = _topk_rows(values, k)
        expected_top, expected_index = values.topk(k, dim=1)
        assert torch.equal(top, expected_top) and torch.equal(index, expected_index)
    top, index = _topk_rows(values[:, :7], 3)  # not divisible into chunks: plain top-K
    assert torch.equal(index, values[:, :7].topk(3, dim=1).indices)


def test_channels_last_maps_decode_like_contiguous_ones():
    """A channels-last model's maps are searched in their own memory order, with the same detections."""
    generator = torch.Generator().manual_seed(4)
    heatmap = torch.randn(3, 6, 16, 24, generator=generator) * 3
    size = torch.rand(3, 2, 16, 24, generator=generator) * 8
    offset = torch.rand(3, 2, 16, 24, generator=generator)
    expected = decode_detections(heatmap, size, offset, max_detections=50)
    as_channels_last = [t.contiguous(memory_format=torch.channels_last) for t in (heatmap, size, offset)]
    assert not as_channels_last[0].is_contiguous()
    actual = decode_detections(*as_channels_last, max_detections=50)
    for key in ("boxes", "scores", "labels"):
        assert torch.equal(actual[key], expected[key]), key
