"""The network shared by every task: backbones, necks, the assembly :class:`CenterNet` (backbone + neck + a task's
head) and :mod:`centernet.model.checkpoint`, which reads a checkpoint without Lightning."""

from centernet.model.centernet import CenterNet
from centernet.model.config import BackboneConfig, NeckConfig

__all__ = ["BackboneConfig", "CenterNet", "NeckConfig"]
