"""Counting a network's parameters and FLOPs (``centernet info``, ``benchmarks/presets.py``).

FLOPs are counted by ``torch.utils.flop_counter`` on one forward pass of one image; one multiply-add is two
FLOPs. Deformable convolutions, which the counter does not know, are counted as the equivalent convolution plus
the bilinear sampling and modulation of each sampled value (see :func:`_deform_conv2d_flops`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

__all__ = ["count_flops", "count_parameters"]


@register_flop_formula(torch.ops.torchvision.deform_conv2d)
def _deform_conv2d_flops(input_shape, weight_shape, offset_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``torchvision::deform_conv2d``: the convolution's 2 * MACs, plus 9 per sampled input value.

    Each of the ``C_in * k^2`` values sampled per output position costs a 4-tap bilinear interpolation (8 FLOPs)
    and a multiplication by the modulation mask (1 FLOP).
    """
    batch, out_channels, out_h, out_w = out_shape
    _, in_per_group, kernel_h, kernel_w = weight_shape
    sampled = batch * input_shape[1] * kernel_h * kernel_w * out_h * out_w
    return 2 * batch * out_channels * in_per_group * kernel_h * kernel_w * out_h * out_w + 9 * sampled


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all parameters, trainable parameters) of ``model``."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def count_flops(model: nn.Module, image_size: int | tuple[int, int]) -> int:
    """FLOPs of one forward pass of ``model`` on one (3, H, W) image (2 FLOPs per multiply-add)."""
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width))
    model.train(was_training)
    return counter.get_total_flops()
