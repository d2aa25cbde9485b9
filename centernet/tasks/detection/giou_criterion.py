"""The criterion of the ltrb head: focal loss on the heatmap, weighted GIoU loss over the centre regions (TTFNet)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torchvision.ops import generalized_box_iou_loss

from centernet.distributed import global_mean_count
from centernet.losses import focal_loss_with_logits
from centernet.tasks.detection.box_targets import render_box_targets
from centernet.tasks.detection.config import DetectionLossConfig
from centernet.tasks.detection.criterion import heatmap_targets

__all__ = ["GIoUCriterion", "ltrb_to_boxes"]


def ltrb_to_boxes(ltrb: Tensor) -> Tensor:
    """Boxes predicted by an ltrb map, around each cell's point (x, y).

    Args:
        ltrb: (N, 4, Ho, Wo) distances (left, top, right, bottom) in output cells.

    Returns:
        (N, 4, Ho, Wo) x1, y1, x2, y2 in output cells: ``(x - left, y - top, x + right, y + bottom)``.
    """
    out_h, out_w = ltrb.shape[-2:]
    ys = torch.arange(out_h, device=ltrb.device, dtype=ltrb.dtype).view(out_h, 1).expand(out_h, out_w)
    xs = torch.arange(out_w, device=ltrb.device, dtype=ltrb.dtype).view(1, out_w).expand(out_h, out_w)
    points = torch.stack([xs, ys, xs, ys])  # (4, Ho, Wo)
    signs = torch.tensor([-1.0, -1.0, 1.0, 1.0], device=ltrb.device, dtype=ltrb.dtype).view(4, 1, 1)
    return points + signs * ltrb  # (N, 4, Ho, Wo)


class GIoUCriterion(nn.Module):
    """Loss of the ltrb head: CenterNet's focal heatmap loss plus TTFNet's weighted GIoU box loss.

    The box loss is ``sum_cells w * (1 - GIoU(pred, target)) / max(sum_cells w, 1e-4)`` over the cells of
    every object's centre region (:func:`centernet.tasks.detection.box_targets.render_box_targets`), GIoU from
    ``torchvision.ops`` (Rezatofighi et al. 2019). Unlike L1 on sizes it is scale-invariant and uses many
    samples per object instead of one. An image without objects contributes only heatmap negatives.

    Args:
        num_classes: Number of heatmap channels C.
        stride: Output stride R.
        loss: Heatmap kernel, box sampling and loss weights (``box_weight`` 5 in TTFNet).
    """

    def __init__(self, num_classes: int, stride: int = 4, loss: DetectionLossConfig | None = None) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.options = loss or DetectionLossConfig()
        self.weights = {"heatmap": self.options.heatmap_weight, "box": self.options.box_weight}

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Compute the losses.

        Args:
            outputs: ``heatmap`` (N, C, Ho, Wo) logits and ``ltrb`` (N, 4, Ho, Wo) distances in output cells.
            batch: ``bboxes`` (N, D, 4) relative cxcywh, ``labels`` (N, D) int64 and ``mask`` (N, D).

        Returns:
            Dict of float32 scalars: unweighted ``heatmap`` and ``box`` losses and their weighted sum ``total``.
        """
        heatmap = outputs["heatmap"]
        out_h, out_w = heatmap.shape[-2:]
        targets = heatmap_targets(heatmap, batch, self.num_classes, self.options)
        with torch.no_grad():
            box_targets = render_box_targets(
                batch["bboxes"],
                batch["mask"],
                (out_h, out_w),
                self.stride,
                self.options.gaussian_extent,
                self.options.box_sampling,
            )
        with torch.autocast(device_type=heatmap.device.type, enabled=False):
            predicted = ltrb_to_boxes(outputs["ltrb"].float())  # (N, 4, Ho, Wo)
            positive = box_targets.weight > 0  # (N, Ho, Wo)
            pred = predicted.permute(0, 2, 3, 1)[positive]  # (P, 4)
            target = box_targets.boxes.permute(0, 2, 3, 1)[positive]  # (P, 4)
            weight = box_targets.weight[positive]  # (P,)
            giou = generalized_box_iou_loss(pred, target, reduction="none")  # (P,)
            # Under DDP both losses are normalised over the global batch (averaged per rank), as in CenterNetCriterion.
            box_loss = (weight * giou).sum() / global_mean_count(weight.sum()).clamp(min=1e-4)
        losses = {
            "heatmap": focal_loss_with_logits(heatmap, targets.heatmap, global_mean_count(targets.mask.sum())),
            "box": box_loss,
        }
        losses["total"] = sum(self.weights[name] * losses[name] for name in self.weights)
        return losses
