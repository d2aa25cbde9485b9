"""The one internal representation of a detection dataset, whatever its file format.

Every parser (COCO json, Pascal VOC XML, YOLO txt) produces a :class:`DetectionSource`: per-image
:class:`ImageRecord` s plus the class names and the dataset's own category ids. Labels are contiguous
``0..C-1`` (index into ``class_names`` / ``category_ids``). Parsers only read annotation files; checking the
image files and applying the box policy is :func:`centernet.data.validation.validate_source`'s job.

Coordinates: ``boxes`` are ``x1, y1, x2, y2`` in pixels of the stored image (EXIF orientation ignored), or,
while ``normalized`` is True (YOLO before its images are measured), ``cx, cy, w, h`` relative to the image.

Two helpers shared by the parsers: :func:`read_annotation_text` (a text file whose decoding errors name it) and
:func:`leaves_folder` (an image path from an annotation that points outside the image folder).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centernet.errors import InputError

__all__ = ["DatasetError", "DetectionSource", "ImageRecord", "Problems", "leaves_folder", "read_annotation_text"]


@dataclass
class ImageRecord:
    """One image and its annotations, as read from the annotation files.

    Attributes:
        path: The image file.
        image_id: Integer id of the image (COCO: the json's id; VOC and YOLO: 1-based position in the sorted list).
        width: Width recorded by the annotation, in pixels; ``None`` if the format records none (YOLO). After
            validation: the decoded width.
        height: Height recorded by the annotation (or decoded, after validation), in pixels.
        boxes: (n, 4) float64, ``x1, y1, x2, y2`` pixels (``cx, cy, w, h`` relative while ``normalized``).
        labels: (n,) int64 contiguous labels.
        iscrowd: (n,) int64, 1 for COCO crowd regions (not training targets, ignored by evaluation).
        area: (n,) float32 object areas in pixels (COCO's ``area``; ``w * h`` for the other formats).
        refs: Per box, where it was read from, for messages (``"annotation id=7"``, ``"line 3"``, ``"object 2"``).
        source: The annotation file this record came from, for messages.
        normalized: True while ``boxes`` are relative ``cx, cy, w, h`` (YOLO until the image size is known).
        keypoints: (n, K, 3) float64 joints of a keypoint dataset (x, y as the boxes: pixels, or relative while
            ``normalized``; visibility 0 = not labelled), see :mod:`centernet.data.keypoints`; ``None`` without.
    """

    path: Path
    image_id: int
    width: int | None
    height: int | None
    boxes: np.ndarray
    labels: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray
    refs: list[str]
    source: Path
    normalized: bool = False
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class DetectionSource:
    """A parsed dataset: image records plus the label map.

    Attributes:
        records: One per image, in dataset order.
        class_names: Category names, index = contiguous label.
        category_ids: The dataset's category ids, index = contiguous label (COCO: the json's ids; VOC: 1..C in
            the order of ``class_names``; YOLO: the YOLO class indices).
        description: What was read, for messages (e.g. ``"COCO json data/train.json"``).
        keypoints: The joints of a keypoint dataset (:func:`centernet.data.keypoints.keypoint_info`: joint names,
            skeleton edges, left/right pairs); ``None`` for boxes only.
    """

    records: list[ImageRecord]
    class_names: list[str]
    category_ids: list[int]
    description: str
    keypoints: dict | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_boxes(self) -> int:
        return sum(len(r) for r in self.records)


class DatasetError(InputError, ValueError):
    """Errors found in a dataset; the message lists them (each names its file), ``errors`` holds all of them."""

    def __init__(self, description: str, errors: list[str]) -> None:
        self.description = description
        self.errors = list(errors)
        shown = "\n  ".join(self.errors[:_SHOWN])
        more = f"\n  ... and {len(self.errors) - _SHOWN} more" if len(self.errors) > _SHOWN else ""
        super().__init__(f"{len(self.errors)} error(s) in {description}:\n  {shown}{more}")


_SHOWN = 20


@dataclass
class Problems:
    """Collects what is wrong with a dataset while it is read, so that one pass reports everything.

    Attributes:
        errors: Fatal problems (unknown class, malformed annotation, unreadable image when not skipping).
        dropped: Boxes dropped by the box policy (non-finite, or no area after clipping), one message each.
        skipped: Images skipped because the file is unusable (only with ``invalid_images="skip"``).
        clipped: Number of boxes clipped to their image.
        exif_rotated: Images whose EXIF orientation tag asks for a rotation or flip (ignored by policy).
    """

    errors: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    clipped: int = 0
    exif_rotated: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors.append(message)

    def raise_if_errors(self, description: str) -> None:
        if self.errors:
            raise DatasetError(description, self.errors)


def read_annotation_text(path: Path) -> str:
    """The text of an annotation file (label file, image list) in UTF-8, with or without a byte-order mark.

    Raises:
        ValueError: The file is not UTF-8 text (e.g. a binary file saved under a ``.txt`` name); the message names
            it and the offending byte.
    """
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text file ({err.reason} at byte {err.start})") from err


def leaves_folder(image_dir: Path, file_name: str) -> bool:
    """True if ``image_dir / file_name`` lies outside ``image_dir``: an absolute path, or ``..`` leading out.

    Judged on the names alone (``os.path.normpath``), so that a symbolic link inside the folder may point anywhere.
    """
    folder = Path(os.path.normpath(image_dir))
    joined = Path(os.path.normpath(image_dir / file_name))
    return joined == folder or not joined.is_relative_to(folder)
