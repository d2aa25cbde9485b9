"""The criterion of the size head (CenterNet): focal loss on the heatmap, L1 on size and offset at the centres."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from centernet.distributed import global_mean_count
from centernet.losses import focal_loss_with_logits, masked_l1_loss
from centernet.tasks.detection.config import DetectionLossConfig
from centernet.tasks.detection.targets import CenterNetTargets, render_targets

__all__ = ["CenterNetCriterion", "heatmap_targets"]


def _gather_at(maps: Tensor, indices: Tensor) -> Tensor:
    """Read a dense map at flattened cell indices.

    Args:
        maps: (N, K, Ho, Wo) dense predictions.
        indices: (N, D) int64 flattened cells ``y * Wo + x``.

    Returns:
        (N, D, K) the predictions at those cells.
    """
    num_images, channels = maps.shape[:2]
    flat = maps.reshape(num_images, channels, -1)  # (N, K, Ho * Wo)
    gathered = flat.gather(2, indices.unsqueeze(1).expand(-1, channels, -1))  # (N, K, D)
    return gathered.transpose(1, 2)  # (N, D, K)


class CenterNetCriterion(nn.Module):
    """Loss of CenterNet: focal loss on the heatmap, L1 on size and offset at the object centres.

    Size and offset predictions are read at each object's centre cell, so two objects sharing a cell both
    pull that cell's prediction (towards their mean, under L1 towards their median). The focal loss is
    normalised by ``max(1, number of objects in the batch)`` and the L1 losses by the number of real
    coordinates, so an image without objects contributes only heatmap negatives.

    Args:
        num_classes: Number of heatmap channels C.
        stride: Output stride R of the model.
        loss: Heatmap kernel and loss weights (``size_weight`` 0.1 in the paper: sizes are in cells, up to ~100).
    """

    def __init__(self, num_classes: int, stride: int = 4, loss: DetectionLossConfig | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.options = loss or DetectionLossConfig()
        self.weights = {
            "heatmap": self.options.heatmap_weight,
            "size": self.options.size_weight,
            "offset": self.options.offset_weight,
        }

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Compute the losses.

        Args:
            outputs: raw model outputs: ``heatmap`` (N, C, Ho, Wo) logits, ``size`` and ``offset`` (N, 2, Ho, Wo)
                in output cells.
            batch: batch dict with ``bboxes`` (N, D, 4) relative cxcywh, ``labels`` (N, D) int64 and
                ``mask`` (N, D).

        Returns:
            Dict of float32 scalars: unweighted ``heatmap``, ``size`` and ``offset`` losses and ``total``, their
            weighted sum (the value to backpropagate).
        """
        heatmap = outputs["heatmap"]
        targets = heatmap_targets(heatmap, batch, self.num_classes, self.options)
        losses = {
            # Under DDP: the objects of the global batch (averaged per rank), as DETR and torchvision do.
            "heatmap": focal_loss_with_logits(heatmap, targets.heatmap, global_mean_count(targets.mask.sum())),
            "size": masked_l1_loss(_gather_at(outputs["size"], targets.indices), targets.size, targets.mask),
            "offset": masked_l1_loss(_gather_at(outputs["offset"], targets.indices), targets.offset, targets.mask),
        }
        losses["total"] = sum(self.weights[name] * losses[name] for name in self.weights)
        return losses


def heatmap_targets(
    heatmap: Tensor, batch: Mapping[str, Tensor], num_classes: int, options: DetectionLossConfig
) -> CenterNetTargets:
    """Ground truth for a predicted heatmap (N, C, Ho, Wo), rendered without gradients at its size.

    Shared by both criteria: the heatmap's focal loss is the same whatever the box head.

    Raises:
        ValueError: the heatmap does not have ``num_classes`` channels.
    """
    _, channels, out_h, out_w = heatmap.shape
    if channels != num_classes:
        raise ValueError(f"heatmap has {channels} channels but the criterion expects {num_classes}")
    with torch.no_grad():
        return render_targets(
            batch["bboxes"],
            batch["labels"],
            batch["mask"],
            num_classes,
            (out_h, out_w),
            gaussian=options.gaussian,
            gaussian_extent=options.gaussian_extent,
            min_overlap=options.min_overlap,
            # In the prediction's memory layout: a channels-last model's loss then converts nothing.
            channels_last=heatmap.is_contiguous(memory_format=torch.channels_last) and not heatmap.is_contiguous(),
        )
