"""CenterNet model: backbones, necks, heads, criterion and the assembly."""

from centernet.model.backbones import ResNetBackbone
from centernet.model.centernet import CenterNet
from centernet.model.criterion import CenterNetCriterion
from centernet.model.heads import CenterNetHead
from centernet.model.necks import LateralUpsamplingNeck, UpsamplingNeck

__all__ = [
    "CenterNet",
    "CenterNetCriterion",
    "CenterNetHead",
    "LateralUpsamplingNeck",
    "ResNetBackbone",
    "UpsamplingNeck",
]
