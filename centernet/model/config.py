"""The architecture options shared by every task: the backbone and the neck, declared once (typed and
documented here). ``centernet fit`` reads them from ``model.backbone`` and ``model.neck`` (see
``configs/base.yaml``); the Python API takes the same dataclasses, or a name for short."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BackboneConfig", "NeckConfig"]


@dataclass(frozen=True)
class BackboneConfig:
    """The feature extractor: maps at strides 4, 8, 16 and 32.

    Attributes:
        name: "resnet18", "resnet34", "resnet50", "resnet101" (torchvision), "dla34" (DLA-34) or "timm:<name>"
            (any timm model with feature maps at strides 4-32, e.g. "timm:mobilenetv3_large_100").
        pretrained: Start from ImageNet weights (torchvision's for ResNets, timm's otherwise), downloaded or read
            from the torch hub / Hugging Face cache.
        frozen_stages: Leading stages (stem first) without gradient and with frozen BatchNorm; 0 trains them all.
        freeze_bn: Freeze every BatchNorm of the backbone (statistics and affine parameters).
    """

    name: str = "resnet18"
    pretrained: bool = False
    frozen_stages: int = 0
    freeze_bn: bool = False


@dataclass(frozen=True)
class NeckConfig:
    """The neck: backbone features at strides 4-32 -> one map at stride 4.

    Attributes:
        name: "upsampling" (the paper's three deconvolution stages), "lateral" (the same with shortcuts from the
            backbone at strides 16, 8 and 4, TTFNet-style) or "dla_up" (DLA-up + IDA-up of CenterNet-DLA, whose
            channels follow the backbone's).
        channels: Output channels of the three upsampling stages, stride 32 -> 16 -> 8 -> 4 (not used by dla_up).
        deformable: Modulated deformable 3x3 convolutions (DCNv2, torchvision.ops) in the neck, as in the paper.
    """

    name: Literal["upsampling", "lateral", "dla_up"] = "upsampling"
    channels: tuple[int, int, int] = (256, 128, 64)
    deformable: bool = False

    def __post_init__(self) -> None:
        if self.name not in ("upsampling", "lateral", "dla_up"):
            raise ValueError(f"neck must be 'upsampling', 'lateral' or 'dla_up', got {self.name!r}")
        if len(self.channels) != 3:
            raise ValueError(f"neck channels must have 3 stages (stride 32 -> 4), got {list(self.channels)}")
