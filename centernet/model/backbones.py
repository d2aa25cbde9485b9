"""Backbones: torchvision ResNets as stride-32 feature extractors, and the factory of every backbone by name."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models import ResNet18_Weights, ResNet34_Weights, ResNet50_Weights, ResNet101_Weights, WeightsEnum

from centernet.errors import PretrainedWeightsError

__all__ = ["ResNetBackbone", "build_backbone"]

# name -> (constructor, ImageNet weights, channels of the last stage). resnet50/101 use torchvision's newer
# V2 recipe (higher ImageNet accuracy); resnet18/34 only have V1.
_RESNETS: dict[str, tuple[Callable[..., torchvision.models.ResNet], WeightsEnum, int]] = {
    "resnet18": (torchvision.models.resnet18, ResNet18_Weights.IMAGENET1K_V1, 512),
    "resnet34": (torchvision.models.resnet34, ResNet34_Weights.IMAGENET1K_V1, 512),
    "resnet50": (torchvision.models.resnet50, ResNet50_Weights.IMAGENET1K_V2, 2048),
    "resnet101": (torchvision.models.resnet101, ResNet101_Weights.IMAGENET1K_V2, 2048),
}


def _load_pretrained(model: nn.Module, weights: WeightsEnum) -> None:
    """Load ImageNet weights from the torch hub cache (downloading them if possible) into ``model``.

    Raises:
        PretrainedWeightsError: when the weights are neither cached nor downloadable, naming the file to provide.
    """
    filename = os.path.basename(weights.url)
    path = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    try:
        state_dict = torch.hub.load_state_dict_from_url(weights.url, progress=False, check_hash=True)
    except Exception as error:  # offline, proxy, corrupted download...: all end the same way for the user
        raise PretrainedWeightsError(
            f"Could not load the pretrained weights {weights} ({error}). Download {weights.url} and put it at "
            f"{path}, or set `pretrained: false` to train from scratch (works offline)."
        ) from error
    model.load_state_dict(state_dict)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without its pooling and classifier, returning its features at strides 4, 8, 16, 32.

    The layers keep torchvision's names (``conv1``, ``bn1``, ``layer1`` ... ``layer4``), so torchvision
    checkpoints load directly.

    Args:
        name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"resnet101"``.
        pretrained: initialise from torchvision's ImageNet weights (read from the torch hub cache,
            ``torch.hub.get_dir()/checkpoints``; downloaded there when online).

    Attributes:
        channels: channels of each returned map, e.g. (64, 128, 256, 512) for resnet18.
        strides: input pixels per cell of each returned map, (4, 8, 16, 32).
        out_channels: channels of the last (stride-32) map.
        stride: 32, the stride of the last map.
    """

    stride: int = 32
    strides: tuple[int, ...] = (4, 8, 16, 32)

    def __init__(self, name: str = "resnet18", pretrained: bool = False) -> None:
        super().__init__()
        if name not in _RESNETS:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(_RESNETS)}")
        constructor, weights, self.out_channels = _RESNETS[name]
        resnet = constructor(weights=None)
        if pretrained:
            _load_pretrained(resnet, weights)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        # Each ResNet stage doubles the channels: (64, 128, 256, 512) or, with bottlenecks, (256, ..., 2048).
        self.channels = tuple(self.out_channels // 2**i for i in (3, 2, 1, 0))

    def stages(self) -> list[nn.Module]:
        """The backbone's stages from the input on: stem (conv1, bn1), then layer1 ... layer4."""
        return [nn.ModuleList([self.conv1, self.bn1]), self.layer1, self.layer2, self.layer3, self.layer4]

    def forward(self, image: Tensor) -> list[Tensor]:
        """Compute the feature pyramid.

        Args:
            image: (N, 3, H, W) normalised image.

        Returns:
            Four maps (N, channels[i], H / strides[i], W / strides[i]) for strides 4, 8, 16 and 32.
        """
        c2 = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(image)))))  # (N, ., H/4, W/4)
        c3 = self.layer2(c2)  # (N, ., H/8, W/8)
        c4 = self.layer3(c3)  # (N, ., H/16, W/16)
        c5 = self.layer4(c4)  # (N, out_channels, H/32, W/32)
        return [c2, c3, c4, c5]


def build_backbone(name: str, pretrained: bool = False) -> nn.Module:
    """Build a backbone by name. Every backbone returns maps at strides (4, 8, 16, 32) and reports them in its
    ``channels`` / ``strides`` attributes (and ``out_channels``, ``stride`` of the last), so any neck fits any
    backbone.

    Args:
        name: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"`` (torchvision), ``"dla34"`` (DLA-34,
            :mod:`centernet.model.dla`) or ``"timm:<model name>"`` (any timm model with a stride-32 pyramid,
            e.g. ``"timm:mobilenetv3_large_100"``).
        pretrained: ImageNet weights (torchvision's for ResNets, timm's for DLA-34 and timm models).

    Raises:
        ValueError: for an unknown name.
    """
    if name in _RESNETS:
        return ResNetBackbone(name, pretrained=pretrained)
    if name == "dla34":
        from centernet.model.dla import DLABackbone

        return DLABackbone(pretrained=pretrained)
    if name.startswith("timm:"):
        from centernet.model.timm_backbone import TimmBackbone

        return TimmBackbone(name.removeprefix("timm:"), pretrained=pretrained)
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(_RESNETS)}, 'dla34' or 'timm:<model name>'")
