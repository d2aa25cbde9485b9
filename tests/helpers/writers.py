"""Write the same small detection dataset as COCO json, Pascal VOC XML or YOLO txt, and cut image files (test
helpers)."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml


@dataclass
class Item:
    """One image: ``boxes`` are ``x1, y1, x2, y2`` pixels as written to the files (may be invalid on purpose)."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def noise_item(name: str, height: int, width: int, boxes=(), labels=(), seed: int = 0) -> Item:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Item(name, image, list(boxes), list(labels))


def _write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def write_coco(root: Path, items: list[Item], class_names: list[str]) -> tuple[Path, Path]:
    """Images in ``root/images``; category ids 1..C; returns (image_dir, json_path)."""
    images, annotations = [], []
    for image_id, item in enumerate(items, start=1):
        _write_image(root / "images" / f"{item.name}.png", item.image)
        height, width = item.image.shape[:2]
        images.append({"id": image_id, "file_name": f"{item.name}.png", "height": height, "width": width})
        for (x1, y1, x2, y2), label in zip(item.boxes, item.labels, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(class_names)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root / "images", path


def write_voc(root: Path, items: list[Item], class_names: list[str]) -> tuple[Path, Path]:
    """Images in ``root/JPEGImages`` (PNG files), XML in ``root/Annotations``; returns both folders."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    for item in items:
        _write_image(root / "JPEGImages" / f"{item.name}.png", item.image)
        height, width = item.image.shape[:2]
        objects = "".join(
            f"<object><name>{class_names[label]}</name><difficult>0</difficult><bndbox><xmin>{x1!r}</xmin>"
            f"<ymin>{y1!r}</ymin><xmax>{x2!r}</xmax><ymax>{y2!r}</ymax></bndbox></object>"
            for (x1, y1, x2, y2), label in zip(item.boxes, item.labels, strict=True)
        )
        xml = (
            f"<annotation><folder>JPEGImages</folder><filename>{item.name}.png</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>"
        )
        (root / "Annotations" / f"{item.name}.xml").write_text(xml)
    return root / "JPEGImages", root / "Annotations"


def write_yolo(root: Path, splits: dict[str, list[Item]], class_names: list[str]) -> Path:
    """``root/images/<split>`` + ``root/labels/<split>`` and ``root/data.yaml``; returns the YAML path."""
    for split, items in splits.items():
        for item in items:
            _write_image(root / "images" / split / f"{item.name}.png", item.image)
            height, width = item.image.shape[:2]
            lines = []
            for (x1, y1, x2, y2), label in zip(item.boxes, item.labels, strict=True):
                cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
                lines.append(f"{label} {cx!r} {cy!r} {w!r} {h!r}")
            labels = root / "labels" / split / f"{item.name}.txt"
            labels.parent.mkdir(parents=True, exist_ok=True)
            labels.write_text("\n".join(lines) + "\n")
    data = {"path": ".", **{split: f"images/{split}" for split in splits}, "names": dict(enumerate(class_names))}
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cut_png_image_data(path: Path) -> None:
    """Keep the first half of a PNG's image data (IDAT) in well-formed chunks with valid CRCs, and its IEND chunk.

    An end marker check passes such a file; decoding it fails ("not enough image data").
    """
    data = path.read_bytes()
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        chunks.append((data[position + 4 : position + 8], data[position : position + 12 + length]))
        position += 12 + length
    pixels = b"".join(chunk[8:-4] for kind, chunk in chunks if kind == b"IDAT")
    pixels = pixels[: len(pixels) // 2]
    idat = b"IDAT" + pixels
    cut = len(pixels).to_bytes(4, "big") + idat + zlib.crc32(idat).to_bytes(4, "big")
    before = b"".join(chunk for kind, chunk in chunks if kind not in (b"IDAT", b"IEND"))
    path.write_bytes(data[:8] + before + cut + chunks[-1][1])


def cut_jpeg_keeping_eoi(path: Path, keep: float = 0.5) -> None:
    """Keep the first ``keep`` of a JPEG file and re-append its end-of-image marker (``FF D9``), as repair tools do.

    libjpeg decodes such a file without an error, grey from the cut onwards.
    """
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] + b"\xff\xd9")
