"""The CenterNet network: backbone -> neck -> a task's head; the task's criterion and decoding attached."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from centernet.configs import as_options
from centernet.model.backbones import build_backbone
from centernet.model.config import BackboneConfig, NeckConfig
from centernet.model.extra_inputs import ExtraInputs
from centernet.model.freezing import freeze_batchnorm, freeze_stages
from centernet.model.necks import build_neck
from centernet.tasks import build_task
from centernet.tasks.detection.config import DetectionHeadConfig, DetectionLossConfig

__all__ = ["CenterNet"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class CenterNet(nn.Module):
    """CenterNet, "Objects as Points" (Zhou et al. 2019): backbone (ResNet, DLA-34, timm) -> neck -> task head.

    Args:
        num_classes: Number of object classes C (labels 0..C-1).
        task: The registered task whose head, criterion and decoding the network uses (``"detection"``).
        backbone: The backbone's options, or its name for short (e.g. ``"resnet18"``, ``"timm:<name>"``).
        neck: The neck's options, or its name for short (``"upsampling"``, ``"lateral"``, ``"dla_up"``).
        head: The task's head options, or the head type for short (detection: ``"size"`` or ``"ltrb"``).
        loss: The task's loss options.
        task_options: The task's own options beyond head and loss (pose: :class:`~centernet.tasks.pose.config.
            PoseConfig`'s fields); ``None`` for a task without any (detection).
        task_data: What the task needs to know about the data (pose: the joints, as the data module's
            ``task_data``); ``None`` for detection.
        max_detections: K, the detections kept per image by :meth:`decode` (and exported graphs).
    """

    stride: int = 4

    def __init__(
        self,
        num_classes: int,
        task: str = "detection",
        backbone: BackboneConfig | str | None = None,
        neck: NeckConfig | str | None = None,
        head: DetectionHeadConfig | str | None = None,
        loss: DetectionLossConfig | None = None,
        max_detections: int = 100,
        task_options: Mapping[str, Any] | None = None,
        task_data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        backbone_options = as_options(backbone, BackboneConfig, shorthand="name")
        neck_options = as_options(neck, NeckConfig, shorthand="name")
        self.num_classes = num_classes
        self.max_detections = max_detections
        self.task = build_task(task, head=head, loss=loss, options=task_options, data=task_data)
        self.backbone = build_backbone(backbone_options.name, pretrained=backbone_options.pretrained)
        if backbone_options.freeze_bn:
            freeze_batchnorm(self.backbone)
        freeze_stages(self.backbone, backbone_options.frozen_stages)
        self.neck = build_neck(neck_options, self.backbone)
        if self.backbone.stride // self.neck.upsampling != self.stride:
            raise ValueError(f"the neck must upsample stride {self.backbone.stride} to {self.stride}")
        self.head = self.task.build_head(self.neck.out_channels, num_classes)
        self.criterion = self.task.build_criterion(num_classes, self.stride)
        # The task's inputs besides the image (tracking: the previous frame), added into the backbone's first layer.
        self.extra_inputs = ExtraInputs(self.task.extra_inputs, self.backbone) if self.task.extra_inputs else None
        self.register_buffer("pixel_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(
        self, batch_or_image: Mapping[str, Tensor] | Tensor, extras: Mapping[str, Tensor] | None = None
    ) -> dict[str, Tensor]:
        """Predict the raw output maps.

        Args:
            batch_or_image: a batch dict (its ``image`` and the task's extra inputs are used) or a bare image
                tensor; the image is (N, 3, H, W) float RGB in [0, 1] with H and W multiples of 32. ImageNet
                normalisation happens here.
            extras: the task's extra inputs (``Task.extra_inputs``) for a bare image, (N, channels, H, W) each;
                tracking: ``prev_image`` in [0, 1] (normalised like the image) and ``prev_heatmap``. Without them
                the network sees the image alone (a tracker then detects like the detector it started from).

        Returns:
            The task head's maps at stride 4, (Ho, Wo) = (H / 4, W / 4). For detection:

            - ``heatmap``: (N, C, Ho, Wo) class logits; sigmoid gives the probability of an object centre.
            - ``size``: (N, 2, Ho, Wo) box (w, h) in output cells (multiply by 4 for input pixels).
            - ``offset``: (N, 2, Ho, Wo) (dx, dy) from the cell's top-left corner to the box centre, in output
              cells; the centre is ``(x + dx, y + dy) * 4`` in input pixels.

            With the ltrb head, ``size`` and ``offset`` are replaced by ``ltrb``: (N, 4, Ho, Wo) distances
            (left, top, right, bottom) from the point (x, y) to the box sides, in output cells.

        Raises:
            ValueError: if H or W is not a multiple of 32.
        """
        image = batch_or_image if isinstance(batch_or_image, Tensor) else batch_or_image["image"]
        height, width = image.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(
                f"image size must be a multiple of 32, got (H, W) = ({height}, {width}); resize or pad the image"
            )
        image = (image - self.pixel_mean) / self.pixel_std  # (N, 3, H, W)
        if self.extra_inputs is not None:
            if not isinstance(batch_or_image, Tensor):
                extras = {name: batch_or_image[name] for name in self.extra_inputs.names if name in batch_or_image}
            # Extra images (names ending in "image") are normalised like the image; other maps stay as they are.
            extras = {
                name: (value - self.pixel_mean) / self.pixel_std if name.endswith("image") else value
                for name, value in (extras or {}).items()
            }
            self.extra_inputs.set(extras)
        features = self.backbone(image)  # maps at strides 4, 8, 16, 32
        if self.extra_inputs is not None:
            self.extra_inputs.check_consumed()
        features = self.neck(features)  # (N, C_neck, H/4, W/4)
        return self.head(features)

    def compute_loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The task criterion's losses of :meth:`forward`'s outputs against the batch's ground truth.

        Returns:
            Dict of float32 scalars: the unweighted losses (detection: ``heatmap``, ``size``, ``offset``, or
            ``heatmap``, ``box`` for the ltrb head) and their weighted sum ``total``.
        """
        return self.criterion(outputs, batch)

    def decode(self, outputs: Mapping[str, Tensor], max_detections: int | None = None) -> dict[str, Tensor]:
        """The top-K results of every image, batched, in input pixels (the task's decoding).

        Args:
            outputs: :meth:`forward`'s outputs.
            max_detections: K upper bound; defaults to the constructor's ``max_detections``.

        Returns:
            For detection: ``boxes`` (N, K, 4) xyxy input pixels, ``scores`` (N, K) and ``labels`` (N, K) int64.
        """
        max_detections = self.max_detections if max_detections is None else max_detections
        return self.task.decode(outputs, self.stride, max_detections)
