"""Native-resolution training: random network-sized crops of images kept at their own scale.

Fitting a 2,300 px aerial image to a 384 px input shrinks its 30 px trees to 5 px. With ``native_resolution`` the
data module instead keeps every image at its own scale (a random zoom from ``scale_range`` around 1.0) and trains
on ``image_size`` crops of it, as sliced inference (:mod:`centernet.tiles`) will see it.

Crops per epoch follow the image's area. An image of (H, W) gets ``ceil(W z / c) * ceil(H z / c)`` crops per
epoch, where ``z = max(1, scale_range[1])`` is the largest zoom and ``c = image_size * 7 / 8`` leaves a margin of
``image_size / 16`` on each side: crop ``j`` is drawn at a random position around cell ``j`` of that grid over the
image, containing the cell plus the margin. So a 10,000 px square gives hundreds of crops per epoch, an image
smaller than a crop gives one, and every object whose centre lies in the image and whose half-size is within the
margin is entirely inside at least one crop of every epoch (larger ones are kept when a crop shows
``min_visibility`` of them). ``object_bias`` (off by default, so that background stays represented) is the
probability that a crop is instead placed around a random object of the image.

Only the crop's own pixels are resampled (``cv2.warpAffine`` writes the ``image_size`` square directly), never
the whole image. Boxes are cut by the crop with the ``min_visibility`` rule of the training transforms; the joints
of keypoint data move with the same zoom and shift, leave with their boxes, and become unlabelled outside the crop.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from centernet.data.keypoints import unlabel_outside

__all__ = ["NativeCrops"]


class NativeCrops:
    """Plans and cuts the crops of native-resolution training.

    Args:
        image_size: Side of the square crop (the network input) in pixels.
        scale_range: (min, max) random zoom of each crop around the image's own scale (1.0).
        object_bias: Probability that a crop is centred near a random object instead of on its grid cell.
        min_visibility: A box keeping less than this fraction of its area inside the crop is dropped.
    """

    def __init__(
        self,
        image_size: int,
        scale_range: tuple[float, float] = (0.75, 1.25),
        object_bias: float = 0.0,
        min_visibility: float = 0.3,
    ) -> None:
        low, high = (float(v) for v in scale_range)
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < min <= max, got {tuple(scale_range)}")
        if not 0 <= object_bias <= 1:
            raise ValueError(f"crop_object_bias is a probability in [0, 1], got {object_bias}")
        if not 0 <= min_visibility <= 1:
            raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
        self.image_size = int(image_size)
        self.scale_range = (low, high)
        self.object_bias = float(object_bias)
        self.min_visibility = float(min_visibility)
        self.margin = self.image_size / 16  # in crop pixels, on each side of the cell

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) of the crop grid of an image of (height, width) pixels (see the module docstring)."""
        cell = (self.image_size - 2 * self.margin) / max(1.0, self.scale_range[1])  # original pixels
        return max(1, math.ceil(height / cell)), max(1, math.ceil(width / cell))

    def count(self, height: int, width: int) -> int:
        """Crops per epoch of an image of (height, width) pixels."""
        rows, columns = self.grid(height, width)
        return rows * columns

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray,
        cell: int,
        rng: np.random.Generator,
        keypoints: np.ndarray | None = None,
    ) -> tuple[np.ndarray, ...]:
        """Crop ``cell`` (row-major index into :meth:`grid`) of an image, at a random zoom and position.

        Args:
            image: (H, W, 3) uint8 RGB at its own resolution.
            boxes: (n, 4) float32 ``x1, y1, x2, y2`` pixels of ``image``.
            labels: (n,) int64.
            cell: Which grid cell the crop must contain (with the margin).
            rng: The sample's random generator.
            keypoints: Keypoint data: (n, K, 3) joints of the boxes, x, y pixels of ``image`` and visibility.

        Returns:
            ``(crop, boxes, labels)``: (image_size, image_size, 3) uint8 (black beyond the image); the boxes kept
            by the ``min_visibility`` rule, clipped, in crop pixels; their labels. With ``keypoints``, a fourth
            element: the kept boxes' (m, K, 3) float32 joints in crop pixels, moved by the same zoom and shift as
            the pixels, those outside the crop unlabelled (0, 0, 0; see :func:`~centernet.data.keypoints.
            unlabel_outside`).
        """
        height, width = image.shape[:2]
        rows, columns = self.grid(height, width)
        scale = float(rng.uniform(*self.scale_range))  # crop pixels per original pixel
        footprint = self.image_size / scale  # the crop's side in original pixels
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if len(boxes) and self.object_bias > 0 and rng.random() < self.object_bias:
            x1, y1, x2, y2 = boxes[rng.integers(len(boxes))]
            x0 = _place((x1 + x2) / 2 - footprint * rng.uniform(0.25, 0.75), footprint, width)
            y0 = _place((y1 + y2) / 2 - footprint * rng.uniform(0.25, 0.75), footprint, height)
        else:
            row, column = divmod(cell % (rows * columns), columns)
            margin = self.margin / scale
            x0 = _origin(column, columns, width, footprint, margin, rng)
            y0 = _origin(row, rows, height, footprint, margin, rng)
        # Whole-pixel origins: at zoom 1 the crop is then an exact copy of the pixels (no interpolation blur).
        x0, y0 = math.floor(x0), math.floor(y0)
        # Output pixel (u, v) samples the image at (x0 + u / scale, y0 + v / scale): only the crop is resampled.
        matrix = np.array([[scale, 0.0, -x0 * scale], [0.0, scale, -y0 * scale]])
        side = self.image_size
        crop = cv2.warpAffine(
            image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        moved = (boxes - [x0, y0, x0, y0]) * scale  # (n, 4) crop pixels
        inside = moved.clip(0, side)
        area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
        visible_w, visible_h = inside[:, 2] - inside[:, 0], inside[:, 3] - inside[:, 1]
        keep = (visible_w * visible_h >= self.min_visibility * area) & (visible_w >= 1) & (visible_h >= 1)
        kept = (crop, inside[keep].astype(np.float32), np.asarray(labels, dtype=np.int64).reshape(-1)[keep])
        if keypoints is None:
            return kept
        joints = np.asarray(keypoints, dtype=np.float64)[keep]  # (m, K, 3); boolean indexing copies
        joints[..., :2] = (joints[..., :2] - [x0, y0]) * scale  # the matrix above, applied to x, y
        return (*kept, unlabel_outside(joints, (0, 0, side, side)))


def _origin(index: int, count: int, length: int, footprint: float, margin: float, rng: np.random.Generator) -> float:
    """A random crop start along one axis whose window holds cell ``index`` of ``count`` plus ``margin`` each side."""
    if footprint >= length:  # the whole axis fits: a random position of the padding
        return float(rng.uniform(length - footprint, 0.0))
    cell_start, cell_end = index * length / count, (index + 1) * length / count
    # [cell_end + margin - footprint, cell_start - margin] is not empty: the grid was sized for the largest zoom.
    start = rng.uniform(cell_end + margin - footprint, max(cell_end + margin - footprint, cell_start - margin))
    return float(min(max(start, 0.0), length - footprint))  # inside the image: what was held stays held


def _place(start: float, footprint: float, length: int) -> float:
    """``start`` moved so that the window stays inside an axis of ``length`` (or centred on it when larger)."""
    if footprint >= length:
        return (length - footprint) / 2
    return float(min(max(start, 0.0), length - footprint))
