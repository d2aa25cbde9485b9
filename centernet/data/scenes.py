"""The built-in large-image dataset: "scenes" of a few thousand pixels with hundreds of small objects, as COCO files.

It stands in for aerial orthomosaics, slide scans and panoramas: the images are far larger than the network, the
objects are 10-36 px, and fitting an image to the network input would shrink them to a few pixels. It is what
``centernet demo --task tiles`` and ``benchmarks/large_images.py`` train and evaluate on.

Rules of the generator (deterministic from ``(seed, split, index)``):

- A smooth, low-contrast textured background (a colour field blurred at several scales plus pixel noise).
- Classes :data:`SCENE_CLASSES` (car, tree, house, boat): filled disc, square, triangle and cross of 10-36 px
  (log-uniform side), each of a colour at least 60 (of 441) away from the background under it.
- Dense and sparse regions: 70 % of the objects are drawn around a few cluster centres (a Gaussian of ~6 % of the
  side), the rest uniformly; no two objects' boxes touch (a new object that would is re-drawn, up to 20 times).
- Boxes are the tight boxes of the drawn pixels (COCO ``[x, y, w, h]``, continuous: pixel columns 10..19 are
  ``x = 10, w = 10``); ``area`` is the number of drawn pixels. Category ids start at 1.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from centernet.cache import build_once, default_cache_root
from centernet.data.synthetic import ShapesPaths

__all__ = ["SCENE_CATEGORY_IDS", "SCENE_CLASSES", "Scene", "ensure_scenes_dataset", "generate_scene"]

SCENE_CLASSES: tuple[str, ...] = ("car", "tree", "house", "boat")
SCENE_CATEGORY_IDS: tuple[int, ...] = (1, 2, 3, 4)

_GENERATOR_VERSION = 1
_SPLIT_IDS = {"train": 0, "val": 1}
_MIN_SIDE, _MAX_SIDE = 10, 36
_CLUSTERED = 0.7
_PLACEMENT_TRIES = 20
_MIN_COLOUR_DISTANCE = 60.0


@dataclass(frozen=True)
class Scene:
    """One generated scene: ``image`` (S, S, 3) uint8 RGB, ``boxes`` (n, 4) float32 COCO x, y, w, h, ``labels``
    (n,) int64 in ``0..3``, ``areas`` (n,) float32 drawn pixels."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    areas: np.ndarray


def generate_scene(side: int, seed: int, split: str, index: int, objects: int | None = None) -> Scene:
    """Render scene ``index`` of ``split`` (see the module docstring).

    Args:
        side: Side of the square scene in pixels (>= 256).
        seed: Base seed.
        split: ``"train"`` or ``"val"``.
        index: Which scene.
        objects: Objects asked for; ``None``: about one per 9,000 px^2 (466 in a 2,048 px scene). Fewer are drawn
            when places run out.
    """
    if side < 256:
        raise ValueError(f"scenes are at least 256 px, got {side}")
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index, _GENERATOR_VERSION])
    canvas = _background(rng, side)
    count = objects if objects is not None else round(side * side / 9000)
    clusters = rng.uniform(0.1 * side, 0.9 * side, size=(int(rng.integers(3, 7)), 2))
    occupied = np.zeros((side, side), dtype=bool)
    boxes, labels, areas = [], [], []
    for _ in range(count):
        for _ in range(_PLACEMENT_TRIES):
            size = math.exp(rng.uniform(math.log(_MIN_SIDE), math.log(_MAX_SIDE)))
            if rng.random() < _CLUSTERED:
                centre = clusters[rng.integers(len(clusters))] + rng.normal(0, 0.06 * side, size=2)
            else:
                centre = rng.uniform(0, side, size=2)
            label = int(rng.integers(len(SCENE_CLASSES)))
            mask, x0, y0 = _shape_mask(label, size, centre, rng)
            height, width = mask.shape
            if x0 < 1 or y0 < 1 or x0 + width > side - 1 or y0 + height > side - 1:
                continue
            if occupied[y0 - 1 : y0 + height + 1, x0 - 1 : x0 + width + 1].any():
                continue
            region = canvas[y0 : y0 + height, x0 : x0 + width]
            colour = _contrasting_colour(rng, region[mask])
            region[mask] = colour
            occupied[y0 : y0 + height, x0 : x0 + width] = True
            rows, cols = np.nonzero(mask)
            boxes.append([x0 + cols.min(), y0 + rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1])
            labels.append(label)
            areas.append(int(mask.sum()))
            break
    image = np.clip(canvas + rng.normal(0, 4, size=canvas.shape), 0, 255).astype(np.uint8)
    return Scene(
        image,
        np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        np.asarray(labels, dtype=np.int64),
        np.asarray(areas, dtype=np.float32),
    )


def ensure_scenes_dataset(
    root: str | Path | None = None, num_train: int = 4, num_val: int = 2, side: int = 2048, seed: int = 0
) -> ShapesPaths:
    """Generate the scenes dataset under ``root`` (default: the cache folder) unless it is already there.

    Returns:
        The paths of both splits: ``<cache>/<split>/images/*.png`` and ``<cache>/<split>/annotations.json``;
        written to a temporary folder and renamed into place, so an interrupted run leaves no partial cache.
    """
    parent = Path(root).expanduser() if root is not None else default_cache_root()
    key = f"scenes-v{_GENERATOR_VERSION}-seed{seed}-train{num_train}-val{num_val}-{side}px"
    final = parent / key
    paths = ShapesPaths(
        final, final / "train" / "images", final / "train" / "annotations.json", final / "val" / "images",
        final / "val" / "annotations.json",
    )  # fmt: skip
    if paths.train_annotations.is_file() and paths.val_annotations.is_file():
        return paths

    def build(tmp: Path) -> None:
        for split, count in (("train", num_train), ("val", num_val)):
            _write_split(tmp / split, split, count, side, seed)

    build_once(final, build)
    return paths


def _write_split(folder: Path, split: str, count: int, side: int, seed: int) -> None:
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        scene = generate_scene(side, seed, split, index)
        file_name = f"{index:04d}.png"
        if not cv2.imwrite(str(folder / "images" / file_name), cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {folder / 'images' / file_name}")
        images.append({"id": index + 1, "file_name": file_name, "width": side, "height": side})
        for box, label, area in zip(scene.boxes.tolist(), scene.labels.tolist(), scene.areas.tolist(), strict=True):
            category = SCENE_CATEGORY_IDS[label]
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": category,
                                "bbox": box, "area": area, "iscrowd": 0})  # fmt: skip
    categories = [{"id": i, "name": n} for i, n in zip(SCENE_CATEGORY_IDS, SCENE_CLASSES, strict=True)]
    coco = {"info": {"description": f"centernet large-image scenes, {split} split"}, "categories": categories,
            "images": images, "annotations": annotations}  # fmt: skip
    (folder / "annotations.json").write_text(json.dumps(coco))


def _background(rng: np.random.Generator, side: int) -> np.ndarray:
    """(S, S, 3) float32: a colour field smoothed at a coarse and a fine scale, around a random base colour."""
    base = rng.uniform(60, 190, size=3)
    coarse = cv2.resize(rng.normal(0, 25, size=(8, 8, 3)).astype(np.float32), (side, side), cv2.INTER_CUBIC)
    fine = cv2.resize(rng.normal(0, 12, size=(side // 32, side // 32, 3)).astype(np.float32), (side, side),
                      interpolation=cv2.INTER_LINEAR)  # fmt: skip
    return np.clip(base + coarse + fine, 0, 255).astype(np.float32)


def _shape_mask(label: int, size: float, centre: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """The drawn pixels of one object (a boolean patch) and its top-left pixel in the scene."""
    side = int(math.ceil(size)) + 2
    patch = np.zeros((side, side), dtype=np.uint8)
    half = size / 2
    c = side / 2
    shift = 4  # cv2 fixed-point: 1/16 px
    if label == 0:  # car: a disc
        cv2.circle(patch, (round(c * 16), round(c * 16)), round(half * 16), 1, -1, cv2.LINE_8, shift)
    else:
        angle = rng.uniform(0, math.pi / 2) if label != 2 else rng.uniform(0, 2 * math.pi)
        if label == 1:  # tree: a square
            points = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
            scale = half / math.sqrt(2) * 1.2
        elif label == 2:  # house: a triangle
            points = [(math.cos(a), math.sin(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
            scale = half
        else:  # boat: a cross
            w = 0.35
            points = [(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w),
                      (-1, -w), (-w, -w)]  # fmt: skip
            scale = half / math.sqrt(1 + w * w) * 1.2
        cos, sin = math.cos(angle), math.sin(angle)
        rotated = [((x * cos - y * sin) * scale + c, (x * sin + y * cos) * scale + c) for x, y in points]
        polygon = np.round(np.array(rotated) * 16).astype(np.int32)
        cv2.fillPoly(patch, [polygon], 1, cv2.LINE_8, shift)
    mask = patch.astype(bool)
    x0, y0 = int(round(centre[0] - c)), int(round(centre[1] - c))
    return mask, x0, y0


def _contrasting_colour(rng: np.random.Generator, under: np.ndarray) -> np.ndarray:
    """A colour whose distance to the mean background under the object is at least 60 (of 441)."""
    mean = under.mean(axis=0) if len(under) else np.full(3, 128.0)
    for _ in range(32):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - mean) >= _MIN_COLOUR_DISTANCE:
            return colour.astype(np.float32)
    return (255 - mean).astype(np.float32)
