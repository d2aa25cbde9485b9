"""Helpers for data-parallel training: global loss normalisers, gathering evaluation results, the LR scaling rule.

Every function is a no-op (or the identity) in a single process, so callers never branch on whether
``torch.distributed`` is initialised. Collective calls must be made by every rank in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch.distributed as dist
from torch import Tensor

__all__ = [
    "deduplicate_by_image_id",
    "gather_objects",
    "global_mean_count",
    "is_distributed",
    "scaled_learning_rate",
    "world_size",
]


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 outside a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def global_mean_count(count: Tensor) -> Tensor:
    """The per-rank average of a count summed over all ranks, detached, as float32.

    DDP averages gradients over ranks, so a loss normalised on each rank by ``sum(count over ranks) / world``
    gives exactly the gradient of ``sum(loss over all images) / sum(count over all images)``: the loss of the
    global batch. Normalising by the local count instead weights a rank's objects more when it has fewer of
    them (torchvision's detection references and DETR all-reduce the number of boxes for this reason).

    Args:
        count: scalar tensor, e.g. the number of objects in this rank's batch.

    Returns:
        Scalar float32 tensor on ``count``'s device; equal to ``count`` in a single process.
    """
    count = count.detach().float().clone()
    if is_distributed():
        dist.all_reduce(count, op=dist.ReduceOp.SUM)
        count /= dist.get_world_size()
    return count


def gather_objects(local: list[Any]) -> list[Any]:
    """Concatenate a picklable list from every rank, rank 0's items first (every rank gets the whole list)."""
    if not is_distributed():
        return list(local)
    gathered: list[list[Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, local)
    return [item for part in gathered for item in (part or [])]


def deduplicate_by_image_id(items: Sequence[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Keep one entry per image id, sorted by id.

    ``DistributedSampler`` pads the dataset by repeating its first samples so that every rank gets the same
    number of batches; without this step those images would be counted twice by the COCO evaluation.

    Args:
        items: ``(image_id, payload)`` pairs, possibly with repeated ids (repeats carry the same payload).

    Returns:
        ``(image_id, payload)`` pairs with unique ids in increasing order, so the evaluation sees the images in
        the same order whatever the number of ranks.
    """
    unique: dict[int, Any] = {}
    for image_id, payload in items:
        unique.setdefault(int(image_id), payload)
    return sorted(unique.items(), key=lambda item: item[0])


def scaled_learning_rate(lr: float, global_batch_size: int, base_batch_size: int | None) -> float:
    """The linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD"): ``lr * global / base``.

    Args:
        lr: Learning rate tuned for a global batch of ``base_batch_size`` images.
        global_batch_size: Images per optimiser step over all ranks (per-device batch x devices x nodes x
            gradient accumulation).
        base_batch_size: The batch size ``lr`` belongs to; ``None`` disables scaling.
    """
    if base_batch_size is None:
        return lr
    if base_batch_size < 1 or global_batch_size < 1:
        raise ValueError(f"batch sizes must be >= 1, got global={global_batch_size}, base={base_batch_size}")
    return lr * global_batch_size / base_batch_size
