"""Drawings: lines and labels sized so that small objects on large images stay visible."""

from __future__ import annotations

import numpy as np

from centernet.viz import class_color, draw_detections


def _outline_width(canvas: np.ndarray, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> int:
    """Pixels of ``color`` in the run through the box's left edge along its middle row (the drawn line's width)."""
    x1, y1, x2, y2 = box
    row = [tuple(pixel) == color for pixel in canvas[(y1 + y2) // 2]]
    left = right = x1
    while left > 0 and row[left - 1]:
        left -= 1
    while right + 1 < len(row) and row[right + 1]:
        right += 1
    return right - left + 1 if row[x1] else 0


def test_small_objects_on_a_large_image_get_thin_lines():
    image = np.zeros((2048, 2048, 3), np.uint8)
    boxes = np.array([[100, 100, 124, 124], [400, 400, 424, 424], [800, 800, 824, 824]], np.float32)
    canvas = draw_detections(image, boxes, np.zeros(3, np.int64), np.full(3, 0.9), ["tree"])
    # An image-sized line (thickness round(2048 / 300) = 7, which OpenCV paints 9 px wide) would fill most of a 24 px
    # box; the median side 24 gives thickness 2 (3 px wide).
    assert _outline_width(canvas, (100, 100, 124, 124), class_color(0)) == 3
    assert (canvas[110:116, 110:116] == 0).all()  # the object itself stays visible


def test_large_objects_keep_image_sized_lines():
    image = np.zeros((2048, 2048, 3), np.uint8)
    canvas = draw_detections(image, np.array([[200, 200, 1200, 1000]], np.float32), np.array([1]))
    assert _outline_width(canvas, (200, 200, 1200, 1000), class_color(1)) == 9  # thickness round(2048 / 300) = 7
