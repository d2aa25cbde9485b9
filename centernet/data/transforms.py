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

Keypoints (pose data) travel with their boxes through the same pipeline (albumentations' keypoint support): a
joint moves with the image, a mirror (``HorizontalFlip``, ``VerticalFlip``, ``Transpose``: any reflection turns
a left hand into a right one) swaps the left/right joint pairs of the dataset, a joint pushed out of the image
becomes unlabelled, and the joints of a dropped box go with it.

Evaluation: the :class:`~centernet.boxes.Letterbox` of ``Detector`` (longer side to ``image_size``, bilinear,
black padding at the bottom/right), so that validation during ``fit`` sees exactly the pixels ``centernet
validate`` feeds the network, and ``original = transformed / scale`` per axis undoes it exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np

from centernet.boxes import STRIDE_MULTIPLE, Letterbox
from centernet.data.keypoints import unlabel_outside

__all__ = ["BBOX_FORMAT", "DetectionTransform", "LetterboxTransform", "build_eval_transform", "build_train_transform"]

BBOX_FORMAT = "pascal_voc"


class DetectionTransform:
    """An albumentations pipeline for detection (training: its ``scale`` is (1.0, 1.0), the crop decides it).

    Args:
        pipeline: A ``Compose`` with ``bbox_params`` in :data:`BBOX_FORMAT` and ``label_fields=["labels",
            "box_index"]``, ``keypoint_params`` in ``"xy"`` format keeping joints outside the image, and
            ``save_applied_params=True`` (see :func:`_compose_training`).
        flip_permutation: Joint index -> the joint it becomes in a mirror image (keypoint data; see
            :func:`centernet.data.keypoints.flip_permutation`); identity when not given.
    """

    def __init__(self, pipeline: A.Compose, flip_permutation: Sequence[int] | None = None) -> None:
        self.pipeline = pipeline
        self.flip_permutation = None if flip_permutation is None else np.asarray(flip_permutation, dtype=np.int64)

    def __call__(
        self, *, image: np.ndarray, bboxes: np.ndarray, labels: np.ndarray, keypoints: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Transform one image, its boxes and (pose data) their joints.

        Args:
            image: (H, W, 3) uint8 RGB.
            bboxes: (n, 4) float32 ``x1, y1, x2, y2`` in pixels of ``image``, inside the image, non-degenerate.
            labels: (n,) int64 contiguous labels, one per box.
            keypoints: (n, K, 3) joints of the boxes: x, y in pixels of ``image`` and visibility (0: not labelled).

        Returns:
            dict with ``image`` (H', W', 3) uint8, ``bboxes`` (m, 4) float32 ``x1, y1, x2, y2`` in pixels of the
            transformed image (m <= n, boxes dropped by the crop are gone), ``labels`` (m,) int64 aligned with
            ``bboxes``, ``scale`` (1.0, 1.0), and with ``keypoints`` given, ``keypoints`` (m, K, 3) float32 in
            pixels of the transformed image (joints outside it unlabelled: visibility 0, x = y = 0).
        """
        bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
        count = len(bboxes)
        points = np.zeros((0, 2), np.float32) if keypoints is None else np.asarray(keypoints)[..., :2].reshape(-1, 2)
        out = self.pipeline(
            image=image, bboxes=bboxes, labels=labels, box_index=np.arange(count), keypoints=points.astype(np.float32)
        )
        result = {
            "image": out["image"],
            "bboxes": np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4),
            "labels": np.asarray(out["labels"], dtype=np.int64).reshape(-1),
            "scale": (1.0, 1.0),
        }
        if keypoints is not None:
            keypoints = np.asarray(keypoints, dtype=np.float32)  # (n, K, 3)
            moved = np.asarray(out["keypoints"], dtype=np.float32)[:, :2].reshape(keypoints.shape[:2] + (2,))
            applied = [name for name, _ in out.get("applied_transforms", [])]
            mirrors = sum(name in _MIRRORS for name in applied)
            # albumentations mirrors keypoints as pixel indices (x -> W - 1 - x) but boxes, and our joints, as
            # continuous coordinates (x -> W - x): an odd number of flips along an axis leaves the joints one
            # pixel short along it (exact when the flips come after the resizing, as in the default pipeline).
            moved[..., 0] += applied.count("HorizontalFlip") % 2
            moved[..., 1] += applied.count("VerticalFlip") % 2
            joints = np.concatenate([moved, keypoints[..., 2:]], axis=-1)  # (n, K, 3)
            if mirrors % 2 and self.flip_permutation is not None:
                joints = joints[:, np.argsort(self.flip_permutation)]  # the mirror's left hand is the right hand
            kept = np.asarray(out["box_index"], dtype=np.int64).reshape(-1)
            height, width = out["image"].shape[:2]
            result["keypoints"] = unlabel_outside(joints[kept], (0, 0, width, height))
        return result

    def set_random_seed(self, seed: int | None) -> None:
        """Reseed the pipeline's own random state (albumentations ignores numpy's and torch's global seeds)."""
        self.pipeline.set_random_seed(seed)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pipeline={self.pipeline!r})"


class LetterboxTransform:
    """The evaluation transform: :meth:`Letterbox.fit <centernet.boxes.Letterbox.fit>` to ``image_size``.

    Args:
        image_size: Side of the square output, a positive multiple of 32.
    """

    def __init__(self, image_size: int) -> None:
        _check_image_size(image_size)
        self.image_size = int(image_size)

    def __call__(
        self, *, image: np.ndarray, bboxes: np.ndarray, labels: np.ndarray, keypoints: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The letterboxed image, boxes in its pixels (``x1, y1, x2, y2``), labels and ``scale`` (sx, sy), and the
        (n, K, 3) joints in its pixels when given."""
        letterbox = Letterbox.fit(image.shape[:2], self.image_size)
        boxes = letterbox.to_input(np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)).astype(np.float32)
        out = {
            "image": letterbox.apply(image),
            "bboxes": boxes,
            "labels": np.asarray(labels, dtype=np.int64).reshape(-1),
            "scale": letterbox.scale,
        }
        if keypoints is not None:
            sx, sy = letterbox.scale
            joints = np.asarray(keypoints, dtype=np.float64) * np.array([sx, sy, 1.0])  # (n, K, 3)
            out["keypoints"] = np.where(joints[..., 2:] > 0, joints, 0.0).astype(np.float32)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(image_size={self.image_size})"


def build_train_transform(
    image_size: int,
    scale_range: tuple[float, float] = (0.6, 1.4),
    hflip_prob: float = 0.5,
    color_jitter: float = 0.3,
    min_visibility: float = 0.3,
    crop: bool = True,
) -> DetectionTransform:
    """Random scale, crop to ``image_size`` x ``image_size``, horizontal flip and colour jitter.

    Args:
        image_size: Output side in pixels, a positive multiple of 32.
        scale_range: (min, max) zoom factor applied after fitting the longer side to ``image_size``; 0 < min <= max.
        hflip_prob: Probability of a horizontal flip, in [0, 1].
        color_jitter: Brightness, contrast and saturation jitter strength in [0, 1) (factor uniform in
            ``1 +- color_jitter``); the hue shifts by at most ``color_jitter / 10`` of the colour circle. 0 disables it.
        min_visibility: A box keeping less than this fraction of its area after the crop is dropped, in [0, 1].
        crop: Fit, zoom and crop as above; ``False`` for images that already are ``image_size`` crops (native-
            resolution training, :mod:`centernet.data.crops`, zooms and crops them): flip and jitter only.

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
    ]
    if not crop:
        steps = []
    steps.append(A.HorizontalFlip(p=hflip_prob))
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


# Transforms that mirror the image: an odd number of them swaps the left and right joints.
_MIRRORS = frozenset({"HorizontalFlip", "VerticalFlip", "Transpose"})


def _compose_training(steps: list[Any], min_visibility: float) -> DetectionTransform:
    """The training pipeline around ``steps``: boxes clipped to the image, and dropped when a crop leaves less
    than ``min_visibility`` of their area or less than a pixel of width or height. ``strict=True`` makes a
    misspelt transform argument an error."""
    if not 0 <= min_visibility <= 1:
        raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
    bbox_params = A.BboxParams(
        format=BBOX_FORMAT,
        label_fields=["labels", "box_index"],  # box_index: which boxes survive, so that their joints follow
        min_visibility=min_visibility,
        min_width=1.0,
        min_height=1.0,
        clip=True,
        filter_invalid_bboxes=True,
    )
    # Joints are kept wherever they land (unlabelled afterwards when outside): albumentations would drop them and
    # lose their order. Which mirrors ran is read from the applied parameters.
    keypoint_params = A.KeypointParams(format="xy", remove_invisible=False)
    pipeline = A.Compose(
        steps, bbox_params=bbox_params, keypoint_params=keypoint_params, save_applied_params=True, strict=True
    )
    return DetectionTransform(pipeline)


def build_eval_transform(image_size: int) -> LetterboxTransform:
    """Deterministic letterbox: longer side to ``image_size``, black padding at the bottom/right.

    Args:
        image_size: Output side in pixels, a positive multiple of 32.
    """
    return LetterboxTransform(image_size)


def _black_pad(image_size: int, position: str) -> A.PadIfNeeded:
    """Pad to at least ``image_size`` x ``image_size`` with black; ``position`` places the image."""
    return A.PadIfNeeded(
        min_height=image_size, min_width=image_size, position=position, border_mode=cv2.BORDER_CONSTANT, fill=0
    )


def _check_image_size(image_size: int) -> None:
    if isinstance(image_size, bool) or int(image_size) != image_size or image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size!r}")
    if image_size % STRIDE_MULTIPLE:
        raise ValueError(
            f"image_size must be a multiple of {STRIDE_MULTIPLE} (the backbone's total stride), got {image_size}"
        )
