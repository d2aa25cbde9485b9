"""Albumentations pipelines for training and evaluation.

Both pipelines take and return boxes in ``pascal_voc`` format (``x1, y1, x2, y2`` in absolute pixels of the
image they come with), clip them to the image and drop degenerate ones. They are wrapped in a
:class:`DetectionTransform`, which also reports the ``scale`` of the batch contract: (sx, sy), transformed
pixels per original pixel along x and y.

Training: ``LongestMaxSize(image_size)`` -> ``RandomScale`` (factor uniform in ``scale_range``) ->
``PadIfNeeded`` to at least ``image_size`` (black, at a random position so that small images do not always sit
in a corner) -> ``RandomCrop(image_size, image_size)`` -> ``HorizontalFlip`` -> ``ColorJitter``. This is the
random scale-and-crop of CenterNet (Zhou et al., 2019, Sec. 5) in albumentations terms. A box that keeps less
than ``min_visibility`` of its area after the crop, or becomes narrower or lower than one pixel, is dropped:
its centre would be off the image or its size meaningless.

Evaluation: ``LongestMaxSize(image_size)`` -> ``PadIfNeeded`` to ``image_size`` x ``image_size`` with black
at the bottom/right, so that ``original = transformed / scale`` per axis. The resize makes the longer side
``image_size`` and rounds the shorter one to whole pixels (``round(side * image_size / max(h, w))``, as
albumentations does); the boxes follow the image exactly, so ``scale = (new_w / w, new_h / h)`` from those
rounded sides undoes the resize exactly.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np

__all__ = ["BBOX_FORMAT", "DetectionTransform", "build_eval_transform", "build_train_transform"]

BBOX_FORMAT = "pascal_voc"
_STRIDE_MULTIPLE = 32


class DetectionTransform:
    """An albumentations pipeline for detection plus the scale it applies.

    Args:
        pipeline: A ``Compose`` with ``bbox_params`` in :data:`BBOX_FORMAT` and ``label_fields=["labels"]``.
        letterbox_size: If the pipeline resizes the longer side to this size without cropping (the evaluation
            pipeline), ``scale = (new_w / w, new_h / h)`` of that resize; ``None`` (training) reports (1.0, 1.0).
    """

    def __init__(self, pipeline: A.Compose, letterbox_size: int | None = None) -> None:
        self.pipeline = pipeline
        self.letterbox_size = letterbox_size

    def __call__(self, *, image: np.ndarray, bboxes: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Transform one image and its boxes.

        Args:
            image: (H, W, 3) uint8 RGB.
            bboxes: (n, 4) float32 ``x1, y1, x2, y2`` in pixels of ``image``, inside the image, non-degenerate.
            labels: (n,) int64 contiguous labels, one per box.

        Returns:
            dict with ``image`` (H', W', 3) uint8, ``bboxes`` (m, 4) float32 ``x1, y1, x2, y2`` in pixels of the
            transformed image (m <= n, boxes dropped by the crop are gone), ``labels`` (m,) int64 aligned with
            ``bboxes``, and ``scale`` ((sx, sy) transformed pixels per original pixel; (1.0, 1.0) when not
            letterboxing).
        """
        height, width = image.shape[:2]
        out = self.pipeline(image=image, bboxes=bboxes, labels=labels)
        scale = (1.0, 1.0)
        if self.letterbox_size is not None:
            ratio = self.letterbox_size / max(height, width)
            # The same rounding as albumentations' LongestMaxSize, so the scale is that of the pixels produced.
            scale = (max(1, round(width * ratio)) / width, max(1, round(height * ratio)) / height)
        return {
            "image": out["image"],
            "bboxes": np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(out["labels"], dtype=np.int64).reshape(-1),
            "scale": scale,
        }

    def set_random_seed(self, seed: int | None) -> None:
        """Reseed the pipeline's own random state (albumentations ignores numpy's and torch's global seeds)."""
        self.pipeline.set_random_seed(seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(letterbox_size={self.letterbox_size}, pipeline={self.pipeline!r})"


def build_train_transform(
    image_size: int,
    scale_range: tuple[float, float] = (0.6, 1.4),
    hflip_prob: float = 0.5,
    color_jitter: float = 0.3,
    min_visibility: float = 0.3,
) -> DetectionTransform:
    """Random scale, crop to ``image_size`` x ``image_size``, horizontal flip and colour jitter.

    Args:
        image_size: Output side in pixels, a positive multiple of 32.
        scale_range: (min, max) zoom factor applied after fitting the longer side to ``image_size``; 0 < min <= max.
        hflip_prob: Probability of a horizontal flip, in [0, 1].
        color_jitter: Brightness, contrast and saturation jitter strength in [0, 1) (factor uniform in
            ``1 +- color_jitter``); the hue shifts by at most ``color_jitter / 10`` of the colour circle. 0 disables it.
        min_visibility: A box keeping less than this fraction of its area after the crop is dropped, in [0, 1].

    Returns:
        The transform; its output image is always ``image_size`` x ``image_size``.
    """
    _check_image_size(image_size)
    low, high = (float(v) for v in scale_range)
    if not 0 < low <= high:
        raise ValueError(f"scale_range must satisfy 0 < min <= max, got {tuple(scale_range)}")
    if not 0 <= hflip_prob <= 1:
        raise ValueError(f"hflip_prob must be in [0, 1], got {hflip_prob}")
    if not 0 <= color_jitter < 1:
        raise ValueError(f"color_jitter must be in [0, 1), got {color_jitter}")
    steps: list[A.BasicTransform] = [
        A.LongestMaxSize(max_size=image_size),
        A.RandomScale(scale_limit=(low - 1.0, high - 1.0), p=1.0),  # albumentations samples 1 + U(limit)
        _black_pad(image_size, "random"),
        A.RandomCrop(height=image_size, width=image_size),
        A.HorizontalFlip(p=hflip_prob),
    ]
    if color_jitter > 0:
        steps.append(
            A.ColorJitter(
                brightness=color_jitter,
                contrast=color_jitter,
                saturation=color_jitter,
                hue=color_jitter / 10,  # small: large hue shifts change what some objects look like
                p=1.0,
            )
        )
    return _compose_training(steps, min_visibility)


def _compose_training(steps: list[Any], min_visibility: float) -> DetectionTransform:
    """The training pipeline around ``steps``: boxes clipped to the image, and dropped when a crop leaves less
    than ``min_visibility`` of their area or less than a pixel of width or height. ``strict=True`` makes a
    misspelt transform argument an error."""
    if not 0 <= min_visibility <= 1:
        raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
    bbox_params = A.BboxParams(
        format=BBOX_FORMAT,
        label_fields=["labels"],
        min_visibility=min_visibility,
        min_width=1.0,
        min_height=1.0,
        clip=True,
        filter_invalid_bboxes=True,
    )
    return DetectionTransform(A.Compose(steps, bbox_params=bbox_params, strict=True))


def build_eval_transform(image_size: int) -> DetectionTransform:
    """Deterministic letterbox: longer side to ``image_size``, black padding at the bottom/right.

    Args:
        image_size: Output side in pixels, a positive multiple of 32.

    Returns:
        The transform; its output image is ``image_size`` x ``image_size`` and its ``scale`` is
        ``(new_w / w, new_h / h)`` (see the module docstring for the rounding of the shorter side).
    """
    _check_image_size(image_size)
    steps = [
        A.LongestMaxSize(max_size=image_size),
        _black_pad(image_size, "top_left"),
    ]
    bbox_params = A.BboxParams(format=BBOX_FORMAT, label_fields=["labels"], clip=True, filter_invalid_bboxes=True)
    return DetectionTransform(A.Compose(steps, bbox_params=bbox_params, strict=True), letterbox_size=image_size)


def _black_pad(image_size: int, position: str) -> A.PadIfNeeded:
    """Pad to at least ``image_size`` x ``image_size`` with black; ``position`` places the image."""
    return A.PadIfNeeded(
        min_height=image_size, min_width=image_size, position=position, border_mode=cv2.BORDER_CONSTANT, fill=0
    )


def _check_image_size(image_size: int) -> None:
    if isinstance(image_size, bool) or int(image_size) != image_size or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if image_size % _STRIDE_MULTIPLE:
        raise ValueError(
            f"image_size must be a multiple of {_STRIDE_MULTIPLE} (the backbone's total stride), got {image_size}"
        )
