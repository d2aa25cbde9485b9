"""Freezing parts of a backbone: its first stages (no gradient) and its BatchNorm statistics.

Frozen BatchNorm layers are replaced by ``torchvision.ops.FrozenBatchNorm2d`` holding the same statistics and
affine parameters as buffers, so they stay fixed whatever mode the model is in and a small batch cannot
corrupt ImageNet statistics (the usual setting when fine-tuning a pretrained detector backbone).
"""

from __future__ import annotations

from torch import nn
from torchvision.ops import FrozenBatchNorm2d

__all__ = ["freeze_batchnorm", "freeze_stages"]


def _frozen_copy(bn: nn.BatchNorm2d) -> FrozenBatchNorm2d:
    """A FrozenBatchNorm2d computing what ``bn`` computes in eval mode."""
    frozen = FrozenBatchNorm2d(bn.num_features, eps=bn.eps).to(bn.running_mean.device)
    if bn.affine:
        frozen.weight.copy_(bn.weight.detach())
        frozen.bias.copy_(bn.bias.detach())
    frozen.running_mean.copy_(bn.running_mean)
    frozen.running_var.copy_(bn.running_var)
    return frozen


def freeze_batchnorm(module: nn.Module, only: set[nn.Module] | None = None) -> None:
    """Replace the ``nn.BatchNorm2d`` layers inside ``module`` by equivalent ``FrozenBatchNorm2d`` (in place).

    Args:
        module: the module to edit (its BatchNorms must track running statistics).
        only: if given, replace only these BatchNorm modules.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and (only is None or child in only):
            setattr(module, name, _frozen_copy(child))
        else:
            freeze_batchnorm(child, only)


def freeze_stages(backbone: nn.Module, num_stages: int) -> None:
    """Stop the gradient of the first ``num_stages`` stages of ``backbone`` and freeze their BatchNorms.

    Args:
        backbone: a backbone with a ``stages()`` method listing its stages from the input on (the stem first).
        num_stages: how many leading stages to freeze: 0 none, 1 the stem, 2 the stem and the first stage...

    Raises:
        ValueError: if ``num_stages`` is negative or more than the backbone has.
    """
    stages = backbone.stages()
    if not 0 <= num_stages <= len(stages):
        raise ValueError(f"frozen_stages must be in [0, {len(stages)}] for this backbone, got {num_stages}")
    frozen = [stage for stage in stages[:num_stages]]
    for stage in frozen:
        for parameter in stage.parameters():
            parameter.requires_grad_(False)
    batchnorms = {m for stage in frozen for m in stage.modules() if isinstance(m, nn.BatchNorm2d)}
    freeze_batchnorm(backbone, only=batchnorms)
