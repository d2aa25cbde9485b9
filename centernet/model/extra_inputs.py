"""Extra network inputs added into the backbone's first layer (CenterTrack's previous image and prior heatmap).

CenterTrack (Zhou, Koltun & Krähenbühl 2020, section 4.1) feeds the previous frame and a heatmap of its objects
through their own first layers and adds them to the image's. Here one convolution with the geometry of the
backbone's first convolution (kernel, stride, padding) maps all extra channels to its output channels, and a
forward hook adds the result to that convolution's output: exactly a first convolution over the concatenated
``[image, extras]`` whose extra weights start at zero. So a detection checkpoint starts as a tracker that ignores
the extras, any backbone works unchanged (ResNet, DLA-34, timm), and the backbone keeps its parameter names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ExtraInputs", "first_convolution"]


def first_convolution(backbone: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` (in registration order) that reads the 3-channel image.

    Raises:
        ValueError: the backbone has no such convolution.
    """
    for module in backbone.modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            return module
    raise ValueError(f"{type(backbone).__name__} has no convolution over the 3-channel image to add extra inputs to")


class ExtraInputs(nn.Module):
    """The extra inputs' convolution, hooked onto the backbone's first convolution.

    Args:
        channels: Extra inputs, name -> channels, in the order they are concatenated.
        backbone: The backbone whose first convolution receives them.
    """

    def __init__(self, channels: Mapping[str, int], backbone: nn.Module) -> None:
        super().__init__()
        first = first_convolution(backbone)
        self.names = tuple(channels)
        self.channels = dict(channels)
        self.conv = nn.Conv2d(
            sum(channels.values()),
            first.out_channels,
            kernel_size=first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            dilation=first.dilation,
            bias=False,
        )
        nn.init.zeros_(self.conv.weight)
        self._pending: Tensor | None = None
        first.register_forward_hook(self._add)

    def set(self, extras: Mapping[str, Tensor] | None) -> None:
        """Stage the extras for the next backbone pass: (N, channels, H, W) each, at the image's size. Absent
        names are zeros; no extras at all (``None`` or empty) runs the backbone on the image alone."""
        if not extras:
            self._pending = None
            return
        like = next(iter(extras.values()))
        parts = []
        for name in self.names:
            if name in extras:
                parts.append(extras[name].to(like.dtype))
            else:
                parts.append(like.new_zeros(like.shape[0], self.channels[name], *like.shape[-2:]))
        self._pending = torch.cat(parts, dim=1)  # (N, sum(channels), H, W)

    def check_consumed(self) -> None:
        """Raise if staged extras were not added (the hooked convolution was replaced, e.g. by BatchNorm folding,
        which would otherwise silently run a tracker without its previous frame)."""
        if self._pending is not None:
            self._pending = None
            raise RuntimeError(
                "the extra inputs were not used: the backbone's first convolution was replaced after the model was "
                "built (BatchNorm folding or module surgery drops the hook); run the model unfolded"
            )

    def _add(self, module: nn.Module, args: Any, output: Tensor) -> Tensor:
        extras, self._pending = self._pending, None
        if extras is None:
            return output
        extras = extras.to(output.dtype)
        if output.is_contiguous(memory_format=torch.channels_last) and not output.is_contiguous():
            extras = extras.contiguous(memory_format=torch.channels_last)
        return output + self.conv(extras)
