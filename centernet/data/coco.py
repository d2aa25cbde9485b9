"""COCO-format detection dataset: images + one COCO json -> samples in the batch contract.

Labels are contiguous ``0..C-1`` in the order of the sorted category ids of the json; ``category_ids[label]``
maps back to the dataset's own id (needed to write COCO results) and ``class_names[label]`` names it.
``iscrowd=1`` annotations are not targets (COCO evaluation ignores detections matched to them). Boxes are
clipped to the image and boxes with no area left are dropped; an image without boxes is a valid sample.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import mmap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from torch.utils.data import Dataset

__all__ = ["CocoDetection", "read_categories"]

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


class CocoDetection(Dataset):
    """Detection samples from a folder of images and a COCO json.

    Args:
        image_dir: Folder that holds the images (``file_name`` in the json is relative to it).
        annotation_file: COCO json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in pixels) and
            ``categories``.
        transform: Called as ``transform(image=, bboxes=, labels=)`` with an (H, W, 3) uint8 RGB image, (n, 4)
            float32 ``x1, y1, x2, y2`` pixel boxes and (n,) int64 labels; returns a dict with the same keys and
            optionally ``scale`` (see :mod:`centernet.data.transforms`). ``None``: the image is used as is.

    Attributes:
        coco: The ``pycocotools.coco.COCO`` index of the json (for COCO evaluation).
        class_names: Category names, index = contiguous label.
        category_ids: The json's category ids, index = contiguous label.
        image_ids: The json's image ids, index = sample index.
    """

    def __init__(
        self,
        image_dir: str | Path,
        annotation_file: str | Path,
        transform: Callable[..., dict[str, Any]] | None = None,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.annotation_file = Path(annotation_file)
        self.transform = transform
        if not self.annotation_file.is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {self.annotation_file}")
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"image folder not found: {self.image_dir} (for {self.annotation_file})")
        dataset = _load_json(self.annotation_file)
        for key in ("images", "annotations", "categories"):
            if not isinstance(dataset.get(key), list):
                raise ValueError(f"{self.annotation_file}: not a COCO detection json, no {key!r} list")
        self.class_names, self.category_ids = _parse_categories(dataset["categories"], self.annotation_file)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco = COCO()
            self.coco.dataset = dataset
            self.coco.createIndex()
        self.image_ids: list[int] = sorted(self.coco.imgs)
        label_of = {cid: label for label, cid in enumerate(self.category_ids)}
        # Per image, every annotation (crowd included): xyxy pixels as in the json, labels, iscrowd, area.
        self._ground_truth: list[dict[str, np.ndarray]] = []
        for image_id in self.image_ids:
            boxes, labels, crowd, area = [], [], [], []
            for ann in self.coco.imgToAnns.get(image_id, []):
                boxes.append(self._check_box(ann))
                if ann.get("category_id") not in label_of:
                    raise ValueError(
                        f"{self.annotation_file}: annotation id={ann.get('id')} has category_id="
                        f"{ann.get('category_id')!r}, not one of the categories {self.category_ids}"
                    )
                labels.append(label_of[ann["category_id"]])
                crowd.append(int(bool(ann.get("iscrowd", 0))))
                area.append(float(ann.get("area", ann["bbox"][2] * ann["bbox"][3])))
            self._ground_truth.append(
                {
                    "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                    "labels": np.asarray(labels, dtype=np.int64),
                    "iscrowd": np.asarray(crowd, dtype=np.int64),
                    "area": np.asarray(area, dtype=np.float32),
                }
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample of the batch contract.

        Returns:
            dict with ``image`` (3, H, W) float32 RGB in [0, 1]; ``bboxes`` (n, 4) float32 ``cx, cy, w, h``
            relative to the transformed image; ``labels`` (n,) int64; ``image_id`` int (the json's id);
            ``orig_size`` (h, w) ints of the image file; ``scale`` (sx, sy) floats (transformed pixels per
            original pixel).
            For evaluation in original pixels, untouched by the transform, every annotation of the image (crowd
            included, not clipped, as COCO evaluation sees them): ``gt_boxes`` (m, 4) float32 ``x1, y1, x2, y2``
            pixels, ``gt_labels`` (m,) int64, ``gt_iscrowd`` (m,) int64 and ``gt_area`` (m,) float32 (the json's
            ``area``, else ``w * h``).
        """
        image_id = self.image_ids[index]
        info = self.coco.imgs[image_id]
        path = self.image_dir / info["file_name"]
        # Annotations refer to the stored pixels, as pycocotools and PIL read them: ignore EXIF rotation.
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if bgr is None:
            raise OSError(f"cannot read image {path} (image_id={image_id} in {self.annotation_file})")
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # (H, W, 3) uint8
        height, width = image.shape[:2]
        if (info.get("height", height), info.get("width", width)) != (height, width):
            raise ValueError(
                f"{path} is {width}x{height} pixels but {self.annotation_file} says "
                f"{info.get('width')}x{info.get('height')} for image_id={image_id}"
            )
        truth = self._ground_truth[index]
        boxes = truth["boxes"].copy()
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, height)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (truth["iscrowd"] == 0)
        boxes, labels = boxes[keep], truth["labels"][keep]
        scale = (1.0, 1.0)
        if self.transform is not None:
            out = self.transform(image=image, bboxes=boxes, labels=labels)
            image = out["image"]
            boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
            sx, sy = out.get("scale", (1.0, 1.0))
            scale = (float(sx), float(sy))
        out_h, out_w = image.shape[:2]
        size = np.array([out_w, out_h, out_w, out_h], dtype=np.float32)
        cxcywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1) / size
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "bboxes": torch.from_numpy(np.ascontiguousarray(cxcywh, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels)),
            "image_id": int(image_id),
            "orig_size": (height, width),
            "scale": scale,
            "gt_boxes": torch.from_numpy(truth["boxes"]),
            "gt_labels": torch.from_numpy(truth["labels"]),
            "gt_iscrowd": torch.from_numpy(truth["iscrowd"]),
            "gt_area": torch.from_numpy(truth["area"]),
        }

    def _check_box(self, ann: dict[str, Any]) -> list[float]:
        """COCO ``[x, y, w, h]`` -> ``[x1, y1, x2, y2]``; raises on a malformed box, naming file and annotation."""
        box = ann.get("bbox")
        valid = isinstance(box, (list, tuple)) and len(box) == 4
        valid = valid and all(isinstance(v, (int, float)) and math.isfinite(v) for v in box)
        if not valid or box[2] < 0 or box[3] < 0:
            raise ValueError(
                f"{self.annotation_file}: annotation id={ann.get('id')} (image_id={ann.get('image_id')}) has "
                f"bbox={box!r}; expected [x, y, w, h] with 4 finite numbers and w, h >= 0"
            )
        x, y, w, h = (float(v) for v in box)
        return [x, y, x + w, y + h]


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
