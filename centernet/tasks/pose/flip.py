"""Flip test-time augmentation of the pose maps: the mirror's maps flipped back, its left and right joints
swapped (pairs from the dataset's :class:`~centernet.tasks.pose.skeleton.Skeleton`), then averaged.

Geometry: a stride-R cell ``j`` mirrors onto cell ``Wo - 1 - j``, and a point at ``x`` output cells onto
``Wo - x``. A joint offset ``dx`` regressed at cell ``c`` (from its point, the top-left corner ``c``) points at
``c + dx``; in the mirror the same cell holds ``dx'`` pointing at ``Wo - (c + dx)`` from ``Wo - 1 - c``, so
``dx = 1 - dx'``. Vertical offsets are unchanged. Sub-cell offsets (``offset``, ``joint_offset``) are taken from
the original image only, as in detection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["merge_flipped_pose_maps"]


def merge_flipped_pose_maps(
    maps: Mapping[str, Tensor], num_images: int, flip_permutation: Sequence[int]
) -> dict[str, Tensor]:
    """Merge the maps of a batch ``[images, mirrored images]`` into maps of ``images``.

    Args:
        maps: :class:`~centernet.tasks.pose.heads.PoseHead`'s maps of the 2N images.
        num_images: N.
        flip_permutation: Joint index -> its mirror's joint index (``Skeleton.flip_permutation()``).

    Returns:
        The N images' maps: heatmaps (as logits), sizes and joint offsets from the centre averaged with the mirror's.
    """
    permutation = torch.as_tensor(list(flip_permutation), dtype=torch.long, device=maps["heatmap"].device)
    merged: dict[str, Tensor] = {}
    for key, value in maps.items():
        original, mirrored = value[:num_images], value[num_images:].flip(-1)
        if key in ("offset", "joint_offset"):
            merged[key] = original
            continue
        if key == "joint_heatmap":
            mirrored = mirrored[:, permutation]
        elif key == "joints":
            n, channels, out_h, out_w = mirrored.shape
            pairs = mirrored.view(n, channels // 2, 2, out_h, out_w)[:, permutation]  # (N, K, 2, Ho, Wo)
            mirrored = torch.stack([1 - pairs[:, :, 0], pairs[:, :, 1]], dim=2).view(n, channels, out_h, out_w)
        elif key not in ("heatmap", "size"):
            raise ValueError(f"flip test-time augmentation does not know how to mirror the pose output {key!r}")
        merged[key] = (original + mirrored) / 2
    return merged
