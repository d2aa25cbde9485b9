"""The Lightning training adapter: a thin wrapper that trains and validates a ``CenterNet``.

Losses come from the model's criterion, decoding from its decoder, metrics from ``evaluation``; this module
only wires them to Lightning's loop, logs under ``train/`` and ``val/`` and builds the optimiser.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import torch

from .decode import split_detections
from .evaluation import COCO_METRIC_NAMES, build_coco_metric, coco_metrics_to_dict
from .model import CenterNet
from .optim import split_weight_decay, warmup_cosine

__all__ = ["CenterNetModule"]


class CenterNetModule(L.LightningModule):
    """Trains a CenterNet detector; hyper-parameters (and the class names) are stored in every checkpoint.

    Args:
        num_classes: Number of object classes; linked from the data, not typed in the config.
        class_names: Class names indexed by contiguous label; linked from the data.
        category_ids: The dataset's own category id of each contiguous label; linked from the data.
        image_size: Side of the square network input used in training; linked from the data, stored so that
            inference preprocesses the same way.
        backbone: resnet18, resnet34, resnet50, resnet101 (torchvision), dla34 (DLA-34) or timm:<name> (any timm
            model with features at strides 4-32, e.g. timm:mobilenetv3_large_100).
        pretrained: Start the backbone from ImageNet weights (needs them downloaded or cached).
        neck: "upsampling" (the paper's deconvolution neck), "lateral" (with shortcuts from strides 16, 8, 4) or
            "dla_up" (DLA-up + IDA-up, CenterNet-DLA's neck; its channels are the backbone's).
        neck_channels: Channels of the three upsampling stages (stride 32 -> 16 -> 8 -> 4).
        head_channels: Hidden channels of each head's 3x3 convolution.
        gaussian: Ground-truth heatmap shape: "ttfnet" (elliptical, box-shaped) or "cornernet" (radius rule).
        alpha: TTFNet Gaussian size as a fraction of the box.
        min_overlap: CornerNet radius rule's minimum IoU.
        heatmap_weight: Weight of the focal loss in the total.
        size_weight: Weight of the L1 box-size loss.
        offset_weight: Weight of the L1 centre-offset loss.
        max_detections: Top-K detections kept per image when decoding.
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW weight decay on convolution and linear weights (not on norms and biases).
        warmup_steps: Optimiser steps of linear warm-up before the cosine decay.
        min_lr_ratio: Final learning rate as a fraction of ``lr``.
        channels_last: Keep weights and images in the channels-last (NHWC) memory format; about 20% faster
            training on CPU (oneDNN convolutions) and on GPUs with tensor cores. Results are unchanged.
        head: "size" (CenterNet: box size and centre offset, L1) or "ltrb" (TTFNet: distances to the box sides
            over the centre region, GIoU loss).
        box_weight: Weight of the GIoU loss (ltrb head).
        box_sampling: GIoU regression cells (ltrb head): "gaussian" (the centre region) or "center3x3".
        deformable: Modulated deformable 3x3 convolutions (DCNv2) in the neck.
        frozen_stages: Leading backbone stages (stem first) kept frozen, BatchNorm included; 0 trains all.
        freeze_bn: Freeze every BatchNorm of the backbone (statistics and affine parameters).
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
        image_size: int = 512,
        backbone: str = "resnet18",
        pretrained: bool = False,
        neck: Literal["upsampling", "lateral", "dla_up"] = "upsampling",
        neck_channels: Sequence[int] = (256, 128, 64),
        head_channels: int = 64,
        gaussian: Literal["ttfnet", "cornernet"] = "ttfnet",
        alpha: float = 0.54,
        min_overlap: float = 0.7,
        heatmap_weight: float = 1.0,
        size_weight: float = 0.1,
        offset_weight: float = 1.0,
        max_detections: int = 100,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 300,
        min_lr_ratio: float = 0.01,
        channels_last: bool = False,
        head: Literal["size", "ltrb"] = "size",
        box_weight: float = 5.0,
        box_sampling: Literal["gaussian", "center3x3"] = "gaussian",
        deformable: bool = False,
        frozen_stages: int = 0,
        freeze_bn: bool = False,
    ) -> None:
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} entries but num_classes is {num_classes}")
        self.save_hyperparameters()
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.category_ids = list(category_ids) if category_ids is not None else list(range(num_classes))
        self.model = CenterNet(
            num_classes=num_classes,
            backbone=backbone,
            pretrained=pretrained,
            neck=neck,
            neck_channels=neck_channels,
            head_channels=head_channels,
            gaussian=gaussian,
            alpha=alpha,
            min_overlap=min_overlap,
            heatmap_weight=heatmap_weight,
            size_weight=size_weight,
            offset_weight=offset_weight,
            max_detections=max_detections,
            head=head,
            box_weight=box_weight,
            box_sampling=box_sampling,
            deformable=deformable,
            frozen_stages=frozen_stages,
            freeze_bn=freeze_bn,
        )
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.val_map = build_coco_metric()

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs for (N, 3, H, W) images in [0, 1]; see ``CenterNet.forward``."""
        return self.model(image)

    def _shared_step(self, batch: dict[str, Any], prefix: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self.hparams.channels_last:
            batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
        outputs = self.model(batch)
        losses = self.model.compute_loss(outputs, batch)
        batch_size = batch["image"].shape[0]
        on_step = prefix == "train"
        for name, value in losses.items():
            key = f"{prefix}/loss" if name == "total" else f"{prefix}/loss_{name}"
            self.log(key, value, batch_size=batch_size, on_step=on_step, on_epoch=True, prog_bar=name == "total")
        return outputs, losses["total"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _, loss = self._shared_step(batch, "train")
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs, _ = self._shared_step(batch, "val")
        detections = self.model.decode(outputs)
        preds, targets = _to_original_pixels(detections, batch)
        self.val_map.update(preds, targets)

    def on_validation_epoch_end(self) -> None:
        metrics = coco_metrics_to_dict(self.val_map.compute())
        self.val_map.reset()
        for name in COCO_METRIC_NAMES:
            self.log(f"val/{name}", metrics[name], prog_bar=name in ("map", "map_50"), sync_dist=False)
        self.last_val_metrics = metrics

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        optimizer = torch.optim.AdamW(split_weight_decay(self.model, hp.weight_decay), lr=hp.lr)
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = warmup_cosine(total_steps, hp.warmup_steps, hp.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _to_original_pixels(
    detections: dict[str, torch.Tensor], batch: dict[str, Any]
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """Per-image predictions and ground truth in original-image pixels, as torchmetrics expects them.

    Detections are xyxy in network-input pixels; the evaluation transform resized by ``scale`` (sx, sy) and padded
    at the bottom/right, so dividing by it maps them back exactly (then they are clipped to the image). Ground
    truth comes from the dataset's annotations in original pixels (``gt_boxes``, ``gt_labels``, ``gt_iscrowd``,
    ``gt_area``),
    untouched by the transform.
    """
    scales = batch["scale"].float().repeat(1, 2)  # (N, 4): sx, sy, sx, sy
    heights, widths = batch["orig_size"][:, 0].float(), batch["orig_size"][:, 1].float()
    preds = []
    for i, det in enumerate(split_detections(detections)):  # drops the zero-score non-peaks
        boxes = det["boxes"] / scales[i].to(det["boxes"])  # (k, 4)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, float(widths[i]))
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, float(heights[i]))
        preds.append({"boxes": boxes, "scores": det["scores"], "labels": det["labels"]})
    # ``area`` is the annotation's own area (as COCO's small/medium/large split uses), crowds are ignore regions.
    targets = [
        {"boxes": boxes.float(), "labels": labels.long(), "iscrowd": crowd.long(), "area": area.float()}
        for boxes, labels, crowd, area in zip(
            batch["gt_boxes"], batch["gt_labels"], batch["gt_iscrowd"], batch["gt_area"], strict=True
        )
    ]
    return preds, targets
