"""COCO-format detection data: images + one COCO json -> records (:func:`parse_coco`) and samples.

Labels are contiguous ``0..C-1`` in the order of the sorted category ids of the json; ``category_ids[label]``
maps back to the dataset's own id (needed to write COCO results) and ``class_names[label]`` names it.
``iscrowd=1`` annotations are not targets (COCO evaluation ignores detections matched to them). Boxes follow
the validation policy of :mod:`centernet.data.validation`; an image without boxes is a valid sample.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from centernet.boxes import xywh_to_xyxy
from centernet.data.dataset import DetectionDataset
from centernet.data.records import DetectionSource, ImageRecord, Problems
from centernet.data.validation import InvalidImagePolicy, validate_source

__all__ = ["CocoDetection", "parse_coco", "read_categories"]

# Above this size, read_categories scans the file for the "categories" key instead of parsing all of it
# (the key sits at the end of COCO's 450 MB instances_train2017.json).
_SCAN_THRESHOLD_BYTES = 16 * 1024 * 1024
_CATEGORIES_KEY = b'"categories"'


def read_categories(annotation_file: str | Path) -> tuple[list[str], list[int]]:
    """Read only the categories of a COCO json, cheaply.

    Args:
        annotation_file: Path of the COCO json.

    Returns:
        ``(names, ids)`` sorted by category id: ``ids[label]`` is the dataset's id of contiguous ``label``.
    """
    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    categories = _scan_categories(path) if path.stat().st_size > _SCAN_THRESHOLD_BYTES else None
    if categories is None:
        categories = _load_json(path).get("categories")
    return _parse_categories(categories, path)


def parse_coco(image_dir: str | Path, annotation_file: str | Path, problems: Problems) -> DetectionSource:
    """Read a COCO json into records (no image is opened).

    Args:
        image_dir: Folder that holds the images (``file_name`` in the json is relative to it).
        annotation_file: COCO json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in pixels) and
            ``categories``.
        problems: Collects the errors (malformed entries, unknown category ids, annotations of unknown images),
            each naming the file and the annotation id.

    Returns:
        Records in image-id order: ``x1, y1, x2, y2`` pixel boxes as in the json (not yet clipped), the json's
        ``width`` / ``height`` (checked against the decoded size later) and ``area``.
    """
    image_dir, annotation_file = Path(image_dir), Path(annotation_file)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {annotation_file}")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {image_dir} (for {annotation_file})")
    dataset = _load_json(annotation_file)
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise ValueError(f"{annotation_file}: not a COCO detection json, no {key!r} list")
    class_names, category_ids = _parse_categories(dataset["categories"], annotation_file)
    label_of = {cid: label for label, cid in enumerate(category_ids)}
    images: dict[int, dict[str, Any]] = {}
    for i, info in enumerate(dataset["images"]):
        image_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(image_id, int) or not isinstance(info.get("file_name"), str):
            problems.error(f"{annotation_file}: images[{i}]={info!r} needs an integer 'id' and a 'file_name'")
        elif image_id in images:
            problems.error(f"{annotation_file}: image id {image_id} appears twice")
        else:
            images[image_id] = info
    per_image: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in images}
    for ann in dataset["annotations"]:
        where = f"annotation id={ann.get('id')}" if isinstance(ann, dict) else f"annotation {ann!r}"
        if not isinstance(ann, dict) or ann.get("image_id") not in per_image:
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            problems.error(f"{annotation_file}: {where} refers to image_id={image_id!r}, which is not in 'images'")
        elif ann.get("category_id") not in label_of:
            problems.error(
                f"{annotation_file}: {where} has category_id={ann.get('category_id')!r}, not one of the "
                f"categories {category_ids}"
            )
        elif not _is_box(ann.get("bbox")):
            problems.error(f"{annotation_file}: {where} has bbox={ann.get('bbox')!r}; expected [x, y, w, h] numbers")
        else:
            per_image[ann["image_id"]].append(ann)
    records = []
    for image_id in sorted(images):
        info, anns = images[image_id], per_image[image_id]
        xywh = np.array([ann["bbox"] for ann in anns], dtype=np.float64).reshape(-1, 4)
        with np.errstate(invalid="ignore"):  # inf + -inf: NaN, dropped by the box policy
            xyxy = xywh_to_xyxy(xywh)
        width, height = info.get("width"), info.get("height")
        records.append(
            ImageRecord(
                path=image_dir / info["file_name"],
                image_id=image_id,
                width=int(width) if isinstance(width, int) else None,
                height=int(height) if isinstance(height, int) else None,
                boxes=xyxy,
                labels=np.array([label_of[ann["category_id"]] for ann in anns], dtype=np.int64),
                iscrowd=np.array([int(bool(ann.get("iscrowd", 0))) for ann in anns], dtype=np.int64),
                area=np.array([float(ann.get("area", "nan")) for ann in anns], dtype=np.float32),
                refs=[f"annotation id={ann.get('id')}" for ann in anns],
                source=annotation_file,
            )
        )
    return DetectionSource(records, class_names, category_ids, f"COCO json {annotation_file}")


class CocoDetection(DetectionDataset):
    """Detection samples from a folder of images and a COCO json, validated on construction.

    Args:
        image_dir: Folder that holds the images (``file_name`` in the json is relative to it).
        annotation_file: COCO json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in pixels) and
            ``categories``.
        transform: See :class:`centernet.data.dataset.DetectionDataset`.
        invalid_images: ``"error"`` or ``"skip"`` unusable image files (see :mod:`centernet.data.validation`).

    Attributes:
        problems: What validation found (clipped and dropped boxes, skipped images).
    """

    def __init__(
        self,
        image_dir: str | Path,
        annotation_file: str | Path,
        transform: Callable[..., dict[str, Any]] | None = None,
        invalid_images: InvalidImagePolicy = "error",
    ) -> None:
        self.image_dir = Path(image_dir)
        self.annotation_file = Path(annotation_file)
        problems = Problems()
        source = parse_coco(self.image_dir, self.annotation_file, problems)
        problems.raise_if_errors(source.description)
        source, problems = validate_source(source, invalid_images, problems)
        problems.raise_if_errors(source.description)
        self.problems = problems
        super().__init__(source, transform)


def _is_box(box: Any) -> bool:
    """A list of four numbers (non-finite values are allowed here: the box policy drops them with a warning)."""
    return isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a COCO json must hold an object at the top level, got {type(data).__name__}")
    return data


def _scan_categories(path: Path) -> list[Any] | None:
    """Find and decode the ``"categories": [...]`` list without parsing the rest; None if not found."""
    decoder = json.JSONDecoder()
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        position = data.find(_CATEGORIES_KEY)
        while position != -1:
            start = position + len(_CATEGORIES_KEY)
            window = 1 << 16
            while True:
                text = data[start : start + window].decode("utf-8", errors="ignore").lstrip()
                if not text.startswith(":"):
                    break  # the word was a value, not a key
                try:
                    value, _ = decoder.raw_decode(text[1:].lstrip())
                except json.JSONDecodeError:
                    if start + window >= len(data):
                        break
                    window *= 4  # the list is longer than the window: read more
                    continue
                if isinstance(value, list):
                    return value
                break
            position = data.find(_CATEGORIES_KEY, position + 1)
    return None


def _parse_categories(categories: Any, path: Path) -> tuple[list[str], list[int]]:
    """Validate a COCO ``categories`` list; returns ``(names, ids)`` sorted by id."""
    if not isinstance(categories, list) or not categories:
        raise ValueError(f"{path}: no categories (expected a non-empty 'categories' list)")
    by_id: dict[int, str] = {}
    for i, category in enumerate(categories):
        cid = category.get("id") if isinstance(category, dict) else None
        name = category.get("name") if isinstance(category, dict) else None
        if isinstance(cid, bool) or not isinstance(cid, int) or not isinstance(name, str):
            raise ValueError(f"{path}: categories[{i}]={category!r} needs an integer 'id' and a string 'name'")
        if cid in by_id:
            raise ValueError(f"{path}: category id {cid} appears twice ({by_id[cid]!r} and {name!r})")
        by_id[cid] = name
    ids = sorted(by_id)
    return [by_id[cid] for cid in ids], ids
