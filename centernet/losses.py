"""Loss functions of CenterNet: the penalty-reduced focal loss on the heatmap and a masked L1 loss.

Both are computed in float32 regardless of autocast: the focal loss sums tens of thousands of tiny terms,
and bfloat16 / float16 would lose most of them.
"""

from __future__ import annotations

from typing import Any

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
    ``log p = logsigmoid(x)`` and ``log(1 - p) = logsigmoid(x) - x`` (that is ``logsigmoid(-x)``) are evaluated
    stably, and ``1 - p`` is ``exp(log(1 - p))`` rather than a cancelling subtraction, so the loss and its
    gradient stay finite for logits of +-100 and a confidently wrong cell still receives a gradient of magnitude
    ~1. The gradient is written out by hand (:class:`_FocalLossSum`); ``tests/test_focal_gradient.py`` checks it
    against autograd through this formula.

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
        loss = _FocalLossSum.apply(logits.float(), target.float(), alpha, beta)
        return loss / _normaliser(num_objects, loss)


class _FocalLossSum(torch.autograd.Function):
    """The summed focal loss with its gradient written out, computed in the forward pass.

    Autograd through the elementwise formula keeps about a dozen full-size (N, C, Ho, Wo) intermediates and
    runs twice as many kernels backwards; the heatmap has 80 channels at a quarter of the input resolution, so
    on a CPU that was a measurable share of a training step. Here the forward pass evaluates the loss and, when
    the logits need a gradient, the gradient in a few fused kernels; backward is one multiplication.

    With ``p = sigmoid(x)``, ``q = 1 - p = sigmoid(-x)`` (so ``dp/dx = p q``, ``d log p/dx = q``,
    ``d log q/dx = -p``) and ``w = (1 - y)^beta``::

        positive  l = -q^a log p          dl/dx = q^a (a p log p - q)
        negative  l = -w p^a log q        dl/dx = w p^a (p - a q log q)

    Every cell is evaluated as a negative (``w`` is 0 at the centres, where ``y == 1``) and the few centres are
    added from their own values, so the positive branch costs nothing at full size.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor, alpha: float, beta: float) -> Tensor:
        # The sum is elementwise, so it may run in memory order: a channels-last heatmap as the contiguous
        # (N, Ho, Wo, C) tensor it is in memory (boolean indexing of a strided tensor is several times slower).
        in_memory_order = _is_channels_last(logits)
        if in_memory_order:
            logits = logits.permute(0, 2, 3, 1)  # (N, Ho, Wo, C), contiguous
            target = target.permute(0, 2, 3, 1).contiguous()  # free when the target was rendered channels-last
        positive = target == 1.0  # (N, C, Ho, Wo) object centres
        weight = (1.0 - target).pow(beta)  # penalty reduction around centres; 0 at centres when beta > 0
        if beta == 0:
            weight.masked_fill_(positive, 0.0)
        log_p = F.logsigmoid(logits)
        # log(1 - sigmoid(x)) = logsigmoid(x) - x: finite for any finite x, off by at most a rounding of x, which
        # matters only where x << 0 and the term's weight p^a is below float32's resolution anyway.
        log_q = log_p - logits
        p, q = log_p.exp(), log_q.exp()
        weighted = weight.mul_(p.pow(alpha))  # w p^a
        x_pos = logits[positive]  # (P,) logits at the centres
        log_p_pos, log_q_pos = F.logsigmoid(x_pos), F.logsigmoid(-x_pos)
        q_pos_alpha = log_q_pos.mul(alpha).exp()  # q^a
        loss = -(torch.sum(weighted * log_q) + torch.sum(q_pos_alpha * log_p_pos))
        if logits.requires_grad:
            grad = torch.addcmul(p, q, log_q, value=-alpha).mul_(weighted)  # w p^a (p - a q log q)
            p_pos, q_pos = log_p_pos.exp(), log_q_pos.exp()
            grad[positive] = q_pos_alpha * (alpha * p_pos * log_p_pos - q_pos)
            ctx.save_for_backward(grad.permute(0, 3, 1, 2) if in_memory_order else grad)  # (N, C, Ho, Wo)
        return loss

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None, None


def _is_channels_last(tensor: Tensor) -> bool:
    """A 4-D tensor whose memory is (N, H, W, C) and not also (N, C, H, W) (as with C == 1 or H == W == 1)."""
    return tensor.dim() == 4 and not tensor.is_contiguous() and tensor.is_contiguous(memory_format=torch.channels_last)


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
