"""YOLO format: ``images/`` + ``labels/`` folders and a dataset YAML (``path``, ``train``, ``val``, ``names``).

The dataset YAML, as Ultralytics writes it::

    path: datasets/my_data     # root; relative to the YAML's folder; default: the YAML's folder
    train: images/train        # a folder of images, a .txt file listing images, or a list of these
    val: images/val
    names: [cat, dog]          # or {0: cat, 1: dog}

Each image ``.../images/.../name.jpg`` has its labels in ``.../labels/.../name.txt`` (the last ``images``
folder of the path replaced by ``labels``); one object per line: ``class cx cy w h`` relative to the image, or a
polygon ``class x1 y1 x2 y2 ...`` (its bounding box is used). A missing label file is an image without objects.
A label file in a ``labels`` folder without its image is an error (its boxes would be lost).

Pose datasets (Ultralytics' pose format) add ``kpt_shape: [K, 2 or 3]`` to the YAML (and optionally ``flip_idx``,
the joint each joint becomes in a mirror image, and ``kpt_names``); every line is then ``class cx cy w h x1 y1
[v1] ... xK yK [vK]`` with the joints relative to the image. Without visibilities a joint at (0, 0) is not
labelled (Ultralytics' convention). 17 joints are COCO's (their names, skeleton and OKS sigmas), as Ultralytics
assumes; other joints are named ``joint_<i>`` unless ``kpt_names`` names them. A line with the wrong number of
values is an error naming the file, the line and the expected count.

The category ids are the YOLO class indices (the keys of ``names``); labels are their positions in sorted order.
An unknown class index, or a malformed line, is an error naming the file and the line. Label files and image lists
are read as UTF-8 (a byte-order mark is allowed); a file that is not UTF-8 text is an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from centernet.boxes import xyxy_to_cxcywh
from centernet.data.keypoints import COCO_JOINTS, COCO_SKELETON, keypoint_info
from centernet.data.records import DetectionSource, ImageRecord, Problems, read_annotation_text

__all__ = ["YoloData", "label_path", "parse_yolo", "read_yolo_yaml"]

_IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass(frozen=True)
class YoloData:
    """A parsed dataset YAML.

    Attributes:
        yaml_path: The YAML file.
        root: The dataset root (``path``).
        splits: Per split name (``train``, ``val``, ...), the list of folders / .txt files it names, resolved.
        class_names: Names in label order.
        category_ids: The YOLO class indices in label order.
        keypoints: The joints of a pose dataset (:func:`~centernet.data.keypoints.keypoint_info`), else ``None``.
        kpt_shape: ``(K, 2 or 3)`` of a pose dataset, else ``None``.
    """

    yaml_path: Path
    root: Path
    splits: dict[str, list[Path]]
    class_names: list[str]
    category_ids: list[int]
    keypoints: dict | None = None
    kpt_shape: tuple[int, int] | None = None


def read_yolo_yaml(path: str | Path) -> YoloData:
    """Read and check a YOLO dataset YAML; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"YOLO dataset YAML not found: {path}")
    try:
        data = yaml.safe_load(read_annotation_text(path))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping with 'path', 'train', 'val' and 'names'")
    names = data.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise ValueError(f"{path}: 'names' must be a non-empty list or a mapping of class index -> name")
    for key, name in names.items():
        if isinstance(key, bool) or not isinstance(key, int) or key < 0 or not isinstance(name, (str, int)):
            raise ValueError(f"{path}: names entry {key!r}: {name!r} must map a class index >= 0 to a name")
    root = Path(data.get("path") or ".")
    root = root if root.is_absolute() else path.parent / root
    splits: dict[str, list[Path]] = {}
    for split in ("train", "val", "test"):
        value = data.get(split)
        if value is None:
            continue
        entries = value if isinstance(value, list) else [value]
        if not all(isinstance(entry, str) for entry in entries):
            raise ValueError(f"{path}: {split!r} must be a folder, a .txt file or a list of them, got {value!r}")
        splits[split] = [Path(e) if Path(e).is_absolute() else root / e for e in entries]
    ids = sorted(names)
    kpt_shape, joints = _read_kpt_shape(data, path)
    return YoloData(path, root, splits, [str(names[i]) for i in ids], ids, joints, kpt_shape)


def _read_kpt_shape(data: dict, path: Path) -> tuple[tuple[int, int] | None, dict | None]:
    """``kpt_shape`` (and ``flip_idx``, ``kpt_names``) of a pose dataset YAML; ``(None, None)`` without."""
    shape = data.get("kpt_shape")
    if shape is None:
        return None, None
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
        or shape[0] < 1
        or shape[1] not in (2, 3)
    ):
        raise ValueError(f"{path}: kpt_shape must be [number of joints, 2 or 3], got {shape!r}")
    count = shape[0]
    names = data.get("kpt_names")
    if isinstance(names, dict):  # Ultralytics: {class index: [names]}; the joints are shared, take the first
        names = next(iter(names.values()), None)
    if names is not None and (not isinstance(names, list) or len(names) != count):
        raise ValueError(f"{path}: kpt_names must list the {count} joint names, got {names!r}")
    if names is None:
        names = list(COCO_JOINTS) if count == len(COCO_JOINTS) else [f"joint_{i}" for i in range(count)]
    edges = COCO_SKELETON if list(names) == list(COCO_JOINTS) else ()
    flip = data.get("flip_idx")
    pairs = None
    if flip is not None:
        if (
            not isinstance(flip, list)
            or sorted(flip) != list(range(count))
            or any(flip[flip[i]] != i for i in range(count))
        ):
            raise ValueError(
                f"{path}: flip_idx must list, for each of the {count} joints, the joint it becomes in a mirror image "
                f"(a permutation that is its own inverse), got {flip!r}"
            )
        pairs = [[i, j] for i, j in enumerate(flip) if i < j]
    return (count, shape[1]), keypoint_info(names, edges, pairs)


def label_path(image_path: Path) -> Path:
    """``.../images/.../a.jpg`` -> ``.../labels/.../a.txt`` (the last ``images`` folder of the path)."""
    parts = list(image_path.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def parse_yolo(data: YoloData, split: str, problems: Problems) -> DetectionSource:
    """Read the images and label files of one split into records (boxes stay normalized until validation).

    Args:
        data: The dataset YAML (:func:`read_yolo_yaml`).
        split: ``"train"``, ``"val"`` or ``"test"``.
        problems: Collects the errors, each naming the label file and line.

    Returns:
        Records in sorted image order; ``image_id`` is the 1-based position; sizes are unknown (``None``).
    """
    if split not in data.splits:
        raise ValueError(f"{data.yaml_path}: no {split!r} split")
    images = _list_images(data, split, problems)
    label_of = {cid: label for label, cid in enumerate(data.category_ids)}
    records = []
    for image_path in images:
        labels_file = label_path(image_path)
        boxes, labels, refs, joints = _read_labels(labels_file, label_of, data, problems)
        records.append(
            ImageRecord(
                path=image_path,
                image_id=len(records) + 1,
                width=None,
                height=None,
                boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                labels=np.asarray(labels, dtype=np.int64),
                iscrowd=np.zeros(len(labels), dtype=np.int64),
                area=np.full(len(labels), np.nan, dtype=np.float32),
                refs=refs,
                source=labels_file,
                normalized=True,
                keypoints=None if data.kpt_shape is None else np.asarray(joints).reshape(-1, data.kpt_shape[0], 3),
            )
        )
    description = f"YOLO {split} split of {data.yaml_path}"
    return DetectionSource(records, data.class_names, data.category_ids, description, data.keypoints)


def _list_images(data: YoloData, split: str, problems: Problems) -> list[Path]:
    images: list[Path] = []
    for entry in data.splits[split]:
        if entry.is_dir():
            found = sorted(p for p in entry.rglob("*") if p.suffix.lower() in _IMAGE_EXTENSIONS)
            images += found
            _check_orphan_labels(entry, set(found), problems)
        elif entry.is_file() and entry.suffix == ".txt":
            for line in read_annotation_text(entry).splitlines():
                line = line.strip()
                if line:
                    image = Path(line)
                    images.append(image if image.is_absolute() else entry.parent / image)
        else:
            raise FileNotFoundError(f"{data.yaml_path}: {split} entry {entry} is neither a folder nor a .txt file")
    return images


def _check_orphan_labels(image_dir: Path, images: set[Path], problems: Problems) -> None:
    labels_dir = label_path(image_dir / "x").parent
    if labels_dir == image_dir or not labels_dir.is_dir():
        return
    expected = {label_path(image) for image in images}
    for labels_file in sorted(labels_dir.rglob("*.txt")):
        if labels_file not in expected:
            problems.error(f"{labels_file}: label file without an image in {image_dir} (its boxes would be lost)")


def _read_labels(
    path: Path, label_of: dict[int, int], data: YoloData, problems: Problems
) -> tuple[list[list[float]], list[int], list[str], list[np.ndarray]]:
    """Parse one label file: (boxes as relative cx, cy, w, h; labels; refs ``"line N"``; joints (K, 3) relative
    x, y and visibility per box of a pose dataset)."""
    boxes, labels, refs, joints = [], [], [], []
    if not path.is_file():
        return boxes, labels, refs, joints  # no label file: an image without objects
    try:
        text = read_annotation_text(path)
    except ValueError as err:
        problems.error(str(err))
        return boxes, labels, refs, joints
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{number}"
        try:
            values = [float(v) for v in fields]
        except ValueError:
            problems.error(f"{where}: expected numbers 'class cx cy w h', got {line.strip()!r}")
            continue
        if data.kpt_shape is not None:
            count, dims = data.kpt_shape
            if len(values) != 5 + count * dims:
                problems.error(
                    f"{where}: expected 'class cx cy w h' and {count} joints of {dims} values (kpt_shape [{count}, "
                    f"{dims}] in {data.yaml_path}) = {5 + count * dims} values, got {len(values)}"
                )
                continue
            points = np.asarray(values[5:], dtype=np.float64).reshape(count, dims)
            if dims == 2:  # no visibilities: (0, 0) is a missing joint
                points = np.concatenate([points, np.where((points == 0).all(1, keepdims=True), 0.0, 2.0)], 1)
            if not np.isin(points[:, 2], (0, 1, 2)).all():
                problems.error(f"{where}: joint visibilities must be 0, 1 or 2, got {points[:, 2].tolist()}")
                continue
            joints.append(points)
        elif len(values) != 5 and (len(values) < 7 or len(values) % 2 == 0):
            problems.error(f"{where}: expected 'class cx cy w h' or a polygon 'class x1 y1 x2 y2 ...', got {line!r}")
            continue
        class_index = values[0]
        if not class_index.is_integer() or int(class_index) not in label_of:
            problems.error(f"{where}: class {fields[0]} is not in the names of {data.yaml_path} ({sorted(label_of)})")
            continue
        if len(values) == 5 or data.kpt_shape is not None:
            box = values[1:5]
        else:
            points = np.asarray(values[1:]).reshape(-1, 2)  # (k, 2) relative x, y
            box = xyxy_to_cxcywh(np.concatenate([points.min(axis=0), points.max(axis=0)]))  # its bounding box
        boxes.append([float(v) for v in box])
        labels.append(label_of[int(class_index)])
        refs.append(f"line {number}")
    return boxes, labels, refs, joints
