"""The Lightning training adapter: a thin wrapper that trains and validates a ``CenterNet``.

Losses come from the model's criterion, decoding from its decoder, metrics from ``evaluation``; this module
only wires them to Lightning's loop, logs under ``train/`` and ``val/`` and builds the optimiser.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.trainer.states import TrainerFn

from centernet.distributed import deduplicate_by_image_id, gather_objects, is_distributed, scaled_learning_rate
from centernet.evaluation import COCO_METRIC_NAMES, build_coco_metric, coco_metrics_to_dict
from centernet.model import CenterNet
from centernet.tasks.detection.decode import split_detections
from centernet.training.ema import EMA_STATE_KEY
from centernet.training.finetune import load_finetune_weights
from centernet.training.optim import split_weight_decay, warmup_cosine

log = logging.getLogger(__name__)

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
        init_weights: Checkpoint to fine-tune from (a ``centernet fit`` checkpoint, its EMA weights if it has
            them, or a saved ``CenterNet.state_dict()``). Loaded when a fit starts without ``ckpt_path``. A
            different number of classes re-initialises the heatmap head's last layer (and says so); any other
            mismatch is an error naming the keys.
        base_batch_size: The global batch size ``lr`` is tuned for; the optimiser then uses
            ``lr * global_batch / base_batch_size`` with global_batch = per-device batch x devices x nodes x
            ``accumulate_grad_batches`` (the linear scaling rule). ``None`` uses ``lr`` as given.
        max_nonfinite_steps: A non-finite training loss skips the optimiser step with a warning naming the
            batch's image ids; this many in a row stop the run with an error.
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
        init_weights: str | None = None,
        base_batch_size: int | None = None,
        max_nonfinite_steps: int = 10,
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
        # Under DDP every rank evaluates the deduplicated union of all ranks' images itself (see
        # on_validation_epoch_end); torchmetrics' own synchronisation would count padded repeats twice.
        self.val_map.sync_on_compute = False
        if max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")
        self._val_results: list[tuple[int, tuple[dict, dict]]] = []
        self._nonfinite_in_a_row = 0
        self._skip_step = False
        self.skipped_steps = 0  # optimiser steps skipped by the NaN guard (they still count in global_step)
        self.last_step_skipped = False
        self._buffers_before_skip: list[torch.Tensor] | None = None
        self._rng_to_restore: dict[str, Any] | None = None

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs for (N, 3, H, W) images in [0, 1]; see ``CenterNet.forward``."""
        return self.model(image)

    def _shared_step(self, batch: dict[str, Any], prefix: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self.hparams.channels_last:
            batch = {**batch, "image": batch["image"].contiguous(memory_format=torch.channels_last)}
        # The forward pass updates BatchNorm statistics: keep a copy to undo a poisoned batch (the NaN guard).
        buffers = [b.detach().clone() for b in self.model.buffers()] if prefix == "train" else None
        outputs = self.model(batch)
        losses = self.model.compute_loss(outputs, batch)
        if prefix == "train" and not self._loss_is_finite(losses, batch):
            if not self._skip_step:
                self._buffers_before_skip = buffers  # restored after backward (autograd may still need them)
            self._skip_step = True  # backward still runs (every DDP rank must join it); optimizer_step skips
            return outputs, losses["total"]
        batch_size = batch["image"].shape[0]
        on_step = prefix == "train"
        for name, value in losses.items():
            key = f"{prefix}/loss" if name == "total" else f"{prefix}/loss_{name}"
            self.log(
                key,
                value,
                batch_size=batch_size,
                on_step=on_step,
                on_epoch=True,
                prog_bar=name == "total",
                sync_dist=not on_step,  # validation losses: the mean over all ranks
            )
        return outputs, losses["total"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _, loss = self._shared_step(batch, "train")
        return loss

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Run forward and backward, then step unless a loss since the last step was not finite (the NaN guard).

        Lightning forbids skipping ``training_step`` under DDP (returning ``None``), so the guard lets backward
        run on every rank, then all ranks drop the gradients together instead of stepping.
        """
        if optimizer_closure is None:
            optimizer.step()
            return
        loss = optimizer_closure()  # training_step + backward (+ the precision plugin's loss scaling)
        self.last_step_skipped = self._skip_step
        if self._skip_step:
            self._skip_step = False
            self.skipped_steps += 1
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for buffer, saved in zip(self.model.buffers(), self._buffers_before_skip or [], strict=True):
                    buffer.copy_(saved)
            self._buffers_before_skip = None
            return
        # The closure already ran: the precision plugin calls this one for its hooks (clipping, unscaling).
        optimizer.step(closure=lambda: loss)

    def _loss_is_finite(self, losses: dict[str, torch.Tensor], batch: dict[str, Any]) -> bool:
        """The NaN guard: agree across ranks whether the step's loss is finite; warn, count, and give up.

        All ranks agree, so they all skip the step together and stay in sync.
        """
        finite = torch.isfinite(losses["total"].detach()).to(torch.int32).reshape(1)
        if is_distributed():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if bool(finite.item()):
            self._nonfinite_in_a_row = 0
            return True
        self._nonfinite_in_a_row += 1
        image_ids = [int(i) for i in batch["image_id"]]
        parts = ", ".join(f"{name}={float(value.detach()):.4g}" for name, value in losses.items())
        message = (
            f"non-finite training loss at step {self.global_step} (epoch {self.current_epoch}, rank "
            f"{self.global_rank}, image ids {image_ids}): {parts}"
        )
        limit = self.hparams.max_nonfinite_steps
        if self._nonfinite_in_a_row >= limit:
            raise RuntimeError(
                f"{message}. {self._nonfinite_in_a_row} non-finite losses in a row (max_nonfinite_steps={limit}): "
                "stopping. Check these images' annotations, lower the learning rate or set "
                "trainer.gradient_clip_val; resume from last.ckpt once fixed."
            )
        log.warning("%s; skipping the optimiser step (%d in a row)", message, self._nonfinite_in_a_row)
        return False

    def on_validation_epoch_start(self) -> None:
        self._val_results = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs, _ = self._shared_step(batch, "val")
        detections = self.model.decode(outputs)
        preds, targets = _to_original_pixels(detections, batch)
        for image_id, pred, target in zip(batch["image_id"].tolist(), preds, targets, strict=True):
            cpu = ({k: v.detach().cpu() for k, v in pred.items()}, {k: v.detach().cpu() for k, v in target.items()})
            self._val_results.append((int(image_id), cpu))

    def on_validation_epoch_end(self) -> None:
        # Exact distributed evaluation: gather every rank's images, drop the DistributedSampler's padding
        # repeats by image id, and evaluate each image once, in id order (the same on any number of ranks).
        results = deduplicate_by_image_id(gather_objects(self._val_results))
        self._val_results = []
        self.val_map.reset()
        if results:
            preds, targets = zip(*(payload for _, payload in results), strict=True)
            self.val_map.update(list(preds), list(targets))
        metrics = coco_metrics_to_dict(self.val_map.compute())
        self.val_map.reset()
        self.last_val_image_ids = [image_id for image_id, _ in results]
        for name in COCO_METRIC_NAMES:
            # Identical on every rank; sync_dist averages equal values (exact) and keeps Lightning's DDP check quiet.
            self.log(f"val/{name}", metrics[name], prog_bar=name in ("map", "map_50"), sync_dist=True)
        self.last_val_metrics = metrics

    def setup(self, stage: str) -> None:
        """Load ``init_weights`` when a fit starts from scratch (a resumed fit restores its own weights)."""
        path = self.hparams.get("init_weights")
        if stage != "fit" or not path or self.trainer.ckpt_path is not None:
            return
        class_layer = f"head.heatmap.{len(self.model.head.heatmap) - 1}"
        reinitialised = load_finetune_weights(self.model, path, class_layer)
        if reinitialised:
            log.warning(
                "fine-tuning from %s with %d classes: re-initialised %s (the checkpoint has a different number "
                "of classes)",
                path,
                self.hparams.num_classes,
                ", ".join(reinitialised),
            )
        else:
            log.info("fine-tuning from %s: all weights loaded", path)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Python, NumPy and torch (CPU and CUDA) generators, so a resumed run continues their streams.
        checkpoint["rng_states"] = _capture_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        trainer = self._trainer
        fitting = trainer is not None and trainer.state.fn == TrainerFn.FITTING
        if fitting:
            # Restored when the next training epoch starts: the point at which the checkpoint was written.
            self._rng_to_restore = checkpoint.get("rng_states")
        elif EMA_STATE_KEY in checkpoint:
            # Validation and inference use the weight average, the weights that were validated in training.
            checkpoint["state_dict"] = dict(checkpoint[EMA_STATE_KEY])

    def on_train_epoch_start(self) -> None:
        if self._rng_to_restore is not None:
            _restore_rng_states(self._rng_to_restore)
            self._rng_to_restore = None

    def configure_optimizers(self) -> dict[str, Any]:
        hp = self.hparams
        lr = hp.lr
        if hp.get("base_batch_size") is not None:
            per_device = getattr(self.trainer.datamodule, "batch_size", None)
            if per_device is None:
                raise ValueError("base_batch_size needs a datamodule with a `batch_size` attribute")
            global_batch = per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches
            lr = scaled_learning_rate(hp.lr, global_batch, hp.base_batch_size)
            log.info("learning rate %.3g x %d / %d = %.3g", hp.lr, global_batch, hp.base_batch_size, lr)
        optimizer = torch.optim.AdamW(split_weight_decay(self.model, hp.weight_decay), lr=lr)
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = warmup_cosine(total_steps, hp.warmup_steps, hp.min_lr_ratio)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _capture_rng_states() -> dict[str, Any]:
    """Python, NumPy and torch generator states in types that ``torch.load(weights_only=True)`` accepts."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`_capture_rng_states` (CUDA states only where CUDA is available)."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "torch.cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["torch.cuda"])


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
