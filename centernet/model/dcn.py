"""Modulated deformable convolution (DCNv2) on ``torchvision.ops.deform_conv2d``, with no compiled extension.

The original CenterNet builds DCNv2 from a CUDA extension that must be compiled against each PyTorch release;
torchvision ships the same operator (CPU and CUDA) so nothing here needs a compiler.

ONNX: ``torchvision::deform_conv2d`` has no exporter in PyTorch. ONNX defines the same operation as
``DeformConv`` (opset 19), which ONNX Runtime implements; :func:`register_deform_conv_onnx_symbolic` maps one to
the other for ``torch.onnx.export(..., dynamo=False, opset_version=19)``. It is registered when this module is
imported. Below opset 19 the export fails with PyTorch's message naming opset 19 as the first that supports it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

__all__ = ["ModulatedDeformConv2d", "register_deform_conv_onnx_symbolic"]

_ONNX_DEFORM_CONV_OPSET = 19
_INT_ARGS = ("stride_h", "stride_w", "pad_h", "pad_w", "dilation_h", "dilation_w", "groups", "offset_groups")


class ModulatedDeformConv2d(nn.Module):
    """A k x k convolution whose sampling points move by learned offsets and are scaled by a learned mask.

    A plain convolution (``offset_conv``, 3 values per kernel tap: dy, dx and a mask logit) predicts from the
    input where each tap samples and how much it counts (Zhu et al. 2019, "Deformable ConvNets v2").

    Initialisation: ``offset_conv`` is zero (weights and bias), so every offset starts at 0 and every mask logit
    at 0. The original DCNv2 uses ``mask = sigmoid(logit)``, which is 0.5 at a zero logit: at initialisation
    its output is half that of the plain convolution (a following BatchNorm absorbs the factor). We use
    ``mask = 2 * sigmoid(logit)`` (range (0, 2)), which is exactly 1 at a zero logit, so the layer starts as
    the plain convolution with the same weights, and pretrained plain-conv weights keep their meaning.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: side k of the square kernel.
        stride: stride of the convolution.
        padding: zero padding on each side; defaults to ``k // 2`` (same size at stride 1).
        dilation: spacing of the kernel taps.
        bias: add a learned bias (the original DCNv2 always has one).

    Attributes:
        weight: (out_channels, in_channels, k, k).
        bias: (out_channels,) or None.
        offset_conv: ``nn.Conv2d(in_channels, 3 k^2, k)``; output channels ``[0, 2 k^2)`` are the (dy, dx) pairs
            of each tap in input pixels, ``[2 k^2, 3 k^2)`` the mask logits.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | None = None,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride = stride
        self.padding = kernel_size // 2 if padding is None else padding
        self.dilation = dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # Same default initialisation as nn.Conv2d (Kaiming-uniform with a = sqrt(5)).
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.offset_conv = nn.Conv2d(
            in_channels,
            3 * kernel_size * kernel_size,
            kernel_size,
            stride=stride,
            padding=self.padding,
            dilation=dilation,
        )
        nn.init.zeros_(self.offset_conv.weight)
        nn.init.zeros_(self.offset_conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the deformable convolution.

        Args:
            x: (N, in_channels, H, W).

        Returns:
            (N, out_channels, H', W') with the output size of the equivalent ``nn.Conv2d``.
        """
        taps = self.kernel_size * self.kernel_size
        offset_and_mask = self.offset_conv(x)  # (N, 3 k^2, H', W')
        offset = offset_and_mask[:, : 2 * taps]  # (N, 2 k^2, H', W') (dy, dx) per tap
        mask = 2.0 * torch.sigmoid(offset_and_mask[:, 2 * taps :])  # (N, k^2, H', W'), 1 at init
        return deform_conv2d(
            x,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, bias={self.bias is not None}"
        )


def _deform_conv2d_symbolic(g, x, weight, offset, mask, bias, *args):
    """TorchScript-exporter symbolic: ``torchvision::deform_conv2d`` -> ONNX ``DeformConv`` (opset 19)."""
    from torch.onnx import symbolic_helper

    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, offset_groups = (
        symbolic_helper._get_const(value, "i", name) for value, name in zip(args[:8], _INT_ARGS, strict=True)
    )
    use_mask = symbolic_helper._get_const(args[8], "b", "use_mask")
    inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
    return g.op(
        "DeformConv",
        *inputs,
        strides_i=[stride_h, stride_w],
        pads_i=[pad_h, pad_w, pad_h, pad_w],
        dilations_i=[dil_h, dil_w],
        group_i=groups,
        offset_group_i=offset_groups,
    )


def register_deform_conv_onnx_symbolic() -> None:
    """Let ``torch.onnx.export(..., dynamo=False, opset_version>=19)`` export ``torchvision::deform_conv2d``.

    Both operators take the offsets as (N, 2 * offset_groups * kh * kw, H', W') (dy, dx) pairs and the mask as
    (N, offset_groups * kh * kw, H', W'); the exported graph matches PyTorch to float precision in ONNX Runtime.
    """
    torch.onnx.register_custom_op_symbolic(
        "torchvision::deform_conv2d", _deform_conv2d_symbolic, _ONNX_DEFORM_CONV_OPSET
    )


register_deform_conv_onnx_symbolic()
