"""The Lightning training adapter: a thin wrapper that trains and validates a ``CenterNet``.

Losses come from the model's task criterion, decoding from its task, metrics from the task's evaluator (the one
``centernet validate`` uses); this module only wires them to Lightning's loop, logs under ``train/`` and ``val/``,
builds the optimiser and keeps checkpoints readable across format versions (:mod:`centernet.model.checkpoint`).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from lightning.pytorch.trainer.states import TrainerFn

import centernet.model.summary  # noqa: F401  (registers the FLOPs of deformable convolutions)
from centernet.boxes import Letterbox
from centernet.configs import as_options
from centernet.distributed import deduplicate_by_image_id, gather_objects, is_distributed, scaled_learning_rate
from centernet.evaluation import COCO_METRIC_NAMES, DENSE_METRIC_NAMES, KEYPOINT_METRIC_NAMES
from centernet.model import BackboneConfig, CenterNet, NeckConfig
from centernet.model.checkpoint import (
    CHECKPOINT_FORMAT,
    EMA_STATE_KEY,
    FORMAT_KEY,
    migrate_checkpoint,
    model_options,
    read_checkpoint,
)
from centernet.tasks.detection.config import DetectionHeadConfig, DetectionLossConfig
from centernet.tiles import TileGrid, crop_tiles
from centernet.training.finetune import load_finetune_weights
from centernet.training.optim import OptimizerConfig, build_adamw, split_weight_decay, warmup_cosine

log = logging.getLogger(__name__)

__all__ = ["CenterNetModule", "default_channels_last"]


def default_channels_last(device: torch.device) -> bool:
    """Whether training on ``device`` is faster in channels-last memory, as measured (``channels_last=None``).

    On the CPU, oneDNN's convolutions (forward and backward) are faster on NHWC tensors: a ResNet-18 CenterNet
    step at batch 8, 512 px took 1/1.54 of the NCHW time on a 2-core CPU (paired, IQR 1.38-1.67). On GPUs it
    depends on precision and tensor cores and has not been measured here, so they keep NCHW;
    ``channels_last: true`` forces it.
    """
    return device.type == "cpu"


class CenterNetModule(L.LightningModule):
    """Trains a CenterNet; its options (and the class names) are stored in every checkpoint.

    Args:
        num_classes: Number of object classes; linked from the data, not typed in the config.
        class_names: Class names indexed by contiguous label; linked from the data.
        category_ids: The dataset's own category id of each contiguous label; linked from the data.
        image_size: Side of the square network input used in training; linked from the data, stored so that
            inference preprocesses the same way.
        task: What the network predicts: "detection" or "pose" (the registered tasks are in
            ``centernet.tasks.TASKS``).
        backbone: The feature extractor.
        neck: The upsampling neck from stride 32 to 4.
        head: The task's head.
        loss: The task's ground-truth heatmaps and loss weights.
        max_detections: Top-K results kept per image when decoding (validation, predict, validate, export).
        task_options: The task's own options beyond head and loss, validated by the task (pose: the fields of
            ``centernet.tasks.pose.config.PoseConfig``: joint loss weights, snapping); empty for detection.
        task_data: What the task needs to know about the data; linked from the data (pose: the joints).
        optimizer: AdamW and its learning-rate schedule.
        channels_last: Keep weights, images and heatmap targets in the channels-last (NHWC) memory format.
            ``None`` decides in :meth:`setup` with :func:`default_channels_last`: on the CPU, where oneDNN's
            convolutions make a training step ~1.5x faster (``benchmarks/train_levers.py``); NCHW on other
            devices until measured there. Results are unchanged either way.
        compile: Compile the network with ``torch.compile`` when a fit starts. Off by default: on a 2-core CPU
            the steady-state step was 1.35x faster (``benchmarks/train_levers.py --levers compile``), but the first
            step pays about a minute of compilation and the last, smaller batch and validation each recompile, so
            it pays only on long runs. Results are unchanged within float rounding; checkpoints keep their keys.
        init_weights: Checkpoint to fine-tune from (a ``centernet fit`` checkpoint, its EMA weights if it has
            them, or a saved ``CenterNet.state_dict()``). Loaded when a fit starts without ``ckpt_path``. A
            different number of classes re-initialises the head's class layer (and says so); any other
            mismatch is an error naming the keys.
        max_nonfinite_steps: A non-finite training loss skips the optimiser step with a warning naming the
            batch's image ids; this many in a row stop the run with an error.
    """

    def __init__(
        self,
        num_classes: int,
        class_names: Sequence[str] | None = None,
        category_ids: Sequence[int] | None = None,
        image_size: int = 512,
        task: str = "detection",
        backbone: BackboneConfig = BackboneConfig(),
        neck: NeckConfig = NeckConfig(),
        head: DetectionHeadConfig = DetectionHeadConfig(),
        loss: DetectionLossConfig = DetectionLossConfig(),
        max_detections: int = 100,
        task_options: dict[str, Any] | None = None,
        task_data: dict[str, Any] | None = None,
        optimizer: OptimizerConfig = OptimizerConfig(),
        channels_last: bool | None = None,
        compile: bool = False,
        init_weights: str | None = None,
        max_nonfinite_steps: int = 10,
    ) -> None:
        super().__init__()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} entries but num_classes is {num_classes}")
        if max_nonfinite_steps < 1:
            raise ValueError(f"max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")
        groups = {
            "backbone": as_options(backbone, BackboneConfig),
            "neck": as_options(neck, NeckConfig),
            "head": as_options(head, DetectionHeadConfig),
            "loss": as_options(loss, DetectionLossConfig),
            "optimizer": as_options(optimizer, OptimizerConfig),
        }
        self.class_names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        self.category_ids = list(category_ids) if category_ids is not None else list(range(num_classes))
        # Plain data (dicts, lists, numbers) only: a checkpoint must load with torch.load(weights_only=True).
        self.save_hyperparameters(
            {
                "num_classes": num_classes,
                "class_names": self.class_names,
                "category_ids": self.category_ids,
                "image_size": image_size,
                "task": task,
                **{name: dataclasses.asdict(options) for name, options in groups.items()},
                "max_detections": max_detections,
                "task_options": dict(task_options) if task_options else None,
                "task_data": task_data,
                "channels_last": channels_last,
                "compile": compile,
                "init_weights": init_weights,
                "max_nonfinite_steps": max_nonfinite_steps,
            }
        )
        self.optimizer_options: OptimizerConfig = groups["optimizer"]
        self.model = CenterNet(
            num_classes=num_classes,
            task=task,
            backbone=groups["backbone"],
            neck=groups["neck"],
            head=groups["head"],
            loss=groups["loss"],
            max_detections=max_detections,
            task_options=task_options,
            task_data=task_data,
        )
        self._channels_last = False
        if channels_last:
            self._use_channels_last(True)
        # Lightning's model summary runs this through the model to count FLOPs (it prints 0 without one).
        self.example_input_array = torch.zeros(1, 3, image_size, image_size)
        self.evaluator = self.model.task.evaluator(self.class_names, self.category_ids, max_detections)
        self._nonfinite_in_a_row = 0
        self._skip_step = False
        self.skipped_steps = 0  # optimiser steps skipped by the NaN guard (they still count in global_step)
        self.last_step_skipped = False
        self._buffers_before_skip: list[torch.Tensor] | None = None
        self._rng_to_restore: dict[str, Any] | None = None

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path: str | Path, map_location: Any = None, **overrides: Any
    ) -> CenterNetModule:
        """The module of a ``centernet fit`` checkpoint of any format version, read as data only.

        Unlike Lightning's, this never unpickles code (see :mod:`centernet.model.checkpoint`); the backbone is
        not re-downloaded (``pretrained`` is off, the weights are the checkpoint's). Validation uses the EMA
        weights when the checkpoint has them.
        """
        checkpoint = read_checkpoint(checkpoint_path)
        hparams = {k: v for k, v in checkpoint["hyper_parameters"].items() if not k.startswith("_")}
        hparams["backbone"] = model_options(hparams)["backbone"]
        module = cls(**{**hparams, **overrides})
        module.on_load_checkpoint(checkpoint)
        module.load_state_dict(checkpoint["state_dict"])
        return module.to(map_location) if map_location is not None else module

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw head outputs for (N, 3, H, W) images in [0, 1]; see ``CenterNet.forward``."""
        return self.model(image)

    def _shared_step(self, batch: dict[str, Any], prefix: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        if self._channels_last:
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
        self.evaluator.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        tile = getattr(getattr(self._trainer, "datamodule", None), "val_tile", None)
        if tile is not None:
            self._sliced_validation_step(batch, tile)
            return
        outputs, _ = self._shared_step(batch, "val")
        detections = self.model.decode(outputs)
        task = self.model.task
        input_size = tuple(batch["image"].shape[-2:])
        for i, image_id in enumerate(batch["image_id"].tolist()):
            height, width = (int(v) for v in batch["orig_size"][i])
            sx, sy = (float(v) for v in batch["scale"][i])
            letterbox = Letterbox.from_scale((height, width), (sx, sy), input_size)
            one = {key: value[i] for key, value in detections.items()}
            keep = one["scores"] > 0  # drops the zero-score padding of images with fewer than K peaks
            result = task.to_original({key: value[keep].detach().cpu() for key, value in one.items()}, letterbox)
            # The ground truth of the dataset's records in original pixels (crowd regions are ignore regions):
            # every gt_* key of the batch (boxes, labels, iscrowd, area; keypoints for pose data).
            ground_truth = {key[3:]: value[i] for key, value in batch.items() if key.startswith("gt_")}
            self.evaluator.update(image_id, (height, width), ground_truth, result)

    def _sliced_validation_step(self, batch: dict[str, Any], tile: int, tiles_per_pass: int = 8) -> None:
        """Validation of images at their own resolution (native-resolution data): each image in tiles of ``tile``
        px, each tile keeping the detections centred in its core (:mod:`centernet.tiles`), as ``Detector.predict(
        tile=...)`` runs it, so that ``val/map`` measures what sliced inference will do. No loss is computed."""
        task = self.model.task
        for i, image_id in enumerate(batch["image_id"].tolist()):
            height, width = (int(v) for v in batch["orig_size"][i])
            image = batch["image"][i][:, :height, :width]  # (3, H, W) in [0, 1], the image at its own size
            grid = TileGrid.plan((height, width), tile)
            tiles, parts = list(grid), []
            for start in range(0, len(tiles), tiles_per_pass):
                chunk = tiles[start : start + tiles_per_pass]
                pixels = crop_tiles(image, grid, chunk)  # (n, 3, h, w)
                if self._channels_last:
                    pixels = pixels.contiguous(memory_format=torch.channels_last)
                detections = self.model.decode(self.model(pixels))
                for row, one_tile in enumerate(chunk):
                    one = {key: value[row].detach().cpu() for key, value in detections.items()}
                    keep = one["scores"] > 0
                    one = task.translate({key: value[keep] for key, value in one.items()}, one_tile.x0, one_tile.y0)
                    owned = one_tile.owns(task.centres(one))
                    parts.append({key: value[owned] for key, value in one.items()})
            merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
            # At most max_detections per image, the best first, as a whole-image pass and predict(tile=...) keep:
            # COCO caps each class separately, so more would score detections that predict never returns.
            merged = task.select(merged, 0.0, self.model.max_detections, None)
            result = task.to_original(merged, Letterbox.keep_resolution((height, width)))
            ground_truth = {
                "boxes": batch["gt_boxes"][i],
                "labels": batch["gt_labels"][i],
                "iscrowd": batch["gt_iscrowd"][i],
                "area": batch["gt_area"][i],
            }
            self.evaluator.update(image_id, (height, width), ground_truth, result)

    def on_validation_epoch_end(self) -> None:
        # Exact distributed evaluation: gather every rank's images, drop the DistributedSampler's padding
        # repeats by image id, and evaluate each image once, in id order (the same on any number of ranks).
        self.evaluator.load_state(deduplicate_by_image_id(gather_objects(self.evaluator.state())))
        evaluation = self.evaluator.compute()
        self.last_val_image_ids = sorted(image_id for image_id, _ in self.evaluator.state())
        self.evaluator.reset()
        for name in (*COCO_METRIC_NAMES, *DENSE_METRIC_NAMES, *KEYPOINT_METRIC_NAMES):
            if name not in evaluation.metrics:  # dense-scene numbers: above 100 detections per image; keypoint: pose
                continue
            # Identical on every rank; sync_dist averages equal values (exact) and keeps Lightning's DDP check quiet.
            value = float(evaluation.metrics[name])
            self.log(f"val/{name}", value, prog_bar=name in ("map", "map_50", "kp_map"), sync_dist=True)
        self.last_val_metrics = dict(evaluation.metrics)

    def _use_channels_last(self, channels_last: bool) -> None:
        """Put the weights in channels-last (or back in NCHW) memory; the step then converts the images too."""
        self._channels_last = channels_last
        self.model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

    def setup(self, stage: str) -> None:
        """Pick the memory format for the trainer's device (``channels_last=None``); adapt the logging interval
        to small epochs; load ``init_weights`` when a fit starts from scratch (a resumed fit restores its own
        weights)."""
        if self.hparams.channels_last is None:
            self._use_channels_last(default_channels_last(self.trainer.strategy.root_device))
        if stage == "fit":
            self._log_at_least_once_per_epoch()
            if self.hparams.get("compile"):
                self.model.compile()  # in place: the state dict keeps its keys
        path = self.hparams.get("init_weights")
        if stage != "fit" or not path or self.trainer.ckpt_path is not None:
            return
        class_layer = f"head.{self.model.task.class_layer}"
        reinitialised = load_finetune_weights(self.model, path, class_layer)
        if reinitialised:
            log.warning(
                "fine-tuning from %s with %d classes: re-initialised %s (the checkpoint has a different number "
                "of classes, or lacks layers of this task)",
                path,
                self.hparams.num_classes,
                ", ".join(reinitialised),
            )
        else:
            log.info("fine-tuning from %s: all weights loaded", path)

    def _log_at_least_once_per_epoch(self) -> None:
        """An epoch shorter than ``trainer.log_every_n_steps`` would log no training loss (and Lightning warns):
        log every epoch-length steps instead."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or getattr(datamodule, "train_dataset", None) is None:
            return
        batches = len(datamodule.train_dataloader())
        if 0 < batches < self.trainer.log_every_n_steps:
            self.trainer.log_every_n_steps = batches

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[FORMAT_KEY] = CHECKPOINT_FORMAT
        # Python, NumPy and torch (CPU and CUDA) generators, so a resumed run continues their streams.
        checkpoint["rng_states"] = _capture_rng_states()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Resuming or validating a checkpoint of an older format: bring it to this one (weights keep their names).
        migrate_checkpoint(checkpoint)
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
        options = self.optimizer_options
        lr = options.lr
        if options.base_batch_size is not None:
            per_device = getattr(self.trainer.datamodule, "batch_size", None)
            if per_device is None:
                raise ValueError("base_batch_size needs a datamodule with a `batch_size` attribute")
            global_batch = per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches
            lr = scaled_learning_rate(options.lr, global_batch, options.base_batch_size)
            log.info("learning rate %.3g x %d / %d = %.3g", options.lr, global_batch, options.base_batch_size, lr)
        trainer = self.trainer
        # Lightning refuses to clip the gradients of an optimiser that unscales them itself (fused) under AMP.
        clipping_under_amp = bool(trainer.gradient_clip_val) and str(trainer.precision).endswith("-mixed")
        optimizer = build_adamw(
            split_weight_decay(self.model, options.weight_decay),
            lr,
            trainer.strategy.root_device,
            allow_fused=not clipping_under_amp,
        )
        total_steps = int(self.trainer.estimated_stepping_batches)
        schedule = warmup_cosine(total_steps, options.warmup_steps, options.min_lr_ratio)
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
