"""Drawing detections on images (RGB uint8, boxes xyxy in that image's pixels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["class_color", "draw_detections", "draw_skeletons", "plot_pr_curves"]


def class_color(label: int) -> tuple[int, int, int]:
    """A stable, well-separated RGB colour for a class index (golden-ratio hue steps)."""
    hue = int((label * 0.618033988749895 % 1.0) * 180)
    hsv = np.array([[[hue, 200, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_detections(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw boxes with class names (and scores) on a copy of ``image``.

    Args:
        image: (H, W, 3) RGB uint8.
        boxes: (K, 4) xyxy in ``image`` pixels.
        labels: (K,) contiguous class indices.
        scores: (K,) optional confidences, printed next to the name.
        class_names: Names indexed by label; the index is printed when absent.
        thickness: Line thickness; by default about 1/300 of the image's longer side, at least 1, and thinner for
            small objects (see below).

    Returns:
        (H, W, 3) RGB uint8 copy with the drawings.

    Lines and labels grow with the image but never beyond what the objects' median size allows: on a 2,048 px aerial
    scene of 20 px objects, image-sized labels (7 px lines, 30 px text) would hide the objects they name.
    """
    canvas = np.ascontiguousarray(image.copy())
    height, width = canvas.shape[:2]
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    typical = float(np.median(sides)) if len(sides) else float(max(height, width))
    line = thickness or max(1, min(round(max(height, width) / 300), round(typical / 12)))
    font_scale = max(0.3, min(max(height, width) / 1000, typical / 40))
    for i, (box, label) in enumerate(zip(np.asarray(boxes), np.asarray(labels), strict=True)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        color = class_color(int(label))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), color, line)
        name = class_names[int(label)] if class_names is not None else str(int(label))
        text = name if scores is None else f"{name} {float(scores[i]):.2f}"
        (tw, th), baseline = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        top = max(0, y1 - th - baseline)
        cv2.rectangle(canvas, (x1, top), (x1 + tw, top + th + baseline), color, -1)
        cv2.putText(canvas, text, (x1, top + th), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def draw_skeletons(
    image: np.ndarray,
    keypoints: np.ndarray,
    edges: Sequence[tuple[int, int]],
    threshold: float = 0.1,
    thickness: int | None = None,
) -> np.ndarray:
    """Draw each person's joints and the skeleton's edges between them on a copy of ``image``.

    Args:
        image: (H, W, 3) RGB uint8.
        keypoints: (P, K, 3) x, y in ``image`` pixels and a score (or visibility); joints at or below ``threshold``
            are not drawn, nor are edges that touch them.
        edges: Pairs of 0-based joint indices.
        threshold: The score a joint must exceed to be drawn.
        thickness: Line thickness; by default about 1/200 of the image's longer side, at least 1.

    Returns:
        (H, W, 3) RGB uint8 copy with the drawings; the joints of one person share a colour, per joint index.
    """
    canvas = np.ascontiguousarray(image.copy())
    line = thickness or max(1, round(max(canvas.shape[:2]) / 200))
    for person in np.asarray(keypoints, dtype=np.float64).reshape(len(keypoints), -1, 3):
        shown = person[:, 2] > threshold
        points = [(int(round(x)), int(round(y))) for x, y in person[:, :2]]
        for a, b in edges:
            if shown[a] and shown[b]:
                cv2.line(canvas, points[a], points[b], class_color(a + 1), line, cv2.LINE_AA)
        for j, point in enumerate(points):
            if shown[j]:
                cv2.circle(canvas, point, line + 1, class_color(j + 1), -1, cv2.LINE_AA)
    return canvas


def plot_pr_curves(
    recall: np.ndarray,
    precision: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    title: str,
) -> Path:
    """Save a precision-recall plot: one thin curve per class and their mean in bold.

    Args:
        recall: (R,) recall levels.
        precision: (R, K) precision of K classes at those recall levels; -1 (undefined: a class without ground
            truth) is left out.
        class_names: K names for the legend (with each class's AP).
        path: Output PNG.
        title: Plot title (e.g. the IoU threshold).

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(figsize=(7, 6), dpi=100)
    valid = [k for k in range(precision.shape[1]) if (precision[:, k] > -1).all()]
    show_legend = len(valid) <= 20  # beyond that the legend hides the plot
    for k in valid:
        rgb = np.array(class_color(k)) / 255.0
        label = f"{class_names[k]} {precision[:, k].mean():.3f}"
        axes.plot(recall, precision[:, k], linewidth=1, color=rgb, label=label if show_legend else None)
    if valid:
        mean = precision[:, valid].mean(axis=1)
        axes.plot(recall, mean, linewidth=3, color="black", label=f"all classes {mean.mean():.3f}")
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.01), title=title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
