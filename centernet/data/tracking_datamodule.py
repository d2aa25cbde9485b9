"""The DataModule of the tracking task: frame pairs from MOTChallenge folders, COCO-video json or the built-in
moving-shapes videos, and pairs simulated from still images of a COCO detection json
(:mod:`centernet.data.tracking_pairs`).

``centernet fit`` selects it with ``data.class_path: centernet.data.TrackingDataModule`` (the shipped ``tracking``
config); its classes, category ids and input size are linked into the model as :class:`CenterNetDataModule`'s are.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import lightning as L
from torch.utils.data import ConcatDataset, DataLoader

from centernet.data.coco import parse_coco
from centernet.data.coco_video import parse_coco_video
from centernet.data.mot import parse_mot
from centernet.data.moving_shapes import ensure_moving_shapes
from centernet.data.prior_heatmap import PriorNoise
from centernet.data.records import DetectionSource, Problems
from centernet.data.sampler import SeededEpochSampler, SeededSamples
from centernet.data.tracking_pairs import ImagePairs, VideoPairs, collate_tracking
from centernet.data.validation import validate_source
from centernet.data.video_records import VideoSource

__all__ = ["TrackingDataModule"]


class TrackingDataModule(L.LightningDataModule):
    """Training and validation pairs of video frames.

    Args:
        dataset: "moving_shapes" (generated once and cached), "mot" (MOTChallenge folders) or "coco_video".
        train: MOT: a split folder or one sequence; COCO-video: the json (frames relative to ``train_images``).
            ``None`` with ``still_annotations``: training on simulated pairs only (CenterTrack's static images).
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
        still_images: Folder of the images of ``still_annotations``.
        still_annotations: A COCO detection json of single images: each trains as a pair simulated by a random
            shift and scale of the image (:class:`~centernet.data.tracking_pairs.ImagePairs`), so a detection
            dataset trains a tracker; added to the video pairs, or alone when ``train`` is ``None``. Its categories
            must be the videos' (names in the same order).

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
        still_images: str | None = None,
        still_annotations: str | None = None,
    ) -> None:
        super().__init__()
        if dataset not in ("moving_shapes", "mot", "coco_video"):
            raise ValueError(f"dataset must be 'moving_shapes', 'mot' or 'coco_video', got {dataset!r}")
        if dataset != "moving_shapes" and (val is None or (train is None and still_annotations is None)):
            raise ValueError(f"dataset {dataset!r} needs val, and train or still_annotations (or both)")
        if (still_images is None) != (still_annotations is None):
            raise ValueError("still_images and still_annotations go together: the json and its image folder")
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
        self.train_source = self._read(self.train, self.train_images) if self.train is not None else None
        self.val_source = self._read(self.val, self.val_images)
        self.still_source = self._read_still(still_images, still_annotations) if still_annotations else None
        labelled = self.train_source if self.train_source is not None else self.still_source
        self.class_names = labelled.class_names
        self.category_ids = labelled.category_ids
        self._check_classes()
        self.num_classes = len(self.class_names)
        self.task_data: dict[str, Any] | None = None
        self.train_dataset: VideoPairs | ImagePairs | _MixedPairs | None = None
        self.val_dataset: VideoPairs | None = None

    def _read(self, where: str | None, images: str | None) -> VideoSource:
        if self.dataset == "coco_video":
            if images is None:
                raise ValueError("dataset 'coco_video' needs train_images and val_images")
            return parse_coco_video(str(where), images)
        return parse_mot(str(where), class_names=self.class_names_option)

    @staticmethod
    def _read_still(images: str | None, annotations: str) -> DetectionSource:
        """The still images, validated as detection data is (an unreadable image or a bad box: named errors)."""
        problems = Problems()
        source, problems = validate_source(parse_coco(str(images), annotations, problems), "error", problems)
        problems.raise_if_errors(annotations)
        return source

    def _check_classes(self) -> None:
        """Still images name the classes of the videos they train with, in the same order (labels index one class
        list); trained on still images only, the validation videos must name theirs."""
        if self.still_source is None:
            return
        videos = ("train", self.train_source) if self.train_source is not None else ("val", self.val_source)
        name, source = videos
        if list(source.class_names) != list(self.still_source.class_names):
            raise ValueError(
                f"still_annotations ({self.still_source.description}) has the classes "
                f"{list(self.still_source.class_names)}, {name} ({source.description}) {list(source.class_names)}: "
                "the videos and the still images must name the same classes in the same order (MOT: set class_names)"
            )

    def setup(self, stage: str | None = None) -> None:
        parts: list[VideoPairs | ImagePairs] = []
        if self.train_source is not None:
            parts.append(VideoPairs(
                self.train_source.sequences, self.image_size, True, self.max_gap, self.noise, self.scale_range,
                self.shift,
            ))  # fmt: skip
        if self.still_source is not None:
            parts.append(ImagePairs(self.still_source, self.image_size, True, self.noise, self.scale_range, self.shift))
        self.train_dataset = parts[0] if len(parts) == 1 else _MixedPairs(parts)
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


class _MixedPairs(ConcatDataset):
    """Video pairs and simulated still-image pairs in one training set; reseeding reaches both."""

    def set_random_seed(self, seed: int | None) -> None:
        for part in self.datasets:
            part.set_random_seed(seed)
