"""The LightningDataModule: COCO, Pascal VOC or YOLO data, or the built-in shapes dataset, as batches of the model
contract. Every image and annotation is validated in ``setup`` (before training, in the main process)."""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal

import cv2
import lightning as L
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from centernet.data.augment import build_transform_from_config
from centernet.data.coco import CocoDetection, parse_coco, read_categories, read_keypoint_info
from centernet.data.collate import collate_detections
from centernet.data.crops import NativeCrops
from centernet.data.dataset import DetectionDataset
from centernet.data.keypoints import flip_permutation, keypoint_info
from centernet.data.mosaic import Mosaic
from centernet.data.records import DetectionSource, Problems
from centernet.data.sampler import SeededEpochSampler, SeededSamples
from centernet.data.stick_figures import STICK_JOINTS, STICK_SKELETON, ensure_stick_figures
from centernet.data.synthetic import SHAPE_CATEGORY_IDS, SHAPE_CLASSES, ensure_shapes_dataset
from centernet.data.transforms import DetectionTransform, build_eval_transform, build_train_transform
from centernet.data.validation import InvalidImagePolicy, validate_source
from centernet.data.voc import discover_voc_classes, parse_voc
from centernet.data.yolo import YoloData, parse_yolo, read_yolo_yaml

__all__ = ["CenterNetDataModule"]


class CenterNetDataModule(L.LightningDataModule):
    """Training and validation data for CenterNet.

    ``num_classes``, ``class_names`` and ``category_ids`` are known right after construction (from the
    categories of the annotation json, the VOC class names, the YOLO ``names``, or the shapes classes) without
    generating or loading any image, so the CLI can link them into the model. ``prepare_data`` generates the
    shapes cache; ``setup`` reads and validates every annotation and image file (see
    :mod:`centernet.data.validation`) and builds the datasets, so bad data fails before training starts.

    Args:
        dataset: ``"coco"`` (images + COCO json, boxes or person keypoints), ``"voc"`` (images + a folder of
            Pascal VOC XML files), ``"yolo"`` (a YOLO dataset YAML, ``yolo_data``, detect or pose), or a built-in
            synthetic dataset generated once into ``shapes_root``: ``"shapes"`` (boxes) or ``"stick_figures"``
            (person keypoints, :mod:`centernet.data.stick_figures`; it uses the ``shapes_*`` sizes and seed).
        train_images: Folder of the training images (``coco``, ``voc``).
        train_annotations: COCO json (``coco``), or a folder of XML files or an ``ImageSets`` .txt list (``voc``),
            of the training images.
        val_images: Folder of the validation images (``coco``, ``voc``).
        val_annotations: The same for the validation images.
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
        yolo_data: The YOLO dataset YAML (``path``, ``train``, ``val``, ``names``) for ``dataset="yolo"``.
        voc_classes: Class names of a VOC dataset, in label order (category ids ``1..C``); ``None`` discovers
            them: the sorted names found in the train and val XML files.
        invalid_images: What to do with a missing, empty, truncated or non-image file, or one whose size differs
            from its annotation: ``"error"`` (fail before training, naming the file) or ``"skip"`` it (counted).
        augmentations: The training pipeline as a list of albumentations transforms, ``{name: ..., **kwargs}``
            (see :mod:`centernet.data.augment`); ``None`` uses the default built from ``scale_range``,
            ``hflip_prob`` and ``color_jitter``.
        min_visibility: A training box keeping less than this fraction of its area after a crop is dropped.
        mosaic: Probability of a 4-image mosaic for a training sample (0 disables it); see
            :mod:`centernet.data.mosaic`.
        allow_images_outside_folder: Accept image paths in COCO ``file_name`` / VOC ``<filename>`` that leave the
            image folder (``../x.jpg``, absolute paths); by default they are errors naming the annotation file.
        native_resolution: Train on ``image_size`` crops of the images at their own scale (zoom from
            ``scale_range`` around 1.0) instead of fitting each image to ``image_size``, with crops per epoch
            following each image's area (:mod:`centernet.data.crops`), and validate with sliced inference in
            tiles of ``image_size`` (:mod:`centernet.tiles`), as ``predict --tile`` runs; for images far larger
            than the network (aerial, slides, panoramas). The validation loss is then not computed.
        crop_object_bias: With ``native_resolution``, the probability that a crop is placed around a random object
            instead of on its cell of the image (0: crops cover every image evenly, background included).

    Attributes:
        tasks: The ``model.task`` s this data trains (``centernet fit`` refuses another; pose needs keypoints).
        num_classes: Number of categories C (labels are 0..C-1).
        class_names: Category names, index = label.
        category_ids: The dataset's category ids, index = label.
        task_data: What a task needs to know about the data, linked into the model (``model.task_data``): for a
            keypoint dataset its joints (:func:`centernet.data.keypoints.keypoint_info`), else ``None``.
        train_dataset: The training :class:`DetectionDataset` after ``setup("fit")`` (a :class:`CocoDetection`
            for COCO and shapes data).
        val_dataset: The validation dataset after ``setup``.
        problems: Per split (``"train"``, ``"val"``), what validation found: clipped and dropped boxes, skipped
            images.
    """

    tasks: ClassVar[tuple[str, ...]] = ("detection", "pose")

    def __init__(
        self,
        dataset: Literal["shapes", "stick_figures", "coco", "voc", "yolo"] = "coco",
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
        yolo_data: str | None = None,
        voc_classes: list[str] | None = None,
        invalid_images: InvalidImagePolicy = "error",
        augmentations: list[dict[str, Any]] | None = None,
        min_visibility: float = 0.3,
        mosaic: float = 0.0,
        allow_images_outside_folder: bool = False,
        native_resolution: bool = False,
        crop_object_bias: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if dataset not in ("shapes", "stick_figures", "coco", "voc", "yolo"):
            raise ValueError(f"dataset must be 'shapes', 'stick_figures', 'coco', 'voc' or 'yolo', got {dataset!r}")
        if invalid_images not in ("error", "skip"):
            raise ValueError(f"invalid_images must be 'error' or 'skip', got {invalid_images!r}")
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
        self.invalid_images = invalid_images
        self.allow_images_outside_folder = allow_images_outside_folder
        self.native_resolution = bool(native_resolution)
        # Native crops are planned and cut before the transform: it then only flips and jitters them.
        self.crops = (
            NativeCrops(image_size, scale_range, crop_object_bias, min_visibility) if native_resolution else None
        )
        # Build the transforms now: they validate image_size and the augmentation settings at construction.
        if augmentations is None:
            self.train_transform = build_train_transform(
                image_size, scale_range, hflip_prob, color_jitter, min_visibility, crop=not native_resolution
            )
        else:
            self.train_transform = build_transform_from_config(augmentations, image_size, min_visibility)
        self.eval_transform = build_eval_transform(image_size)
        if not 0 <= mosaic <= 1:
            raise ValueError(f"mosaic is a probability in [0, 1], got {mosaic}")
        # A native mosaic places four native crops of half the side on an image_size canvas (no shrinking).
        mosaic_side = image_size // 2 if native_resolution else image_size
        self.mosaic = Mosaic(mosaic_side, p=mosaic, min_visibility=min_visibility) if mosaic > 0 else None
        self.train_dataset: DetectionDataset | None = None
        self.val_dataset: DetectionDataset | None = None
        self.problems: dict[str, Problems] = {}
        self.yolo: YoloData | None = None
        self._start_epoch = 0

        joints = None
        if dataset == "shapes":
            names, ids = list(SHAPE_CLASSES), list(SHAPE_CATEGORY_IDS)
        elif dataset == "stick_figures":
            names, ids = ["person"], [1]
            joints = keypoint_info(STICK_JOINTS, STICK_SKELETON)
        elif dataset == "yolo":
            if yolo_data is None:
                raise ValueError("dataset='yolo' needs `yolo_data`: the dataset YAML with path, train, val and names")
            self.yolo = read_yolo_yaml(yolo_data)
            names, ids = self.yolo.class_names, self.yolo.category_ids
            joints = self.yolo.keypoints
        elif dataset == "voc":
            folders = [a for a in (train_annotations, val_annotations) if a is not None]
            if voc_classes is None and not folders:
                raise ValueError("dataset='voc' needs `train_annotations` or `val_annotations` (folders of XML files)")
            if voc_classes is not None and (not voc_classes or len(set(voc_classes)) != len(voc_classes)):
                raise ValueError(f"voc_classes must be a non-empty list of distinct names, got {voc_classes}")
            names = list(voc_classes) if voc_classes is not None else discover_voc_classes(folders)
            ids = list(range(1, len(names) + 1))
        else:
            source = train_annotations or val_annotations
            if source is None:
                raise ValueError(
                    "dataset='coco' needs `train_annotations` (or `val_annotations`): the categories are read from it"
                )
            names, ids = read_categories(source)
            joints = read_keypoint_info(source)
        self.class_names: list[str] = names
        self.category_ids: list[int] = ids
        self.num_classes: int = len(names)
        self.task_data: dict[str, Any] | None = joints
        if joints is not None and isinstance(self.train_transform, DetectionTransform):
            self.train_transform.flip_permutation = flip_permutation(joints)  # a mirror swaps left and right joints

    def prepare_data(self) -> None:
        """Generate the built-in dataset once (rank 0 only); nothing to do for files on disk."""
        if self.dataset in ("shapes", "stick_figures"):
            self._ensure_shapes()

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets the stage needs (``fit``: train and val; ``validate``: val)."""
        if self.dataset in ("shapes", "stick_figures"):
            self._ensure_shapes()  # reuses the cache written by prepare_data; sets the four paths
        if stage in (None, "fit") and self.train_dataset is None:
            self.train_dataset = self._dataset("train", self.train_transform, self.mosaic)
            if self.crops is not None:
                self.train_dataset.crops = self.crops
                crops = len(self.train_dataset)
                rank_zero_info(f"train: native resolution, {crops} crops of {self.image_size} px per epoch")
        if stage in (None, "fit", "validate") and self.val_dataset is None:
            # Native resolution: the images as they are, sliced by the validation step (see val_tile).
            self.val_dataset = self._dataset("val", None if self.native_resolution else self.eval_transform, None)

    @property
    def val_tile(self) -> int | None:
        """The tile side of sliced validation (``image_size`` with ``native_resolution``), else ``None``."""
        return self.image_size if self.native_resolution else None

    def read_split(self, split: str) -> tuple[DetectionSource, Problems]:
        """Read and validate one split (``"train"`` or ``"val"``) without raising on the problems found.

        Returns:
            ``(source, problems)``: the validated records and everything validation found (``problems.errors``
            non-empty means the split cannot be used).
        """
        if self.dataset in ("shapes", "stick_figures"):
            self._ensure_shapes()
        problems = Problems()
        if self.dataset == "yolo":
            source = parse_yolo(self.yolo, split, problems)
        elif self.dataset == "voc":
            images, annotations = self._require(split)
            source = parse_voc(images, annotations, self.class_names, problems, self.allow_images_outside_folder)
        else:
            images, annotations = self._require(split)
            source = parse_coco(images, annotations, problems, self.allow_images_outside_folder)
        self._check_label_map(source)
        return validate_source(source, self.invalid_images, problems)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (see :func:`collate_detections`); drops the last partial batch.

        The order and the augmentation of every sample are functions of the run's seed (``PL_GLOBAL_SEED``, set
        by ``seed_everything``), the epoch and the sample (see :class:`SeededEpochSampler`): the same with any
        number of workers, after a resume, and split without overlap between DDP ranks.
        """
        if self.train_dataset is None:
            raise RuntimeError("call setup('fit') before train_dataloader()")
        _single_opencv_thread_for_workers(self.num_workers)
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
        )

    def val_dataloader(self) -> DataLoader:
        """Validation batches in dataset order, letterboxed by the evaluation transform."""
        if self.val_dataset is None:
            raise RuntimeError("call setup('fit') or setup('validate') before val_dataloader()")
        _single_opencv_thread_for_workers(self.num_workers)
        return DataLoader(
            self.val_dataset,
            batch_size=1 if self.native_resolution else self.val_batch_size,  # native: images of their own sizes
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_detections,
            pin_memory=False,
            persistent_workers=self.num_workers > 0,
        )

    def state_dict(self) -> dict[str, int]:
        """Saved in checkpoints: the training epoch that a run resumed from this checkpoint starts in."""
        trainer = self.trainer
        epoch = trainer.fit_loop.epoch_progress.current.processed if trainer is not None else 0
        return {"epoch": int(epoch)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self._start_epoch = int(state_dict.get("epoch", 0))

    def _ensure_shapes(self) -> None:
        generate = ensure_stick_figures if self.dataset == "stick_figures" else ensure_shapes_dataset
        paths = generate(
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
                raise ValueError(f"dataset={self.dataset!r} needs `{name}` to build the {split} dataset")
        return images, annotations

    def _dataset(self, split: str, transform: DetectionTransform | None, mosaic: Mosaic | None) -> DetectionDataset:
        """Read and validate a split; raises one error listing every problem (each naming its file)."""
        if self.dataset in ("coco", "shapes", "stick_figures"):
            images, annotations = self._require(split)
            dataset = CocoDetection(
                images,
                annotations,
                transform=transform,
                invalid_images=self.invalid_images,
                allow_images_outside_folder=self.allow_images_outside_folder,
            )
            self._check_label_map(dataset.source)
            dataset.mosaic = mosaic
            problems = dataset.problems
        else:
            source, problems = self.read_split(split)
            problems.raise_if_errors(source.description)
            dataset = DetectionDataset(source, transform, mosaic)
        self.problems[split] = problems
        rank_zero_info(
            f"{split}: {len(dataset)} images, {dataset.source.num_boxes} boxes; {problems.clipped} boxes clipped, "
            f"{len(problems.dropped)} dropped, {len(problems.skipped)} images skipped"
        )
        return dataset

    def _check_label_map(self, source: DetectionSource) -> None:
        if (source.category_ids, source.class_names) != (self.category_ids, self.class_names):
            reference = self.train_annotations or self.val_annotations
            found = dict(zip(source.category_ids, source.class_names, strict=True))
            expected = dict(zip(self.category_ids, self.class_names, strict=True))
            raise ValueError(
                f"{source.description} has categories {found} but {reference} has {expected}; "
                "train and val must share them"
            )


def _single_opencv_thread_for_workers(num_workers: int) -> None:
    """With worker processes, give OpenCV one thread before they fork: each worker then decodes single-threaded.

    This must happen in the parent: calling ``cv2.setNumThreads`` inside a forked worker hangs the worker when
    the parent had already used OpenCV's thread pool (e.g. after loading samples in the main process).
    """
    if num_workers > 0:
        cv2.setNumThreads(1)
