"""COCO-format detection data: images + one COCO json -> records (:func:`parse_coco`) and samples.

Labels are contiguous ``0..C-1`` in the order of the sorted category ids of the json; ``category_ids[label]``
maps back to the dataset's own id (needed to write COCO results) and ``class_names[label]`` names it.
``iscrowd=1`` annotations are not targets (COCO evaluation ignores detections matched to them). Boxes follow
the validation policy of :mod:`centernet.data.validation`; an image without boxes is a valid sample.

Person keypoints (COCO's keypoints json): a category with a ``keypoints`` list of joint names (and optionally a
``skeleton`` of 1-based joint pairs) makes the dataset a keypoint dataset; each annotation of such a category has
``keypoints`` ``[x1, y1, v1, ..., xK, yK, vK]`` in pixels (v 0: not labelled, 1: occluded, 2: visible). Every
category with keypoints must name the same joints; annotations of categories without them get unlabelled joints.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from centernet.boxes import xywh_to_xyxy
from centernet.data.dataset import DetectionDataset
from centernet.data.keypoints import keypoint_info
from centernet.data.records import DetectionSource, ImageRecord, Problems, leaves_folder
from centernet.data.validation import InvalidImagePolicy, validate_source

__all__ = ["CocoDetection", "parse_coco", "read_categories", "read_keypoint_info"]

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
    return _parse_categories(_read_category_list(path), path)


def read_keypoint_info(annotation_file: str | Path) -> dict[str, Any] | None:
    """The joints of a COCO keypoints json (:func:`~centernet.data.keypoints.keypoint_info`), read as cheaply as
    :func:`read_categories`; ``None`` when no category has ``keypoints``."""
    path = Path(annotation_file)
    return _parse_keypoint_categories(_read_category_list(path), path)


def _read_category_list(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path}")
    categories = _scan_categories(path) if path.stat().st_size > _SCAN_THRESHOLD_BYTES else None
    if categories is None:
        categories = _load_json(path).get("categories")
    return categories


def parse_coco(
    image_dir: str | Path,
    annotation_file: str | Path,
    problems: Problems,
    allow_images_outside_folder: bool = False,
) -> DetectionSource:
    """Read a COCO json into records (no image is opened).

    Every field read is type-checked; a malformed entry is an error naming the file and ``images[i]`` (with its id)
    or the annotation id (``annotations[j]`` when it has none), and the entry is left out.

    Args:
        image_dir: Folder that holds the images (``file_name`` in the json is relative to it).
        annotation_file: COCO json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in pixels) and
            ``categories``.
        problems: Collects the errors: malformed entries, unknown category ids, annotations of unknown images, two
            image entries with the same file (each copy would train the other's objects as background), and image
            paths outside ``image_dir``.
        allow_images_outside_folder: Accept a ``file_name`` that leaves ``image_dir`` (``../x.jpg``, an absolute
            path), for datasets laid out that way.

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
    joints = _parse_keypoint_categories(dataset["categories"], annotation_file)
    num_joints = len(joints["joint_names"]) if joints else 0
    label_of = {cid: label for label, cid in enumerate(category_ids)}
    images, broken = _read_images(dataset["images"], image_dir, annotation_file, problems, allow_images_outside_folder)
    per_image: dict[int, list[_Annotation]] = {image_id: [] for image_id in images}
    for j, entry in enumerate(dataset["annotations"]):
        annotation = _read_annotation(j, entry, annotation_file, label_of, problems, num_joints)
        if annotation is None or annotation.image_id in broken:
            continue  # malformed (reported), or of an image entry already reported
        if annotation.image_id not in per_image:
            problems.error(
                f"{annotation_file}: {annotation.ref} refers to image_id={annotation.image_id}, which is not in "
                "'images'"
            )
            continue
        per_image[annotation.image_id].append(annotation)
    records = []
    for image_id in sorted(images):
        image, anns = images[image_id], per_image[image_id]
        xywh = np.array([ann.bbox for ann in anns], dtype=np.float64).reshape(-1, 4)
        with np.errstate(invalid="ignore"):  # inf + -inf: NaN, dropped by the box policy
            xyxy = xywh_to_xyxy(xywh)
        records.append(
            ImageRecord(
                path=image.path,
                image_id=image_id,
                width=image.width,
                height=image.height,
                boxes=xyxy,
                labels=np.array([label_of[ann.category_id] for ann in anns], dtype=np.int64),
                iscrowd=np.array([ann.iscrowd for ann in anns], dtype=np.int64),
                area=np.array([ann.area for ann in anns], dtype=np.float32),
                refs=[ann.ref for ann in anns],
                source=annotation_file,
                keypoints=_keypoint_array(anns, num_joints) if joints else None,
            )
        )
    return DetectionSource(records, class_names, category_ids, f"COCO json {annotation_file}", joints)


def _keypoint_array(annotations: list[_Annotation], num_joints: int) -> np.ndarray:
    """(n, K, 3) joints of the annotations; all unlabelled for an annotation without keypoints."""
    keypoints = np.zeros((len(annotations), num_joints, 3), dtype=np.float64)
    for i, annotation in enumerate(annotations):
        if annotation.keypoints is not None:
            keypoints[i] = np.asarray(annotation.keypoints, dtype=np.float64).reshape(num_joints, 3)
    return keypoints


class CocoDetection(DetectionDataset):
    """Detection samples from a folder of images and a COCO json, validated on construction.

    Args:
        image_dir: Folder that holds the images (``file_name`` in the json is relative to it).
        annotation_file: COCO json with ``images``, ``annotations`` (``bbox`` = ``[x, y, w, h]`` in pixels) and
            ``categories``.
        transform: See :class:`centernet.data.dataset.DetectionDataset`.
        invalid_images: ``"error"`` or ``"skip"`` unusable image files (see :mod:`centernet.data.validation`).
        allow_images_outside_folder: Accept a ``file_name`` that leaves ``image_dir`` (see :func:`parse_coco`).

    Attributes:
        problems: What validation found (clipped and dropped boxes, skipped images).
    """

    def __init__(
        self,
        image_dir: str | Path,
        annotation_file: str | Path,
        transform: Callable[..., dict[str, Any]] | None = None,
        invalid_images: InvalidImagePolicy = "error",
        allow_images_outside_folder: bool = False,
    ) -> None:
        self.image_dir = Path(image_dir)
        self.annotation_file = Path(annotation_file)
        problems = Problems()
        source = parse_coco(self.image_dir, self.annotation_file, problems, allow_images_outside_folder)
        problems.raise_if_errors(source.description)
        source, problems = validate_source(source, invalid_images, problems)
        problems.raise_if_errors(source.description)
        self.problems = problems
        super().__init__(source, transform)


@dataclass(frozen=True)
class _Image:
    path: Path
    width: int | None
    height: int | None


@dataclass(frozen=True)
class _Annotation:
    ref: str  # "annotation id=7", or "annotations[3]" without an id
    image_id: int
    category_id: int
    bbox: list[float]  # x, y, w, h pixels
    iscrowd: int
    area: float  # NaN if the json gives none: w * h of the validated box is used
    keypoints: list[float] | None = None  # x, y, v * K of a keypoint dataset; None: all unlabelled


def _read_images(
    entries: list[Any], image_dir: Path, path: Path, problems: Problems, allow_outside: bool
) -> tuple[dict[int, _Image], set[int]]:
    """The ``images`` list -> ``({id: image}, ids of entries with errors)``; errors name ``images[i]`` and the id."""
    images: dict[int, _Image] = {}
    broken: set[int] = set()
    index_of: dict[int, int] = {}
    owner: dict[str, int] = {}  # normalised image path -> id of the first entry with it
    for i, info in enumerate(entries):
        image_id = info.get("id") if isinstance(info, dict) else None
        if not isinstance(info, dict) or not _is_integer(image_id):
            problems.error(f"{path}: images[{i}]={_short(info)} needs an integer 'id' and a 'file_name'")
            continue
        if image_id in index_of:
            problems.error(
                f"{path}: images[{i}]: image id {image_id} appears twice (also in images[{index_of[image_id]}])"
            )
            images.pop(image_id, None)
            broken.add(image_id)
            continue
        index_of[image_id] = i
        file_name, size, errors = info.get("file_name"), {}, []
        for key in ("width", "height"):
            value = info.get(key)
            size[key] = _pixels(value)
            if value is not None and size[key] is None:
                errors.append(f"has {key}={_short(value)}; expected a positive whole number of pixels (or no {key})")
        if not isinstance(file_name, str) or not file_name.strip():
            errors.append(f"has file_name={_short(file_name)}; expected the image's path in the image folder")
        elif not allow_outside and leaves_folder(image_dir, file_name):
            errors.append(
                f"has file_name={file_name!r}, which is outside the image folder {image_dir} (set "
                "allow_images_outside_folder to accept it)"
            )
        elif (first := owner.get(os.path.normpath(image_dir / file_name))) is not None:
            errors.append(
                f"has the same file_name {file_name!r} as image id {first}: each copy would train the other's "
                "objects as background (merge the two entries into one)"
            )
        if errors:
            problems.errors.extend(f"{path}: images[{i}] (id {image_id}) {error}" for error in errors)
            broken.add(image_id)
            continue
        owner[os.path.normpath(image_dir / file_name)] = image_id
        images[image_id] = _Image(image_dir / file_name, size["width"], size["height"])
    return images, broken


def _read_annotation(
    j: int, entry: Any, path: Path, label_of: dict[int, int], problems: Problems, num_joints: int = 0
) -> _Annotation | None:
    """One entry of ``annotations``, type-checked; ``None`` (and an error naming the annotation) if malformed."""
    if not isinstance(entry, dict):
        problems.error(f"{path}: annotations[{j}]={_short(entry)} is not an object")
        return None
    ann_id = entry.get("id")
    if ann_id is not None and not _is_integer(ann_id):
        problems.error(f"{path}: annotations[{j}] has id={_short(ann_id)}; expected an integer")
        return None
    ref = f"annotation id={ann_id}" if ann_id is not None else f"annotations[{j}]"
    image_id, category_id, bbox = entry.get("image_id"), entry.get("category_id"), entry.get("bbox")
    area, iscrowd = entry.get("area", math.nan), entry.get("iscrowd", 0)
    if not _is_integer(image_id):
        message = f"has image_id={_short(image_id)}; expected the integer id of an image"
    elif not _is_integer(category_id) or category_id not in label_of:
        message = f"has category_id={_short(category_id)}, not one of the categories {list(label_of)}"
    elif not _is_box(bbox):
        message = f"has bbox={_short(bbox)}; expected [x, y, w, h] numbers"
    elif not (_is_number(area) and (math.isnan(area) or 0 <= area < math.inf)):
        message = f"has area={_short(area)}; expected a number of pixels >= 0 (or no area)"
    elif not (isinstance(iscrowd, (int, float)) and iscrowd in (0, 1)):  # 0 / 1 / false / true
        message = f"has iscrowd={_short(iscrowd)}; expected 0 or 1"
    elif num_joints and (message := _keypoints_problem(entry.get("keypoints"), num_joints)):
        pass
    else:
        keypoints = entry.get("keypoints") if num_joints else None
        keypoints = [float(v) for v in keypoints] if keypoints else None
        return _Annotation(ref, image_id, category_id, [float(v) for v in bbox], int(iscrowd), float(area), keypoints)
    problems.error(f"{path}: {ref} {message}")
    return None


def _keypoints_problem(keypoints: Any, num_joints: int) -> str | None:
    """What is wrong with an annotation's ``keypoints`` (``None`` if nothing; absent or empty: unlabelled joints)."""
    if keypoints is None or keypoints == []:
        return None
    if not isinstance(keypoints, list) or not all(_is_number(v) for v in keypoints):
        return f"has keypoints={_short(keypoints)}; expected a list of numbers [x1, y1, v1, ...]"
    if len(keypoints) != 3 * num_joints:
        return f"has {len(keypoints)} keypoint values; expected 3 x {num_joints} joints = {3 * num_joints}"
    visibility = keypoints[2::3]
    if any(v not in (0, 1, 2) for v in visibility):
        return f"has keypoint visibilities {visibility}; each must be 0, 1 or 2"
    return None


def _parse_keypoint_categories(categories: Any, path: Path) -> dict[str, Any] | None:
    """The joints named by the categories' ``keypoints`` (and their 1-based ``skeleton``), or ``None``."""
    found: list[tuple[int, list[str], list[list[int]]]] = []
    for i, category in enumerate(categories if isinstance(categories, list) else []):
        names = category.get("keypoints") if isinstance(category, dict) else None
        if not names:
            continue
        skeleton = category.get("skeleton") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: categories[{i}] has keypoints={_short(names)}; expected a list of joint names")
        valid_edge = lambda e: isinstance(e, list) and len(e) == 2 and all(_is_integer(v) for v in e)  # noqa: E731
        if not isinstance(skeleton, list) or not all(
            valid_edge(e) and 1 <= min(e) <= max(e) <= len(names) for e in skeleton
        ):
            raise ValueError(
                f"{path}: categories[{i}] has skeleton={_short(skeleton)}; expected pairs of 1-based joint numbers "
                f"in 1..{len(names)}"
            )
        found.append((i, names, [[a - 1, b - 1] for a, b in skeleton]))
    if not found:
        return None
    first, names, edges = found[0]
    for i, other, _ in found[1:]:
        if other != names:
            raise ValueError(
                f"{path}: categories[{i}] names the joints {other}, but categories[{first}] names {names}; every "
                "category with keypoints must have the same joints"
            )
    return keypoint_info(names, edges)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _pixels(value: Any) -> int | None:
    """A positive whole number of pixels (``640`` or ``640.0``) as an int; ``None`` for anything else."""
    if _is_number(value) and math.isfinite(value) and value >= 1 and value == int(value):
        return int(value)
    return None


def _short(value: Any) -> str:
    """``repr`` for messages, shortened: a malformed entry may hold a whole list."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


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
