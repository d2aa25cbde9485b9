"""The DataModule of the tracking task: frame pairs from MOTChallenge folders, COCO-video json or the built-in
moving-shapes videos (:mod:`centernet.data.tracking_pairs`).

``centernet fit`` selects it with ``data.class_path: centernet.data.TrackingDataModule`` (the shipped ``tracking``
config); its classes, category ids and input size are linked into the model as :class:`CenterNetDataModule`'s are.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import lightning as L
from torch.utils.data import DataLoader

from centernet.data.coco_video import parse_coco_video
from centernet.data.mot import parse_mot
from centernet.data.moving_shapes import ensure_moving_shapes
from centernet.data.prior_heatmap import PriorNoise
from centernet.data.sampler import SeededEpochSampler, SeededSamples
from centernet.data.tracking_pairs import VideoPairs, collate_tracking
from centernet.data.video_records import VideoSource

__all__ = ["TrackingDataModule"]


class TrackingDataModule(L.LightningDataModule):
    """Training and validation pairs of video frames.

    Args:
        dataset: "moving_shapes" (generated once and cached), "mot" (MOTChallenge folders) or "coco_video".
        train: MOT: a split folder or one sequence; COCO-video: the json (frames relative to ``train_images``).
        val: The same for validation.
        train_images: COCO-video: the folder the training json's ``file_name`` s are relative to.
        val_images: COCO-video: the same for validation.
        class_names: MOT: names of the class ids 1, 2, ... (default: the ids).
        image_size: Side of the square network input.
        batch_size: Training pairs per batch.
        num_workers: Loader processes.
        max_gap: Largest frame distance of a training pair.
        noise: Prior-heatmap noise (jitter, drop, false_positive) in training.
        scale_range: Joint random scale of a training pair.
        shift: Joint random shift of a training pair, as a fraction of the side.
        shapes_root: Cache folder of the moving-shapes videos (default: the centernet cache).
        shapes_train: Training videos generated.
        shapes_val: Validation videos generated.
        shapes_frames: Frames per generated video.

    Attributes:
        tasks: The ``model.task`` s this data trains (``centernet fit`` refuses another).
        num_classes: Number of categories C (labels are 0..C-1).
        class_names: Category names, index = label.
        category_ids: The dataset's category ids, index = label.
        task_data: What the task needs to know about the data (linked into ``model.task_data``): nothing, ``None``.
        train_source: The training videos (:class:`~centernet.data.video_records.VideoSource`).
        val_source: The validation videos; :class:`~centernet.training.tracking_eval.TrackingEvaluation` tracks them
            at the end of a fit.
    """

    tasks: ClassVar[tuple[str, ...]] = ("tracking",)

    def __init__(
        self,
        dataset: Literal["moving_shapes", "mot", "coco_video"] = "moving_shapes",
        train: str | None = None,
        val: str | None = None,
        train_images: str | None = None,
        val_images: str | None = None,
        class_names: list[str] | None = None,
        image_size: int = 128,
        batch_size: int = 16,
        num_workers: int = 1,
        max_gap: int = 3,
        noise: PriorNoise = PriorNoise(),
        scale_range: tuple[float, float] = (0.8, 1.2),
        shift: float = 0.1,
        shapes_root: str | None = None,
        shapes_train: int = 6,
        shapes_val: int = 2,
        shapes_frames: int = 100,
    ) -> None:
        super().__init__()
        if dataset not in ("moving_shapes", "mot", "coco_video"):
            raise ValueError(f"dataset must be 'moving_shapes', 'mot' or 'coco_video', got {dataset!r}")
        if dataset != "moving_shapes" and (train is None or val is None):
            raise ValueError(f"dataset {dataset!r} needs train and val")
        if batch_size < 1 or num_workers < 0:
            raise ValueError(f"batch_size must be >= 1 and num_workers >= 0, got {batch_size} and {num_workers}")
        self.dataset, self.train, self.val = dataset, train, val
        self.train_images, self.val_images = train_images, val_images
        self.image_size, self.batch_size, self.num_workers = image_size, batch_size, num_workers
        self.max_gap, self.noise, self.scale_range, self.shift = max_gap, noise, scale_range, shift
        if dataset == "moving_shapes":
            paths = ensure_moving_shapes(shapes_root, shapes_train, shapes_val, shapes_frames, image_size)
            self.train, self.val = str(paths.train), str(paths.val)
            class_names = ["shape"]
        self.class_names_option = class_names
        self.train_source = self._read(self.train, self.train_images)
        self.val_source = self._read(self.val, self.val_images)
        self.class_names = self.train_source.class_names
        self.category_ids = self.train_source.category_ids
        self.num_classes = len(self.class_names)
        self.task_data: dict[str, Any] | None = None
        self.train_dataset: VideoPairs | None = None
        self.val_dataset: VideoPairs | None = None

    def _read(self, where: str | None, images: str | None) -> VideoSource:
        if self.dataset == "coco_video":
            if images is None:
                raise ValueError("dataset 'coco_video' needs train_images and val_images")
            return parse_coco_video(str(where), images)
        return parse_mot(str(where), class_names=self.class_names_option)

    def setup(self, stage: str | None = None) -> None:
        self.train_dataset = VideoPairs(
            self.train_source.sequences, self.image_size, True, self.max_gap, self.noise, self.scale_range, self.shift
        )
        self.val_dataset = VideoPairs(self.val_source.sequences, self.image_size, train=False)

    def train_dataloader(self) -> DataLoader:
        """Shuffled pairs; order and augmentation are functions of the seed and epoch (:class:`SeededEpochSampler`)."""
        assert self.train_dataset is not None, "call setup('fit') first"
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = SeededEpochSampler(
            self.train_dataset, num_replicas=replicas, rank=rank, seed=int(os.environ.get("PL_GLOBAL_SEED", 0))
        )
        return DataLoader(
            SeededSamples(self.train_dataset), batch_size=self.batch_size, sampler=sampler, drop_last=True,
            num_workers=self.num_workers, collate_fn=collate_tracking, persistent_workers=self.num_workers > 0,
        )  # fmt: skip

    def val_dataloader(self) -> DataLoader:
        """Consecutive frames of the validation videos, each with its previous frame and a noise-free prior."""
        assert self.val_dataset is not None, "call setup('fit') first"
        return DataLoader(
            self.val_dataset, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate_tracking
        )
