"""Optimiser parameter groups and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import nn

__all__ = ["split_weight_decay", "warmup_cosine"]


def split_weight_decay(module: nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups: weights of convolutions and linear layers decay; norms and biases do not.

    Decaying BatchNorm scales and biases only shrinks them towards zero without regularising the function the
    network computes, so (as is common practice since "Bag of Tricks", He et al. 2019) they are excluded.
    """
    decay, no_decay = [], []
    for param in module.parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim > 1 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.01) -> Callable[[int], float]:
    """A ``LambdaLR`` factor: linear warm-up from ~0 to 1, then cosine decay to ``min_lr_ratio``.

    Args:
        total_steps: Optimiser steps of the whole run.
        warmup_steps: Steps of linear warm-up; capped at the run length.
        min_lr_ratio: Final learning rate as a fraction of the peak.
    """
    total_steps = max(1, total_steps)
    warmup_steps = min(max(0, warmup_steps), total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
