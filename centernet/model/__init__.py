"""CenterNet model: backbones, necks, heads, criteria and the assembly."""

from centernet.model.backbones import ResNetBackbone, build_backbone
from centernet.model.centernet import CenterNet
from centernet.model.dcn import ModulatedDeformConv2d
from centernet.model.dla import DLABackbone
from centernet.model.dla_up import DLAUpNeck
from centernet.model.necks import LateralUpsamplingNeck, UpsamplingNeck
from centernet.model.timm_backbone import TimmBackbone
from centernet.tasks.detection.criterion import CenterNetCriterion
from centernet.tasks.detection.giou_criterion import GIoUCriterion
from centernet.tasks.detection.heads import CenterNetHead, LTRBHead

__all__ = [
    "CenterNet",
    "CenterNetCriterion",
    "CenterNetHead",
    "DLABackbone",
    "DLAUpNeck",
    "GIoUCriterion",
    "LTRBHead",
    "LateralUpsamplingNeck",
    "ModulatedDeformConv2d",
    "ResNetBackbone",
    "TimmBackbone",
    "UpsamplingNeck",
    "build_backbone",
]
