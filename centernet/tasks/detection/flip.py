"""Flip test-time augmentation of the detection maps (as in CenterNet's ``--flip_test``).

The network sees each image and its mirror; the mirrored heatmap and size maps are flipped back and averaged with
the originals, the offset is the original's (a mirrored offset points the other way inside its cell). A stride-4
output cell ``j`` covers input pixels ``4j .. 4j+3``, which mirror onto cell ``Wo - 1 - j``, so flipping the maps
aligns them exactly.
"""

from __future__ import annotations

from torch import Tensor

__all__ = ["merge_flipped_maps"]

_FLIP_MERGE = {"heatmap": "mean", "size": "mean", "offset": "original"}


def merge_flipped_maps(maps: dict[str, Tensor], num_images: int) -> dict[str, Tensor]:
    """Merge the maps of a batch ``[images, flipped images]`` into maps of ``images``.

    Args:
        maps: Output maps of a (2N, 3, H, W) batch whose second half is the first half mirrored horizontally:
            ``heatmap`` (2N, C, Ho, Wo) logits, ``size`` (2N, 2, Ho, Wo) and ``offset`` (2N, 2, Ho, Wo) in cells.
        num_images: N.

    Returns:
        Maps of the N images: heatmap logits and sizes averaged with their flipped-back mirrors, the offset of
        the original images.

    Raises:
        ValueError: for a head whose outputs are not heatmap / size / offset (their mirror is not defined here).
    """
    unknown = sorted(set(maps) - set(_FLIP_MERGE))
    if unknown:
        raise ValueError(
            f"flip test-time augmentation supports heads with heatmap/size/offset outputs; this model also "
            f"outputs {unknown}"
        )
    merged = {}
    for key, value in maps.items():
        original, mirrored = value[:num_images], value[num_images:]
        # Heatmaps are averaged as logits: the mean of two logits ranks peaks like the mean of probabilities
        # for all practical purposes and does not saturate at 1.0 in float32.
        merged[key] = (original + mirrored.flip(-1)) / 2 if _FLIP_MERGE[key] == "mean" else original
    return merged
