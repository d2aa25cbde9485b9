"""Tests of centernet.tasks.detection.targets: heatmap rendering, radii and the regression targets."""

from __future__ import annotations

import math

import pytest
import torch

from centernet.tasks.detection.targets import cornernet_radius, render_targets


def _relative_box(centre_cells: tuple[float, float], size_cells: tuple[float, float], output_size: tuple[int, int]):
    """Relative cxcywh of a box given its centre and size in output cells."""
    out_h, out_w = output_size
    (cx, cy), (w, h) = centre_cells, size_cells
    return [cx / out_w, cy / out_h, w / out_w, h / out_h]


def _render_one(box, label=0, num_classes=1, output_size=(16, 16), **kwargs):
    bboxes = torch.tensor([[box]], dtype=torch.float32)
    return render_targets(bboxes, torch.tensor([[label]]), torch.ones(1, 1), num_classes, output_size, **kwargs)


def _naive_targets(bboxes, labels, mask, num_classes, output_size, gaussian, gaussian_extent=0.54, min_overlap=0.7):
    """Plain per-object Python reference of render_targets (float64 math, loops over objects and cells)."""
    num_images, num_rows, _ = bboxes.shape
    out_h, out_w = output_size
    heatmap = torch.zeros(num_images, num_classes, out_h, out_w, dtype=torch.float64)
    indices = torch.zeros(num_images, num_rows, dtype=torch.int64)
    size = torch.zeros(num_images, num_rows, 2, dtype=torch.float64)
    offset = torch.zeros(num_images, num_rows, 2, dtype=torch.float64)
    for n in range(num_images):
        for d in range(num_rows):
            if mask[n, d] == 0:
                continue
            cx, cy, w, h = (float(v) for v in bboxes[n, d])
            cx, cy, w, h = cx * out_w, cy * out_h, w * out_w, h * out_h
            x = min(max(math.floor(cx), 0), out_w - 1)
            y = min(max(math.floor(cy), 0), out_h - 1)
            indices[n, d] = y * out_w + x
            size[n, d] = torch.tensor([w, h])
            offset[n, d] = torch.tensor([cx - x, cy - y])
            if gaussian == "ttfnet":
                rx, ry = max(0, math.floor(gaussian_extent * w / 2)), max(0, math.floor(gaussian_extent * h / 2))
            else:
                m = min_overlap
                r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - m) / (1 + m))) / 2
                r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - m) * w * h)) / 2
                r3 = (-2 * m * (h + w) + math.sqrt(4 * m**2 * (h + w) ** 2 - 16 * m * (m - 1) * w * h)) / 2
                rx = ry = max(0, math.floor(min(r1, r2, r3)))
            sx, sy = (2 * rx + 1) / 6, (2 * ry + 1) / 6
            for j in range(max(0, y - ry), min(out_h, y + ry + 1)):
                for i in range(max(0, x - rx), min(out_w, x + rx + 1)):
                    value = math.exp(-((i - x) ** 2 / (2 * sx**2) + (j - y) ** 2 / (2 * sy**2)))
                    c = int(labels[n, d])
                    heatmap[n, c, j, i] = max(heatmap[n, c, j, i].item(), value)
    return heatmap, indices, size, offset


def _random_batch(generator, num_images=3, num_rows=7, num_classes=3, output_size=(24, 32)):
    bboxes = torch.rand(num_images, num_rows, 4, generator=generator)
    bboxes[..., 2:] = bboxes[..., 2:] * 0.6 + 0.01
    bboxes[0, 0] = torch.tensor([0.0, 0.0, 0.3, 0.2])  # centre on the top-left corner: window cut by the border
    bboxes[0, 1] = torch.tensor([1.0, 1.0, 0.5, 0.9])  # centre on the bottom-right corner: cell clamped
    labels = torch.randint(0, num_classes, (num_images, num_rows), generator=generator)
    mask = (torch.rand(num_images, num_rows, generator=generator) < 0.7).float()
    mask[0, :2] = 1
    mask[-1] = 0  # an image without boxes
    return bboxes, labels, mask


def test_cornernet_radius_hand_computed():
    # 10 x 10 cells, m = 0.7: case 3 is the minimum, (-2*0.7*20 + sqrt(28^2 + 4*2.8*30)) / 2 = (-28 + 33.466) / 2.
    # 20 x 40 cells: (-84 + sqrt(84^2 + 4*2.8*240)) / 2 = (-84 + 98.712) / 2.
    # (Cases 1 and 2 give 19.07 / 36.73 and 57.55 / 111.38.)
    radius = cornernet_radius(torch.tensor([10.0, 20.0]), torch.tensor([10.0, 40.0]), min_overlap=0.7)
    torch.testing.assert_close(radius, torch.tensor([2.7332, 7.3559]), atol=1e-4, rtol=0)


def test_ttfnet_peak_closed_form_and_window():
    # Centre at (6.5, 9.25) cells -> cell (6, 9); size 10 x 6 cells -> r_x = floor(2.7) = 2, r_y = floor(1.62) = 1.
    output_size = (16, 16)
    heatmap = _render_one(_relative_box((6.5, 9.25), (10, 6), output_size), output_size=output_size).heatmap[0, 0]
    assert heatmap[9, 6].item() == 1.0
    assert heatmap.max().item() == 1.0
    sigma_x, sigma_y = 5 / 6, 3 / 6
    expected = math.exp(-(1 / (2 * sigma_x**2) + 1 / (2 * sigma_y**2)))  # at dx = 1, dy = 1
    assert heatmap[10, 7].item() == pytest.approx(expected, rel=1e-6)
    assert heatmap[9, 4].item() == pytest.approx(math.exp(-4 / (2 * sigma_x**2)), rel=1e-6)  # dx = -2
    support = torch.zeros(16, 16, dtype=torch.bool)
    support[8:11, 4:9] = True  # |dy| <= 1, |dx| <= 2
    assert torch.equal(heatmap > 0, support)


def test_cornernet_peak_and_circular_window():
    # 10 x 10 cells -> r = floor(2.733) = 2, sigma = 5 / 6, window 5 x 5.
    output_size = (16, 16)
    box = _relative_box((8.0, 7.9), (10, 10), output_size)
    heatmap = _render_one(box, output_size=output_size, gaussian="cornernet").heatmap[0, 0]
    assert heatmap[7, 8].item() == 1.0
    sigma = 5 / 6
    assert heatmap[9, 7].item() == pytest.approx(math.exp(-(1 + 4) / (2 * sigma**2)), rel=1e-6)
    support = torch.zeros(16, 16, dtype=torch.bool)
    support[5:10, 6:11] = True
    assert torch.equal(heatmap > 0, support)


def test_regression_targets_follow_the_contract():
    output_size = (16, 24)
    box = _relative_box((6.5, 9.25), (10, 6), output_size)
    targets = _render_one(box, output_size=output_size)
    assert targets.indices.tolist() == [[9 * 24 + 6]]
    torch.testing.assert_close(targets.offset, torch.tensor([[[0.5, 0.25]]]))
    torch.testing.assert_close(targets.size, torch.tensor([[[10.0, 6.0]]]))
    assert targets.mask.tolist() == [[1.0]]
    # A centre on the right/bottom border is clamped to the last cell with offset 1.
    corner = _render_one([1.0, 1.0, 0.1, 0.1], output_size=output_size)
    assert corner.indices.tolist() == [[15 * 24 + 23]]
    torch.testing.assert_close(corner.offset, torch.tensor([[[1.0, 1.0]]]))
    assert corner.heatmap[0, 0, 15, 23].item() == 1.0


def test_overlaps_merge_by_max_and_classes_stay_apart():
    output_size = (16, 16)
    box_a = _relative_box((5.5, 5.5), (12, 12), output_size)
    box_b = _relative_box((8.5, 6.5), (8, 10), output_size)
    single_a = _render_one(box_a, output_size=output_size).heatmap
    single_b = _render_one(box_b, output_size=output_size).heatmap
    bboxes = torch.tensor([[box_a, box_b]])
    same = render_targets(bboxes, torch.tensor([[0, 0]]), torch.ones(1, 2), 2, output_size).heatmap
    torch.testing.assert_close(same[0, 0], torch.maximum(single_a, single_b)[0, 0], rtol=0, atol=0)
    assert (same[0, 0] < single_a[0, 0] + single_b[0, 0]).any()  # really a max, not a sum
    assert same[0, 1].abs().sum() == 0
    apart = render_targets(bboxes, torch.tensor([[0, 1]]), torch.ones(1, 2), 2, output_size).heatmap
    torch.testing.assert_close(apart[0, 0], single_a[0, 0], rtol=0, atol=0)
    torch.testing.assert_close(apart[0, 1], single_b[0, 0], rtol=0, atol=0)


def test_padding_rows_and_empty_images_render_nothing():
    output_size = (8, 12)
    real = _relative_box((3.5, 4.5), (4, 4), output_size)
    garbage = [0.5, 0.5, 0.8, 0.8]  # a box-looking padding row, with a label that is out of range on purpose
    bboxes = torch.tensor([[real, garbage], [garbage, garbage]])
    labels = torch.tensor([[1, 7], [7, 7]])
    mask = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    targets = render_targets(bboxes, labels, mask, 2, output_size)
    alone = _render_one(real, label=1, num_classes=2, output_size=output_size)
    torch.testing.assert_close(targets.heatmap[:1], alone.heatmap, rtol=0, atol=0)
    assert targets.heatmap[1].abs().sum() == 0  # the image without boxes
    assert targets.indices[0, 1] == 0 and targets.indices[1].abs().sum() == 0
    assert targets.size[:, 1].abs().sum() == 0 and targets.offset[:, 1].abs().sum() == 0
    assert targets.mask.tolist() == mask.tolist()


def test_batch_without_any_box():
    targets = render_targets(torch.zeros(2, 1, 4), torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1), 3, (8, 8))
    assert targets.heatmap.shape == (2, 3, 8, 8)
    assert targets.heatmap.abs().sum() == 0
    assert targets.mask.sum() == 0


def test_out_of_range_label_is_reported():
    with pytest.raises(ValueError, match=r"labels\[0, 1\] = 5"):
        render_targets(torch.full((1, 2, 4), 0.5), torch.tensor([[0, 5]]), torch.ones(1, 2), 3, (8, 8))


@pytest.mark.parametrize("gaussian", ["ttfnet", "cornernet"])
def test_vectorised_matches_naive_reference(gaussian):
    generator = torch.Generator().manual_seed(0)
    output_size = (24, 32)  # a 96 x 128 image
    bboxes, labels, mask = _random_batch(generator, output_size=output_size)
    targets = render_targets(bboxes, labels, mask, 3, output_size, gaussian=gaussian)
    heatmap, indices, size, offset = _naive_targets(bboxes, labels, mask, 3, output_size, gaussian)
    assert targets.heatmap.dtype == torch.float32
    assert (targets.heatmap > 0).sum() > 100  # the comparison covers real Gaussians
    torch.testing.assert_close(targets.heatmap, heatmap.float(), rtol=1e-5, atol=1e-6)
    assert torch.equal(targets.heatmap > 0, heatmap > 0)
    assert torch.equal(targets.indices, indices)
    torch.testing.assert_close(targets.size, size.float())
    torch.testing.assert_close(targets.offset, offset.float())


@pytest.mark.parametrize("gaussian", ["ttfnet", "cornernet"])
def test_windowed_rendering_equals_full_map_profiles_bit_for_bit(gaussian):
    """Rendering in per-object windows gives exactly the full-map separable product, borders and overlaps too."""
    from centernet.tasks.detection.targets import _gaussian_profile

    generator = torch.Generator().manual_seed(1)
    bboxes, labels, mask = _random_batch(generator, num_rows=9)
    bboxes[0, 0] = torch.tensor([0.5, 0.5, 1.0, 1.0])  # a full-image box: the window covers the whole map
    bboxes[0, 1] = torch.tensor([0.01, 0.99, 0.3, 0.2])  # a window cut by the left and bottom borders
    mask[0, :2] = 1
    targets = render_targets(bboxes, labels, mask, 3, (24, 32), gaussian=gaussian)
    expected = torch.zeros(bboxes.shape[0], 3, 24, 32)
    for n, d in (mask > 0).nonzero().tolist():
        cx, cy, w, h = (float(v) for v in bboxes[n, d] * torch.tensor([32.0, 24.0, 32.0, 24.0]))
        cell_x, cell_y = torch.tensor([[min(float(int(cx)), 31.0)]]), torch.tensor([[min(float(int(cy)), 23.0)]])
        if gaussian == "ttfnet":
            rx, ry = torch.tensor([[float(int(0.54 * w / 2))]]), torch.tensor([[float(int(0.54 * h / 2))]])
        else:
            rx = ry = cornernet_radius(torch.tensor([[h]]), torch.tensor([[w]]), 0.7).floor().clamp(min=0)
        blob = _gaussian_profile(cell_y, ry, 24)[0, 0, :, None] * _gaussian_profile(cell_x, rx, 32)[0, 0, None, :]
        expected[n, labels[n, d]] = torch.maximum(expected[n, labels[n, d]], blob)
    assert torch.equal(targets.heatmap, expected)


@pytest.mark.parametrize("gaussian", ["ttfnet", "cornernet"])
def test_channels_last_rendering_has_the_same_values_in_the_other_layout(gaussian):
    """The heatmap rendered for a channels-last prediction: equal values, channels-last memory, no copy."""
    generator = torch.Generator().manual_seed(2)
    bboxes, labels, mask = _random_batch(generator, num_rows=9)
    plain = render_targets(bboxes, labels, mask, 3, (24, 32), gaussian=gaussian)
    nhwc = render_targets(bboxes, labels, mask, 3, (24, 32), gaussian=gaussian, channels_last=True)
    assert nhwc.heatmap.is_contiguous(memory_format=torch.channels_last) and not nhwc.heatmap.is_contiguous()
    assert torch.equal(nhwc.heatmap, plain.heatmap)
    for name in ("indices", "size", "offset", "mask"):
        assert torch.equal(getattr(nhwc, name), getattr(plain, name))


def test_criterion_renders_targets_in_the_heatmap_layout():
    from centernet.tasks.detection.config import DetectionLossConfig
    from centernet.tasks.detection.criterion import heatmap_targets

    generator = torch.Generator().manual_seed(3)
    bboxes, labels, mask = _random_batch(generator, num_rows=4)
    batch = {"bboxes": bboxes, "labels": labels, "mask": mask}
    heatmap = torch.zeros(bboxes.shape[0], 3, 24, 32)
    for layout in (torch.contiguous_format, torch.channels_last):
        targets = heatmap_targets(heatmap.contiguous(memory_format=layout), batch, 3, DetectionLossConfig())
        assert targets.heatmap.is_contiguous(memory_format=layout)


def test_unknown_gaussian_is_rejected():
    with pytest.raises(ValueError, match="gaussian"):
        render_targets(
            torch.zeros(1, 1, 4), torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1), 1, (8, 8), gaussian="x"
        )
