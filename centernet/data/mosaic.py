"""Mosaic augmentation (YOLOv4, Bochkovskiy et al. 2020): four images on one canvas around a random centre.

Each image is resized so that its longer side is ``image_size`` and placed in one quadrant of a black
``2 * image_size`` square canvas, touching a centre drawn uniformly from the middle half of the canvas
(top-left image: its bottom-right corner at the centre, and so on). The canvas then goes through the normal
training pipeline, whose first step fits it back to ``image_size``: objects shrink by about half and each
training image shows four scenes, which helps with small, dense objects.

Keypoint data: the joints of each tile move with its pixels (the tile's resize scale and offset), leave with their
boxes, and become unlabelled outside the part of their tile that lands on the canvas; the training transform that
follows moves them again and swaps left and right on a mirror (:class:`~centernet.data.transforms.DetectionTransform`).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from centernet.boxes import Letterbox
from centernet.data.keypoints import unlabel_outside

__all__ = ["Mosaic"]

# load(index) -> (image (H, W, 3) uint8 RGB, boxes (n, 4) float32 x1 y1 x2 y2 pixels, labels (n,) int64), and for
# keypoint data a fourth element: the boxes' joints (n, K, 3) float32, x, y pixels and visibility (0: not labelled).
Loader = Callable[[int], tuple[np.ndarray, ...]]


class Mosaic:
    """Combine an image with three random others of the dataset, with probability ``p``.

    Args:
        image_size: Side of each tile's longer edge; the canvas is twice this.
        p: Probability of building a mosaic; otherwise the image is returned unchanged.
        min_visibility: A box keeping less than this fraction of its area inside its tile is dropped.
    """

    def __init__(self, image_size: int, p: float = 0.5, min_visibility: float = 0.3) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"mosaic probability must be in [0, 1], got {p}")
        if not 0 <= min_visibility <= 1:
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
        self.image_size = int(image_size)
        self.p = float(p)
        self.min_visibility = float(min_visibility)
        self.rng = np.random.default_rng()

    def set_random_seed(self, seed: int | None) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, index: int, load: Loader, count: int) -> tuple[np.ndarray, ...]:
        """The image ``index`` (via ``load``), or a mosaic of it and three random images of the ``count``.

        Returns:
            ``(image, boxes, labels)``: (H, W, 3) uint8 RGB; (m, 4) float32 ``x1, y1, x2, y2`` pixels of that
            image; (m,) int64 labels. When ``load`` returns joints (keypoint data), a fourth element: the (m, K, 3)
            float32 joints of the boxes in pixels of that image, those outside the visible part of their tile
            unlabelled (0, 0, 0).
        """
        if self.p == 0 or self.rng.random() >= self.p:
            return load(index)
        side = self.image_size
        canvas = np.zeros((2 * side, 2 * side, 3), dtype=np.uint8)
        xc, yc = (int(v) for v in self.rng.integers(side // 2, 3 * side // 2 + 1, size=2))
        indices = [index, *(int(i) for i in self.rng.integers(0, count, size=3))]
        all_boxes, all_labels, all_joints = [], [], []
        for tile, i in enumerate(indices):
            image, boxes, labels, *joints = load(i)  # joints: [] or [(n, K, 3)]
            height, width = image.shape[:2]
            new_h, new_w = Letterbox.fit((height, width), side).resized
            enlarging = side > max(height, width)
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR if enlarging else cv2.INTER_AREA)
            x0 = xc - new_w if tile in (0, 2) else xc  # tiles: 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right
            y0 = yc - new_h if tile in (0, 1) else yc
            # The part of the tile that lands on the canvas, in canvas and in tile coordinates.
            cx1, cy1 = max(x0, 0), max(y0, 0)
            cx2, cy2 = min(x0 + new_w, 2 * side), min(y0 + new_h, 2 * side)
            canvas[cy1:cy2, cx1:cx2] = image[cy1 - y0 : cy2 - y0, cx1 - x0 : cx2 - x0]
            sx, sy = new_w / width, new_h / height
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy])
            boxes += [x0, y0, x0, y0]
            inside = boxes.copy()
            inside[:, 0::2] = inside[:, 0::2].clip(cx1, cx2)
            inside[:, 1::2] = inside[:, 1::2].clip(cy1, cy2)
            area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            visible = (inside[:, 2] - inside[:, 0]) * (inside[:, 3] - inside[:, 1])
            keep = (visible >= self.min_visibility * area) & (inside[:, 2] - inside[:, 0] >= 1)
            keep &= inside[:, 3] - inside[:, 1] >= 1
            all_boxes.append(inside[keep])
            all_labels.append(np.asarray(labels, dtype=np.int64).reshape(-1)[keep])
            if joints:
                moved = np.asarray(joints[0], dtype=np.float64)[keep]  # (m, K, 3); boolean indexing copies
                moved[..., :2] = moved[..., :2] * [sx, sy] + [x0, y0]  # the boxes' scale and offset
                all_joints.append(unlabel_outside(moved, (cx1, cy1, cx2, cy2)))
        mosaic = (canvas, np.concatenate(all_boxes).astype(np.float32), np.concatenate(all_labels))
        return (*mosaic, np.concatenate(all_joints)) if all_joints else mosaic
