"""The prior heatmap: a class-agnostic picture of where the previous frame's objects were (CenterTrack's input).

Each box is drawn as an elliptical Gaussian peak of value 1 at its centre: radii ``r = floor(0.54 * side / 2)``
pixels per axis (TTFNet's kernel, the detection task's default heatmap), ``sigma = (2 r + 1) / 6``, truncated at
the radius, merged by element-wise max. The map is at the network input's resolution, like the images.

In training it is drawn from the previous frame's ground truth with the paper's noise (Zhou, Koltun & Krähenbühl
2020, section 4.3) so that the network learns not to trust it blindly: centres jittered by a Gaussian of
``jitter`` times the box size, each object dropped with probability ``drop``, and with probability
``false_positive`` a spurious peak added near an object. At inference the tracker draws its own previous
detections (no noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PriorNoise", "noisy_prior_boxes", "render_prior_heatmap"]

_EXTENT = 0.54


@dataclass(frozen=True)
class PriorNoise:
    """Noise of the training prior heatmap (CenterTrack's defaults).

    Attributes:
        jitter: Standard deviation of each centre's displacement, as a fraction of the box's width / height.
        drop: Probability that an object is missing from the prior.
        false_positive: Probability that an object brings a spurious peak next to it.
    """

    jitter: float = 0.05
    drop: float = 0.4
    false_positive: float = 0.1

    def __post_init__(self) -> None:
        if self.jitter < 0 or not 0 <= self.drop <= 1 or not 0 <= self.false_positive <= 1:
            raise ValueError(f"need jitter >= 0 and drop, false_positive in [0, 1], got {self}")


def noisy_prior_boxes(rng: np.random.Generator, boxes: np.ndarray, noise: PriorNoise) -> np.ndarray:
    """The boxes to draw: ``boxes`` (n, 4) xyxy jittered, some dropped, some false positives added; (m, 4)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]  # (n, 2)
    shift = rng.normal(0.0, noise.jitter, size.shape) * size  # (n, 2)
    moved = boxes + np.tile(shift, 2)
    kept = moved[rng.random(len(boxes)) >= noise.drop]
    # A false positive sits about one box size away from its object, in a random direction (the paper's choice:
    # the confusions a tracker makes are with nearby objects).
    spurious = rng.random(len(boxes)) < noise.false_positive
    away = rng.normal(0.0, 1.0, (int(spurious.sum()), 2)) * size[spurious]
    return np.concatenate([kept, boxes[spurious] + np.tile(away, 2)]) if spurious.any() else kept


def render_prior_heatmap(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Draw ``boxes`` (n, 4) xyxy pixels into an (H, W) float32 map in [0, 1] (``size`` = (H, W)).

    Centres outside the map draw nothing (their peak would be cut); the rest draw their full truncated peak.
    """
    height, width = size
    heatmap = np.zeros((height, width), dtype=np.float32)
    for x1, y1, x2, y2 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
        if not (0 <= cx < width and 0 <= cy < height):
            continue
        rx = max(0, int(_EXTENT * max(x2 - x1, 0) / 2))
        ry = max(0, int(_EXTENT * max(y2 - y1, 0) / 2))
        xs = np.arange(max(cx - rx, 0), min(cx + rx + 1, width))
        ys = np.arange(max(cy - ry, 0), min(cy + ry + 1, height))
        sx, sy = (2 * rx + 1) / 6, (2 * ry + 1) / 6
        peak = np.exp(-((ys[:, None] - cy) ** 2) / (2 * sy**2) - ((xs[None, :] - cx) ** 2) / (2 * sx**2))
        window = heatmap[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1]
        np.maximum(window, peak.astype(np.float32), out=window)
    return heatmap
