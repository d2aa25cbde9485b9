"""The tracking criterion: detection's losses plus L1 on the displacement to the previous centre (CenterTrack)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from centernet.losses import masked_l1_loss
from centernet.tasks.detection.config import DetectionLossConfig
from centernet.tasks.detection.criterion import CenterNetCriterion
from centernet.tasks.tracking.targets import render_tracking_targets

__all__ = ["TrackingCriterion"]

#: Weight of the tracking L1 loss; CenterTrack uses 1 (the displacement is in output cells, like the offset).
TRACKING_WEIGHT = 1.0


def _gather_at(maps: Tensor, indices: Tensor) -> Tensor:
    """(N, K, Ho, Wo) maps read at (N, D) flattened cells -> (N, D, K)."""
    num_images, channels = maps.shape[:2]
    flat = maps.reshape(num_images, channels, -1)  # (N, K, Ho * Wo)
    return flat.gather(2, indices.unsqueeze(1).expand(-1, channels, -1)).transpose(1, 2)  # (N, D, K)


class TrackingCriterion(CenterNetCriterion):
    """:class:`CenterNetCriterion` (focal heatmap, L1 size and offset) plus L1 on ``tracking`` at the centre cells of
    the objects that were in the previous frame (normalised by their number; 0 when there are none).

    The batch adds ``prev_centers`` (N, D, 2) relative previous centres and ``track_mask`` (N, D) to detection's
    keys; a batch without them (a plain detection batch) trains only the detection losses.

    Args:
        num_classes: Number of heatmap channels C.
        stride: Output stride R of the model.
        loss: Detection's heatmap kernel and loss weights.
    """

    def __init__(self, num_classes: int, stride: int = 4, loss: DetectionLossConfig | None = None) -> None:
        super().__init__(num_classes, stride, loss)
        self.tracking_weight = TRACKING_WEIGHT

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Detection's losses plus unweighted ``tracking``; ``total`` is their weighted sum."""
        losses = super().forward(outputs, batch)
        tracking = outputs["tracking"]
        if "prev_centers" not in batch:
            losses["tracking"] = tracking.sum() * 0.0  # keeps the graph connected (DDP needs every parameter)
        else:
            targets = render_tracking_targets(
                batch["bboxes"], batch["prev_centers"], batch["mask"], batch["track_mask"], tracking.shape[-2:]
            )
            losses["tracking"] = masked_l1_loss(_gather_at(tracking, targets.indices), targets.tracking, targets.mask)
        losses["total"] = losses["total"] + self.tracking_weight * losses["tracking"]
        return losses
