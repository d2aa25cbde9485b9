"""The built-in "shapes" dataset: filled geometric shapes on textured backgrounds, written once as COCO files.

The dataset exists so that training, evaluation and the tests run anywhere without downloads, through exactly
the same loader as real data (:class:`centernet.data.coco.CocoDetection`).

Rules of the generator (all deterministic from ``(seed, split, index)``, so image ``i`` of a split is the same
no matter how many images are generated):

- Classes are the shapes in :data:`SHAPE_CLASSES`; colours are drawn independently of the class.
- Every image with ``index % 32 == 16`` has no objects (about 3 %); every other image gets 1-12 shapes (the
  number asked for is uniform in 1..12; a shape that finds no acceptable place in 10 tries is skipped, so very
  crowded draws end up with fewer, never with zero).
- The larger side of each box is in [8 %, 50 %] of the image side (log-uniform, so small objects are common)
  and every shape lies fully inside the image.
- Overlaps are allowed: later shapes are painted over earlier ones. A new shape is accepted only if every
  earlier shape keeps at least half of its pixels visible and its visible box keeps a larger side of at least
  8 % of the image side. Boxes are the tight boxes of the VISIBLE pixels (COCO's modal convention) and
  ``area`` is the number of visible pixels.
- The colour of a shape is resampled until it differs from the pixels just around it (10th percentile of the
  RGB distance at least 60 of 441), so every object is visible against its local background.

Boxes follow COCO: ``[x, y, w, h]`` in pixels with continuous coordinates, so a shape covering pixel columns
10..19 has ``x = 10`` and ``w = 10``. Category ids start at 1 (:data:`SHAPE_CATEGORY_IDS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from centernet.cache import build_once, default_cache_root

__all__ = [
    "SHAPE_CATEGORY_IDS",
    "SHAPE_CLASSES",
    "ShapesImage",
    "ShapesPaths",
    "ensure_shapes_dataset",
    "generate_shapes_image",
]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
SHAPE_CATEGORY_IDS: tuple[int, ...] = tuple(range(1, len(SHAPE_CLASSES) + 1))

# Bump when the generator's output changes: the version is part of the cache key, so old caches are not reused.
_GENERATOR_VERSION = 1
_SPLIT_IDS = {"train": 0, "val": 1}
_EMPTY_PERIOD, _EMPTY_PHASE = 32, 16
_MAX_OBJECTS = 12
_MIN_SIDE_FRACTION, _MAX_SIDE_FRACTION = 0.08, 0.5
_MIN_VISIBLE_FRACTION = 0.5
_PLACEMENT_TRIES = 10
_COLOUR_CANDIDATES = 32
_MIN_COLOUR_DISTANCE = 60.0
_SUBPIXEL_BITS = 4  # cv2.fillPoly fixed-point vertices: 1/16 pixel


@dataclass(frozen=True)
class ShapesPaths:
    """Where a generated shapes dataset lives (COCO layout, one folder per split)."""

    root: Path
    train_images: Path
    train_annotations: Path
    val_images: Path
    val_annotations: Path


@dataclass(frozen=True)
class ShapesImage:
    """One generated image and its objects.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        boxes: (n, 4) float32 COCO ``[x, y, w, h]`` in pixels: tight box of each object's visible pixels.
        labels: (n,) int64 contiguous labels, index into :data:`SHAPE_CLASSES`.
        areas: (n,) int64 number of visible pixels of each object.
        instance_mask: (H, W) int16, index of the object visible at each pixel, -1 for background.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    areas: np.ndarray
    instance_mask: np.ndarray


def ensure_shapes_dataset(
    root: str | Path | None = None,
    num_train: int = 1000,
    num_val: int = 200,
    image_size: int = 128,
    seed: int = 0,
) -> ShapesPaths:
    """Generate the shapes dataset under ``root`` unless a complete copy is already there.

    The folder name is the cache key (generator version, seed, counts, image size). The data is written to a
    temporary folder next to it and renamed into place in one step, so an interrupted run never leaves a
    partial cache, and two processes racing to create it both end up using one complete copy.

    Args:
        root: Parent folder of the cache; defaults to :func:`default_cache_root`.
        num_train: Number of training images (>= 1).
        num_val: Number of validation images (>= 1).
        image_size: Side of the square images in pixels (>= 32).
        seed: Non-negative base seed.

    Returns:
        The paths of both splits: ``<cache>/<split>/images/*.png`` and ``<cache>/<split>/annotations.json``.
    """
    for name, value, low in (("num_train", num_train, 1), ("num_val", num_val, 1), ("image_size", image_size, 32)):
        if int(value) != value or value < low:
            raise ValueError(f"ensure_shapes_dataset: {name} must be an integer >= {low}, got {value!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"ensure_shapes_dataset: seed must be a non-negative integer, got {seed!r}")
    parent = Path(root).expanduser() if root is not None else default_cache_root()
    key = f"shapes-v{_GENERATOR_VERSION}-seed{seed}-train{num_train}-val{num_val}-{image_size}px"
    paths = _paths(parent / key)
    if paths.root.exists():
        if not (paths.train_annotations.is_file() and paths.val_annotations.is_file()):
            raise RuntimeError(f"shapes cache {paths.root} is incomplete (was it edited by hand?); delete it")
        return paths

    def build(tmp: Path) -> None:
        for split, count in (("train", num_train), ("val", num_val)):
            _write_split(tmp / split, split, count, image_size, seed)

    build_once(paths.root, build)
    return paths


def generate_shapes_image(image_size: int, seed: int, split: str, index: int) -> ShapesImage:
    """Render image ``index`` of ``split``; depends only on the arguments (see the module docstring).

    Args:
        image_size: Side of the square image in pixels (>= 32).
        seed: Non-negative base seed.
        split: ``"train"`` or ``"val"``.
        index: Image index within the split (>= 0).

    Returns:
        The image, its objects' COCO boxes, labels, visible areas and the instance mask.
    """
    if split not in _SPLIT_IDS:
        raise ValueError(f"generate_shapes_image: split must be one of {sorted(_SPLIT_IDS)}, got {split!r}")
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    size = image_size
    canvas = _background(rng, size)  # (S, S, 3) float32
    owner = np.full((size, size), -1, dtype=np.int16)
    min_side = math.ceil(_MIN_SIDE_FRACTION * size)
    max_side = math.floor(_MAX_SIDE_FRACTION * size)
    labels: list[int] = []
    full_areas: list[int] = []
    visible: list[int] = []
    boxes: list[list[int]] = []  # visible box per object: x0, y0, x1, y1 (exclusive)

    wanted = 0 if index % _EMPTY_PERIOD == _EMPTY_PHASE else int(rng.integers(1, _MAX_OBJECTS + 1))
    for _ in range(wanted):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        for _try in range(_PLACEMENT_TRIES):
            side = math.exp(rng.uniform(math.log(min_side), math.log(max_side)))
            shape = _rasterise(_polygon(SHAPE_CLASSES[label], rng), side)  # (h, w) bool, tight
            h, w = shape.shape
            if not min_side <= max(h, w) <= max_side:
                continue  # rasterisation rounded the size out of range
            y0, x0 = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
            trial = _place(owner, shape, y0, x0, len(labels), visible, full_areas, boxes, min_side)
            if trial is None:
                continue  # would hide too much of an earlier shape
            owner = trial
            colour = _contrasting_colour(rng, canvas, shape, y0, x0)
            canvas[y0 : y0 + h, x0 : x0 + w][shape] = colour
            labels.append(label)
            full_areas.append(int(shape.sum()))
            visible.append(full_areas[-1])
            boxes.append([x0, y0, x0 + w, y0 + h])
            break

    canvas += rng.normal(0.0, rng.uniform(2.0, 8.0), canvas.shape).astype(np.float32)  # sensor noise
    image = np.clip(canvas, 0, 255).round().astype(np.uint8)
    xyxy = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return ShapesImage(
        image=image,
        boxes=xywh,
        labels=np.asarray(labels, dtype=np.int64),
        areas=np.asarray(visible, dtype=np.int64),
        instance_mask=owner,
    )


def _paths(root: Path) -> ShapesPaths:
    return ShapesPaths(
        root=root,
        train_images=root / "train" / "images",
        train_annotations=root / "train" / "annotations.json",
        val_images=root / "val" / "images",
        val_annotations=root / "val" / "annotations.json",
    )


def _write_split(folder: Path, split: str, count: int, image_size: int, seed: int) -> None:
    """Write ``count`` PNG images and one COCO json for ``split`` into ``folder``."""
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        sample = generate_shapes_image(image_size, seed, split, index)
        file_name = f"{index:06d}.png"
        if not cv2.imwrite(str(folder / "images" / file_name), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {folder / 'images' / file_name}")
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": image_size, "height": image_size})
        for box, label, area in zip(sample.boxes.tolist(), sample.labels.tolist(), sample.areas.tolist(), strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": SHAPE_CATEGORY_IDS[label],
                    "bbox": box,
                    "area": float(area),
                    "iscrowd": 0,
                }
            )
    coco = {
        "info": {"description": f"centernet synthetic shapes, {split} split", "version": str(_GENERATOR_VERSION)},
        "categories": [
            {"id": cid, "name": name, "supercategory": "shape"}
            for cid, name in zip(SHAPE_CATEGORY_IDS, SHAPE_CLASSES, strict=True)
        ],
        "images": images,
        "annotations": annotations,
    }
    with open(folder / "annotations.json", "w") as f:
        json.dump(coco, f)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random textured background, (S, S, 3) float32 in about [0, 255]."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)  # (S, S) each, in [0, 1]
    start, end = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    canvas = start + ramp[..., None] * (end - start)  # (S, S, 3) linear gradient
    texture = int(rng.integers(4))  # 0 plain, 1 stripes, 2 blobs, 3 both
    if texture in (1, 3):
        freq, phase, angle = rng.uniform(2, 10), rng.uniform(0, 2 * math.pi), rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * freq * (xs * math.cos(angle) + ys * math.sin(angle)) + phase)
        canvas += wave[..., None] * (rng.uniform(15, 45) * rng.uniform(-1, 1, 3)).astype(np.float32)
    if texture in (2, 3):
        # Smooth low-frequency colour blobs: a coarse random grid upsampled with bicubic interpolation has no
        # sharp edges, so it never looks like one of the (sharp-edged) shapes.
        cells = int(rng.integers(3, 7))
        grid = rng.uniform(-1, 1, (cells, cells, 3)).astype(np.float32)
        canvas += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(20, 60))
    return canvas


def _polygon(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices (V, 2) (x, y) of a randomly rotated shape, in arbitrary units centred near 0."""
    small_tilt = math.radians(rng.uniform(-12, 12))  # keeps squares apart from diamonds and crosses upright
    if shape == "circle":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape == "square":
        points, angle = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64), small_tilt
    elif shape == "triangle":
        t = -math.pi / 2 + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3])
        points, angle = np.stack([np.cos(t), np.sin(t)], axis=1), rng.uniform(0, 2 * math.pi)
    elif shape == "diamond":
        half_width = rng.uniform(0.5, 0.8)  # a rhombus taller than wide, unlike a tilted square
        points, angle = np.array([[0, -1], [half_width, 0], [0, 1], [-half_width, 0]]), small_tilt
    elif shape == "cross":
        a = rng.uniform(0.3, 0.45)  # half thickness of the arms
        points = np.array(
            [[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a], [-a, -a]]
        )
        angle = small_tilt
    else:
        raise ValueError(f"unknown shape {shape!r}")
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _rasterise(points: np.ndarray, side: float) -> np.ndarray:
    """Fill the polygon scaled so that its larger extent covers about ``side`` pixels; returns the tight mask."""
    points = points - points.min(axis=0)
    # fillPoly treats integer coordinates as pixel centres: an extent of side - 1 covers about side pixels.
    points = points * ((side - 1) / points.max()) + 1.0
    extent = math.ceil(side) + 2
    mask = np.zeros((extent, extent), dtype=np.uint8)
    fixed = np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [fixed], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(bool)


def _place(
    owner: np.ndarray,
    shape: np.ndarray,
    y0: int,
    x0: int,
    new_index: int,
    visible: list[int],
    full_areas: list[int],
    boxes: list[list[int]],
    min_side: int,
) -> np.ndarray | None:
    """Paint ``shape`` into a copy of ``owner``; None if an earlier object would become too hidden.

    Updates ``visible`` and ``boxes`` of the occluded objects in place when the placement is accepted.
    """
    h, w = shape.shape
    covered = owner[y0 : y0 + h, x0 : x0 + w][shape]
    covered = covered[covered >= 0]
    trial = owner.copy()
    trial[y0 : y0 + h, x0 : x0 + w][shape] = new_index
    if covered.size == 0:
        return trial
    lost = np.bincount(covered, minlength=new_index)
    updates = {}
    for j in np.flatnonzero(lost).tolist():
        if visible[j] - lost[j] < _MIN_VISIBLE_FRACTION * full_areas[j]:
            return None
        bx0, by0, bx1, by1 = boxes[j]
        rows, cols = np.nonzero(trial[by0:by1, bx0:bx1] == j)
        box = [bx0 + int(cols.min()), by0 + int(rows.min()), bx0 + int(cols.max()) + 1, by0 + int(rows.max()) + 1]
        if max(box[2] - box[0], box[3] - box[1]) < min_side:
            return None
        updates[j] = (visible[j] - int(lost[j]), box)
    for j, (count, box) in updates.items():
        visible[j], boxes[j] = count, box
    return trial


def _contrasting_colour(
    rng: np.random.Generator, canvas: np.ndarray, shape: np.ndarray, y0: int, x0: int
) -> np.ndarray:
    """An RGB colour (3,) float32 that stands out from the pixels in a 2-pixel ring around the shape."""
    h, w = shape.shape
    size = canvas.shape[0]
    pad = 2
    top, left = max(y0 - pad, 0), max(x0 - pad, 0)
    bottom, right = min(y0 + h + pad, size), min(x0 + w + pad, size)
    inside = np.zeros((bottom - top, right - left), dtype=np.uint8)
    inside[y0 - top : y0 - top + h, x0 - left : x0 - left + w] = shape
    ring = cv2.dilate(inside, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8)).astype(bool) & ~inside.astype(bool)
    around = canvas[top:bottom, left:right][ring]  # (P, 3)
    candidates = rng.uniform(0, 255, (_COLOUR_CANDIDATES, 3)).astype(np.float32)
    if around.size == 0:  # the shape fills the whole image: nothing to contrast with
        return candidates[0]
    distance = np.linalg.norm(candidates[:, None, :] - around[None, :, :], axis=-1)  # (K, P)
    # A low percentile rather than the mean: the ring may mix background and another shape of either colour.
    contrast = np.percentile(distance, 10, axis=1)  # (K,)
    good = np.flatnonzero(contrast >= _MIN_COLOUR_DISTANCE)
    return candidates[good[0] if good.size else int(contrast.argmax())]
