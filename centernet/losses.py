"""Loss functions of CenterNet: the penalty-reduced focal loss on the heatmap and a masked L1 loss.

Both are computed in float32 regardless of autocast: the focal loss sums tens of thousands of tiny terms,
and bfloat16 / float16 would lose most of them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["focal_loss_with_logits", "masked_l1_loss"]


def _normaliser(count: Tensor | float, like: Tensor) -> Tensor:
    """max(1, count) as a float32 scalar tensor on ``like``'s device."""
    return torch.as_tensor(count, dtype=torch.float32, device=like.device).clamp(min=1.0)


def focal_loss_with_logits(
    logits: Tensor,
    target: Tensor,
    num_objects: Tensor | float,
    alpha: float = 2.0,
    beta: float = 4.0,
) -> Tensor:
    """Penalty-reduced pixel-wise focal loss of CornerNet / CenterNet, computed from logits.

    With ``p = sigmoid(logits)`` and ``y = target``::

        loss = -1 / max(1, num_objects) * sum(
            (1 - p)^alpha * log(p)                   where y == 1   (object centres)
            (1 - y)^beta * p^alpha * log(1 - p)      elsewhere      (negatives, reduced near centres)
        )

    (Law & Deng 2018, eq. 1; Zhou et al. 2019, eq. 1.) Positives are exactly the cells where the target is
    1.0, which :func:`centernet.tasks.detection.targets.render_targets` guarantees at each object's centre cell.

    Why ``logsigmoid``: the original implementation clamps ``sigmoid(x)`` to [1e-4, 1 - 1e-4] before taking
    the log, so logits beyond about +-9.2 get exactly zero gradient, including confidently wrong ones; without
    the clamp, ``log(1 - sigmoid(x))`` is -inf in float32 as soon as ``sigmoid(x)`` rounds to 1 (x > ~17). Here
    ``log p = logsigmoid(x)`` and ``log(1 - p) = logsigmoid(-x)`` are evaluated stably, and ``1 - p`` is
    ``sigmoid(-x)`` rather than a cancelling subtraction, so the loss and its gradient stay finite for
    logits of +-100 and a confidently wrong cell still receives a gradient of magnitude ~1.

    The computation runs in float32 with autocast disabled, whatever the input dtype.

    Args:
        logits: (N, C, Ho, Wo) raw heatmap outputs (any float dtype).
        target: (N, C, Ho, Wo) rendered heatmap in [0, 1], exactly 1 at object centres.
        num_objects: number of objects in the batch (scalar tensor or number); the sum is divided by
            ``max(1, num_objects)`` so that a batch without objects gives a finite loss.
        alpha: focusing exponent on the prediction (2 in the paper).
        beta: exponent of the penalty reduction ``(1 - y)^beta`` around centres (4 in the paper).

    Returns:
        Scalar float32 tensor.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.float()
        target = target.float()
        log_p = F.logsigmoid(logits)
        log_not_p = F.logsigmoid(-logits)
        p = torch.sigmoid(logits)
        not_p = torch.sigmoid(-logits)
        positive_term = not_p.pow(alpha) * log_p
        negative_term = (1.0 - target).pow(beta) * p.pow(alpha) * log_not_p
        loss = -torch.where(target == 1.0, positive_term, negative_term).sum()
        return loss / _normaliser(num_objects, loss)


def masked_l1_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean absolute error over the real rows of padded per-object regressions.

    Args:
        pred: (N, D, K) predictions gathered at the objects' centre cells.
        target: (N, D, K) regression targets.
        mask: (N, D) 1 for a real object, 0 for a padding row.

    Returns:
        Scalar float32 tensor: ``sum(|pred - target| * mask) / max(1, mask.sum() * K)``, i.e. normalised per
        object and per coordinate. Exactly 0 when ``mask`` is all zero.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        mask = mask.float()
        error = (pred.float() - target.float()).abs() * mask.unsqueeze(-1)  # (N, D, K)
        return error.sum() / _normaliser(mask.sum() * pred.shape[-1], error)
