"""The LightningDataModule: COCO-format data or the built-in shapes dataset, as batches of the model contract."""

from __future__ import annotations

import os
from typing import Literal

import cv2
import lightning as L
from torch.utils.data import DataLoader

from centernet.data.coco import CocoDetection, read_categories
from centernet.data.collate import collate_detections
from centernet.data.sampler import SeededEpochSampler, SeededSamples
from centernet.data.synthetic import SHAPE_CATEGORY_IDS, SHAPE_CLASSES, ensure_shapes_dataset
from centernet.data.transforms import DetectionTransform, build_eval_transform, build_train_transform

__all__ = ["CenterNetDataModule"]


class CenterNetDataModule(L.LightningDataModule):
    """Training and validation data for CenterNet.

    ``num_classes``, ``class_names`` and ``category_ids`` are known right after construction (from the
    categories of the annotation json, or the shapes classes) without generating or loading any data, so the
    CLI can link them into the model. ``prepare_data`` generates the shapes cache; ``setup`` builds the datasets.

    Args:
        dataset: ``"coco"`` for images + COCO json given by the paths below, ``"shapes"`` for the built-in
            synthetic dataset (generated once into ``shapes_root``).
        train_images: Folder of the training images (``dataset="coco"``).
        train_annotations: COCO json of the training images (``dataset="coco"``).
        val_images: Folder of the validation images (``dataset="coco"``).
        val_annotations: COCO json of the validation images (``dataset="coco"``); used for COCO evaluation.
        image_size: Side of the square network input in pixels; a multiple of 32.
        batch_size: Training batch size.
        val_batch_size: Validation batch size; ``None`` uses ``batch_size``.
        num_workers: DataLoader worker processes per loader (0 loads in the main process).
        scale_range: (min, max) random zoom of the training augmentation.
        hflip_prob: Probability of a horizontal flip in training.
        color_jitter: Strength of the brightness/contrast/saturation jitter in training (0 disables it).
        shapes_root: Cache folder of the shapes dataset; ``None`` uses ``$CENTERNET_CACHE`` or
            ``~/.cache/centernet``.
        shapes_train_images: Number of generated training images.
        shapes_val_images: Number of generated validation images.
        shapes_image_size: Side of the generated images in pixels.
        seed: Seed of the shapes generator. The training order and augmentations follow the run's
            ``seed_everything`` seed (see :meth:`train_dataloader`).

    Attributes:
        num_classes: Number of categories C (labels are 0..C-1).
        class_names: Category names, index = label.
        category_ids: The dataset's category ids, index = label.
        train_dataset: The training :class:`CocoDetection` after ``setup("fit")``.
        val_dataset: The validation :class:`CocoDetection` after ``setup``; ``val_dataset.coco`` is its
            pycocotools index.
    """

    def __init__(
        self,
        dataset: Literal["shapes", "coco"] = "coco",
        train_images: str | None = None,
        train_annotations: str | None = None,
        val_images: str | None = None,
        val_annotations: str | None = None,
        image_size: int = 512,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        scale_range: tuple[float, float] = (0.6, 1.4),
        hflip_prob: float = 0.5,
        color_jitter: float = 0.3,
        shapes_root: str | None = None,
        shapes_train_images: int = 1000,
        shapes_val_images: int = 200,
        shapes_image_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if dataset not in ("shapes", "coco"):
            raise ValueError(f"dataset must be 'shapes' or 'coco', got {dataset!r}")
        if batch_size < 1 or (val_batch_size is not None and val_batch_size < 1):
            raise ValueError(f"batch sizes must be >= 1, got batch_size={batch_size}, val_batch_size={val_batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.train_images, self.train_annotations = train_images, train_annotations
        self.val_images, self.val_annotations = val_images, val_annotations
        self.image_size = image_size
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.shapes_root = shapes_root
        self.shapes_train_images = shapes_train_images
        self.shapes_val_images = shapes_val_images
        self.shapes_image_size = shapes_image_size
        self.seed = seed
        # Build the transforms now: they validate image_size and the augmentation settings at construction.
        self.train_transform = build_train_transform(image_size, scale_range, hflip_prob, color_jitter)
        self.eval_transform = build_eval_transform(image_size)
        self.train_dataset: CocoDetection | None = None
        self.val_dataset: CocoDetection | None = None
        self._start_epoch = 0

        if dataset == "shapes":
            names, ids = list(SHAPE_CLASSES), list(SHAPE_CATEGORY_IDS)
        else:
            source = train_annotations or val_annotations
            if source is None:
                raise ValueError(
                    "dataset='coco' needs `train_annotations` (or `val_annotations`): the categories are read from it"
                )
            names, ids = read_categories(source)
        self.class_names: list[str] = names
        self.category_ids: list[int] = ids
        self.num_classes: int = len(names)

    def prepare_data(self) -> None:
        """Generate the shapes dataset once (rank 0 only); nothing to do for COCO data."""
        if self.dataset == "shapes":
            self._ensure_shapes()

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (``fit``: train and val; ``validate``: val)."""
        if self.dataset == "shapes":
            self._ensure_shapes()  # reuses the cache written by prepare_data; sets the four paths
        if stage in (None, "fit") and self.train_dataset is None:
            images, annotations = self._require("train")
            self.train_dataset = self._dataset(images, annotations, self.train_transform)
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            images, annotations = self._require("val")
            self.val_dataset = self._dataset(images, annotations, self.eval_transform)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (see :func:`collate_detections`); drops the last partial batch.

        The order and the augmentation of every sample are functions of the run's seed (``PL_GLOBAL_SEED``, set
        by ``seed_everything``), the epoch and the sample (see :class:`SeededEpochSampler`): the same with any
        number of workers, after a resume, and split without overlap between DDP ranks.
        """
        if self.train_dataset is None:
            raise RuntimeError("call setup('fit') before train_dataloader()")
        trainer = self.trainer
        num_replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = SeededEpochSampler(
            self.train_dataset, num_replicas=num_replicas, rank=rank, seed=int(os.environ.get("PL_GLOBAL_SEED", 0))
        )
        # Lightning creates the first iterator of a fit before it calls set_epoch (and before it restores the
        # loops), and worker processes prefetch indices at once: a resumed run would replay epoch 0's order.
        # Start at the epoch recorded in the checkpoint (see state_dict; 0 for a fresh fit).
        sampler.set_epoch(self._start_epoch)
        return DataLoader(
            SeededSamples(self.train_dataset),
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=sampler.num_samples > self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_detections,
            pin_memory=False,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=_init_worker,
        )

    def val_dataloader(self) -> DataLoader:
        """Validation batches in dataset order, letterboxed by the evaluation transform."""
        if self.val_dataset is None:
            raise RuntimeError("call setup('fit') or setup('validate') before val_dataloader()")
        return DataLoader(
            self.val_dataset,
            batch_size=self.val_batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_detections,
            pin_memory=False,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=_init_worker,
        )

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints: the training epoch that a run resumed from this checkpoint starts in."""
        trainer = self.trainer
        epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
        return {"epoch": int(epoch)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._start_epoch = int(state_dict.get("epoch", 0))

    def _ensure_shapes(self) -> None:
        paths = ensure_shapes_dataset(
            root=self.shapes_root,
            num_train=self.shapes_train_images,
            num_val=self.shapes_val_images,
            image_size=self.shapes_image_size,
            seed=self.seed,
        )
        self.train_images, self.train_annotations = str(paths.train_images), str(paths.train_annotations)
        self.val_images, self.val_annotations = str(paths.val_images), str(paths.val_annotations)

    def _require(self, split: str) -> tuple[str, str]:
        images, annotations = getattr(self, f"{split}_images"), getattr(self, f"{split}_annotations")
        for name, value in ((f"{split}_images", images), (f"{split}_annotations", annotations)):
            if value is None:
                raise ValueError(f"dataset='coco' needs `{name}` to build the {split} dataset")
        return images, annotations

    def _dataset(self, images: str, annotations: str, transform: DetectionTransform) -> CocoDetection:
        dataset = CocoDetection(images, annotations, transform=transform)
        if (dataset.category_ids, dataset.class_names) != (self.category_ids, self.class_names):
            source = self.train_annotations or self.val_annotations
            found = dict(zip(dataset.category_ids, dataset.class_names, strict=True))
            expected = dict(zip(self.category_ids, self.class_names, strict=True))
            raise ValueError(
                f"{annotations} has categories {found} but {source} has {expected}; train and val must share them"
            )
        return dataset


def _init_worker(worker_id: int) -> None:
    """DataLoader worker setup: one OpenCV thread per worker (the training sampler seeds every sample itself)."""
    cv2.setNumThreads(1)
