"""The CenterNet detector: backbone -> neck -> head, with loss and decoding delegated to their modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from centernet.model.backbones import build_backbone
from centernet.model.dla_up import DLAUpNeck
from centernet.model.freezing import freeze_batchnorm, freeze_stages
from centernet.model.necks import LateralUpsamplingNeck, UpsamplingNeck
from centernet.tasks.detection.criterion import CenterNetCriterion
from centernet.tasks.detection.decode import decode_detections, decode_ltrb_detections
from centernet.tasks.detection.giou_criterion import GIoUCriterion
from centernet.tasks.detection.heads import CenterNetHead, LTRBHead

__all__ = ["CenterNet"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class CenterNet(nn.Module):
    """CenterNet, "Objects as Points" (Zhou et al. 2019): backbone (ResNet, DLA-34, timm) -> neck -> head.

    Args:
        num_classes: number of object classes C (labels 0..C-1).
        backbone: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"`` (torchvision), ``"dla34"``
            (DLA-34) or ``"timm:<name>"`` (any timm model with a stride-32 pyramid); see
            :func:`centernet.model.backbones.build_backbone`.
        pretrained: initialise the backbone from ImageNet weights (torchvision's for ResNets, from the torch hub
            cache when offline; timm's for DLA-34 and timm models, from the Hugging Face cache when offline).
        neck: ``"upsampling"`` (the paper's deconvolution neck), ``"lateral"`` (the same with shortcuts from the
            backbone at strides 16, 8 and 4, TTFNet-style) or ``"dla_up"`` (DLA-up + IDA-up of CenterNet-DLA).
        neck_channels: output channels of the three upsampling stages (stride 32 -> 16 -> 8 -> 4); unused by
            ``"dla_up"``, whose channels are the backbone's.
        head_channels: hidden channels of each head branch.
        gaussian: heatmap kernel of the targets, ``"ttfnet"`` (elliptical) or ``"cornernet"`` (circular).
        alpha: TTFNet Gaussian radius factor.
        min_overlap: CornerNet Gaussian IoU threshold.
        heatmap_weight: weight of the focal heatmap loss.
        size_weight: weight of the L1 size loss.
        offset_weight: weight of the L1 offset loss.
        max_detections: default number K of detections kept per image by :meth:`decode`.
        head: ``"size"`` (CenterNet: size + offset at the centre, L1) or ``"ltrb"`` (TTFNet: distances to the
            four box sides at every cell of the centre region, GIoU loss).
        box_weight: weight of the GIoU loss (``head="ltrb"``).
        box_sampling: GIoU regression samples (``head="ltrb"``): ``"gaussian"`` (the centre region, log-area
            weighted) or ``"center3x3"`` (the 3x3 cells around each centre).
        deformable: modulated deformable 3x3 convolutions (DCNv2) in the neck, as in the paper's models.
        frozen_stages: number of leading backbone stages (stem first) without gradient and with frozen
            BatchNorm; 0 trains everything.
        freeze_bn: freeze every BatchNorm of the backbone (statistics and affine parameters).
    """

    stride: int = 4

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",
        pretrained: bool = False,
        neck: str = "upsampling",
        neck_channels: Sequence[int] = (256, 128, 64),
        head_channels: int = 64,
        gaussian: str = "ttfnet",
        alpha: float = 0.54,
        min_overlap: float = 0.7,
        heatmap_weight: float = 1.0,
        size_weight: float = 0.1,
        offset_weight: float = 1.0,
        max_detections: int = 100,
        head: str = "size",
        box_weight: float = 5.0,
        box_sampling: str = "gaussian",
        deformable: bool = False,
        frozen_stages: int = 0,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.max_detections = max_detections
        self.backbone = build_backbone(backbone, pretrained=pretrained)
        if freeze_bn:
            freeze_batchnorm(self.backbone)
        freeze_stages(self.backbone, frozen_stages)
        if neck == "upsampling":
            self.neck: nn.Module = UpsamplingNeck(self.backbone.out_channels, neck_channels, deformable)
        elif neck == "lateral":
            self.neck = LateralUpsamplingNeck(self.backbone.channels, neck_channels, deformable)
        elif neck == "dla_up":
            self.neck = DLAUpNeck(self.backbone.channels, deformable)
        else:
            raise ValueError(f"neck must be 'upsampling', 'lateral' or 'dla_up', got {neck!r}")
        if self.backbone.stride // self.neck.upsampling != self.stride:
            raise ValueError(f"neck_channels must have 3 stages (stride 32 -> 4), got {list(neck_channels)}")
        if head not in ("size", "ltrb"):
            raise ValueError(f"head must be 'size' or 'ltrb', got {head!r}")
        self.head_type = head
        if head == "ltrb":
            self.head: nn.Module = LTRBHead(self.neck.out_channels, num_classes, head_channels)
            self.criterion: nn.Module = GIoUCriterion(
                num_classes,
                stride=self.stride,
                gaussian=gaussian,
                alpha=alpha,
                min_overlap=min_overlap,
                heatmap_weight=heatmap_weight,
                box_weight=box_weight,
                box_sampling=box_sampling,
            )
        else:
            self.head = CenterNetHead(self.neck.out_channels, num_classes, head_channels)
            self.criterion = CenterNetCriterion(
                num_classes,
                stride=self.stride,
                gaussian=gaussian,
                alpha=alpha,
                min_overlap=min_overlap,
                heatmap_weight=heatmap_weight,
                size_weight=size_weight,
                offset_weight=offset_weight,
            )
        self.register_buffer("pixel_mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, batch_or_image: Mapping[str, Tensor] | Tensor) -> dict[str, Tensor]:
        """Predict the raw output maps.

        Args:
            batch_or_image: a batch dict (only its ``image`` is used) or a bare image tensor; the image is
                (N, 3, H, W) float RGB in [0, 1] with H and W multiples of 32. ImageNet normalisation happens here.

        Returns:
            Dict of maps at stride 4, (Ho, Wo) = (H / 4, W / 4):

            - ``heatmap``: (N, C, Ho, Wo) class logits; sigmoid gives the probability of an object centre.
            - ``size``: (N, 2, Ho, Wo) box (w, h) in output cells (multiply by 4 for input pixels).
            - ``offset``: (N, 2, Ho, Wo) (dx, dy) from the cell's top-left corner to the box centre, in output
              cells; the centre is ``(x + dx, y + dy) * 4`` in input pixels.

            With ``head="ltrb"``, ``size`` and ``offset`` are replaced by ``ltrb``: (N, 4, Ho, Wo) distances
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
        features = self.backbone(image)  # maps at strides 4, 8, 16, 32
        features = self.neck(features)  # (N, C_neck, H/4, W/4)
        return self.head(features)

    def compute_loss(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Losses of :meth:`forward`'s outputs against the batch's boxes; see :class:`CenterNetCriterion`.

        Returns:
            Dict with unweighted ``heatmap``, ``size``, ``offset`` losses (``heatmap``, ``box`` for the ltrb head,
            see :class:`GIoUCriterion`) and the weighted ``total``.
        """
        return self.criterion(outputs, batch)

    def decode(self, outputs: Mapping[str, Tensor], max_detections: int | None = None) -> dict[str, Tensor]:
        """Top-K detections per image; see :func:`centernet.tasks.detection.decode.decode_detections` (or
        :func:`centernet.tasks.detection.decode.decode_ltrb_detections` for the ltrb head).

        Args:
            outputs: :meth:`forward`'s outputs.
            max_detections: K upper bound; defaults to the constructor's ``max_detections``.

        Returns:
            Dict with ``boxes`` (N, K, 4) xyxy in input pixels, ``scores`` (N, K) and ``labels`` (N, K) int64.
        """
        max_detections = self.max_detections if max_detections is None else max_detections
        if self.head_type == "ltrb":
            return decode_ltrb_detections(
                outputs["heatmap"], outputs["ltrb"], stride=self.stride, max_detections=max_detections
            )
        return decode_detections(
            outputs["heatmap"],
            outputs["size"],
            outputs["offset"],
            stride=self.stride,
            max_detections=max_detections,
        )
