"""Keypoints in the data: the joints' metadata of a pose dataset, and the validation policy of the joints.

A record's ``keypoints`` are (n, K, 3): x, y and a visibility per joint of each of its n objects, in the record's
box coordinates (pixels; relative while ``normalized``); visibility 0 means "not labelled" (its x, y are ignored),
1 "labelled, occluded", 2 "labelled, visible" (COCO's convention).

The policy (applied with the box policy, :mod:`centernet.data.validation`): a labelled joint with non-finite
coordinates, or outside its image, becomes unlabelled with a :class:`~centernet.data.validation.DataWarning`
naming the file, the object and the joint; its object stays. A wrong number of values per object is an error of
the parser, which knows the file and the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "COCO_JOINTS",
    "COCO_SKELETON",
    "apply_keypoint_policy",
    "flip_pairs_from_names",
    "keypoint_info",
    "unlabel_outside",
]

# COCO's 17 person keypoints, in the order of its person category, and its skeleton (0-based joint pairs).
COCO_JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
COCO_SKELETON: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1)
    for a, b in (
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
        (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    )
)  # fmt: skip

_SIDES = (("left", "right"), ("l_", "r_"), ("_l", "_r"), ("l", "r"))


def flip_pairs_from_names(names: Sequence[str]) -> list[list[int]]:
    """Pairs ``[i, j]``, i < j, of joints whose names differ only by left/right (``left_knee`` / ``right_knee``,
    ``l_knee`` / ``r_knee``, ``knee_l`` / ``knee_r``, ``lknee`` / ``rknee``; case-insensitive)."""
    lowered = [name.lower() for name in names]
    index = {name: i for i, name in enumerate(lowered)}
    pairs = set()
    for i, name in enumerate(lowered):
        for left, right in _SIDES:
            candidates = []
            if name.startswith(left):
                candidates.append(right + name[len(left) :])
            if name.endswith(left) and len(left) > 1:
                candidates.append(name[: -len(left)] + right)
            for other in candidates:
                j = index.get(other)
                if j is not None and j != i:
                    pairs.add((min(i, j), max(i, j)))
    return [list(pair) for pair in sorted(pairs)]


def keypoint_info(
    joint_names: Sequence[str], edges: Sequence[Sequence[int]] = (), flip_pairs: Sequence[Sequence[int]] | None = None
) -> dict[str, Any]:
    """The joints of a dataset as a plain dict (``joint_names``, 0-based ``edges`` and ``flip_pairs``): what the
    data module links into a pose model (``model.task_data``) and the training flips use. Without ``flip_pairs``
    they follow from the joint names (:func:`flip_pairs_from_names`)."""
    names = [str(n) for n in joint_names]
    pairs = flip_pairs_from_names(names) if flip_pairs is None else [[int(a), int(b)] for a, b in flip_pairs]
    return {"joint_names": names, "edges": [[int(a), int(b)] for a, b in edges], "flip_pairs": pairs}


def flip_permutation(info: dict[str, Any]) -> np.ndarray:
    """Joint index -> the index of the joint it becomes in a mirror image (itself when unpaired)."""
    permutation = np.arange(len(info["joint_names"]))
    for a, b in info["flip_pairs"]:
        permutation[a], permutation[b] = b, a
    return permutation


def unlabel_outside(keypoints: np.ndarray, window: tuple[float, float, float, float]) -> np.ndarray:
    """Unlabel the joints outside a window: what training does to the joints that a crop, a mosaic tile or an
    augmentation pushes out of the visible pixels (their objects stay while their boxes do).

    Args:
        keypoints: (n, K, 3) x, y pixels and visibility.
        window: ``x1, y1, x2, y2`` in the same pixels; a joint on its border is inside.

    Returns:
        (n, K, 3) float32: joints outside the window, or unlabelled already, are 0, 0, 0.
    """
    x1, y1, x2, y2 = window
    keypoints = np.asarray(keypoints, dtype=np.float32)
    x, y, visibility = keypoints[..., 0], keypoints[..., 1], keypoints[..., 2]
    inside = (x >= x1) & (x <= x2) & (y >= y1) & (y <= y2) & (visibility > 0)
    return np.where(inside[..., None], keypoints, 0.0).astype(np.float32)


def apply_keypoint_policy(
    keypoints: np.ndarray, image_size: tuple[int, int], refs: Sequence[str], where: str, dropped: list[str]
) -> np.ndarray:
    """Unlabel the joints that are not finite or lie outside the image (each one reported in ``dropped``).

    Args:
        keypoints: (n, K, 3) x, y pixels and visibility.
        image_size: (H, W) of the image; a joint may lie on its border (0 <= x <= W, 0 <= y <= H).
        refs: Where each of the n objects was read (``"annotation id=7"``, ``"line 3"``).
        where: The annotation file and image, for the messages.
        dropped: Receives one message per unlabelled joint.

    Returns:
        (n, K, 3) float64: unlabelled joints have visibility 0 and x, y 0.
    """
    height, width = image_size
    keypoints = np.asarray(keypoints, dtype=np.float64).copy()
    labelled = keypoints[..., 2] > 0
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(keypoints[..., :2]).all(-1)
        inside = (keypoints[..., 0] >= 0) & (keypoints[..., 0] <= width) & (keypoints[..., 1] >= 0)
        inside &= keypoints[..., 1] <= height
    bad = labelled & ~(finite & inside)
    for i, k in zip(*np.nonzero(bad), strict=True):
        x, y = keypoints[i, k, :2]
        reason = "has non-finite coordinates" if not finite[i, k] else f"lies outside the {width}x{height} image"
        dropped.append(f"{where}: joint {k} of {refs[i]} at ({x:g}, {y:g}) {reason}; unlabelled")
    keypoints[~labelled | bad] = 0.0
    return keypoints
