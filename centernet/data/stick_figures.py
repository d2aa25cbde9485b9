"""The built-in "stick figures" dataset: people drawn as articulated stick figures, written once as a COCO
person-keypoints dataset, so that pose estimation trains, evaluates and draws anywhere without downloads, through
the same loader as real keypoint data (:func:`centernet.data.coco.parse_coco`).

Rules of the generator (deterministic from ``(seed, split, index)``, like :mod:`centernet.data.synthetic`):

- One category, ``person``, with the 14 joints of :data:`STICK_JOINTS` and the fixed skeleton
  :data:`STICK_SKELETON` (COCO's conventions: joint names in ``keypoints``, 1-based ``skeleton`` pairs).
- Every image has 1-3 figures whose heights are 35-90 % of the image side (log-uniform), standing anywhere
  across the image and mostly inside it, so figures overlap and some limbs reach past the border. Poses vary:
  the body leans, each upper arm, forearm, thigh
  and shin swings in its own range (left and right independently), and each figure is drawn in its own colour
  with lines about 4 % of its height thick and a round head.
- A figure faces the camera: its left joints lie on the image's right of its body (as COCO's people facing the
  camera), which is what makes "left" learnable and what a mirror swaps.
- Visibility (COCO's): 2 for a visible joint; 1 for a joint painted over by a later figure or by a grey
  occluding bar (a quarter of the images have one); 0 (and x = y = 0) for a joint outside the image.
- ``bbox`` is the tight box of the figure's drawn pixels inside the image; ``area`` is half the box's area, the
  ratio of mask to box area of a typical COCO person, so that OKS tolerates the error it would for a COCO person
  of that box (the thin lines themselves would make OKS far stricter than for real people).
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

__all__ = ["STICK_JOINTS", "STICK_SKELETON", "StickFigureImage", "ensure_stick_figures", "generate_stick_figure_image"]

STICK_JOINTS: tuple[str, ...] = (
    "head",
    "neck",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# 0-based joint pairs; the json stores them 1-based, as COCO does.
STICK_SKELETON: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (1, 3),
    (2, 4),
    (4, 6),
    (3, 5),
    (5, 7),
    (1, 8),
    (1, 9),
    (8, 9),
    (8, 10),
    (10, 12),
    (9, 11),
    (11, 13),
)

_GENERATOR_VERSION = 1
_SPLIT_IDS = {"train": 0, "val": 1}
_MAX_FIGURES = 3
_MIN_HEIGHT, _MAX_HEIGHT = 0.35, 0.9
_OCCLUDER_PROBABILITY = 0.25
_AREA_PER_BOX_AREA = 0.5


@dataclass(frozen=True)
class StickFigureImage:
    """One generated image.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        boxes: (n, 4) float32 COCO ``[x, y, w, h]`` pixels, the tight box of each figure's visible pixels.
        keypoints: (n, K, 3) float32 x, y pixels and COCO visibility (0 outside the image, 1 occluded, 2 visible).
    """

    image: np.ndarray
    boxes: np.ndarray
    keypoints: np.ndarray


def ensure_stick_figures(
    root: str | Path | None = None, num_train: int = 1000, num_val: int = 200, image_size: int = 128, seed: int = 0
) -> ShapesPaths:
    """Generate the stick-figure dataset under ``root`` unless it is already there (the folder name is the cache
    key; written to a temporary folder and renamed into place, as :func:`~centernet.data.synthetic.
    ensure_shapes_dataset` does).

    Returns:
        The paths of both splits: ``<cache>/<split>/images/*.png`` and ``<cache>/<split>/annotations.json``.
    """
    for name, value, low in (("num_train", num_train, 1), ("num_val", num_val, 1), ("image_size", image_size, 64)):
        if int(value) != value or value < low:
            raise ValueError(f"ensure_stick_figures: {name} must be an integer >= {low}, got {value!r}")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"ensure_stick_figures: seed must be a non-negative integer, got {seed!r}")
    parent = Path(root).expanduser() if root is not None else default_cache_root()
    key = f"stick-figures-v{_GENERATOR_VERSION}-seed{seed}-train{num_train}-val{num_val}-{image_size}px"
    root_dir = parent / key
    paths = ShapesPaths(
        root_dir,
        root_dir / "train" / "images",
        root_dir / "train" / "annotations.json",
        root_dir / "val" / "images",
        root_dir / "val" / "annotations.json",
    )
    if root_dir.exists():
        if not (paths.train_annotations.is_file() and paths.val_annotations.is_file()):
            raise RuntimeError(f"stick-figure cache {root_dir} is incomplete (was it edited by hand?); delete it")
        return paths

    def build(tmp: Path) -> None:
        for split, count in (("train", num_train), ("val", num_val)):
            _write_split(tmp / split, split, count, image_size, seed)

    build_once(root_dir, build)
    return paths


def generate_stick_figure_image(image_size: int, seed: int, split: str, index: int) -> StickFigureImage:
    """Render image ``index`` of ``split``; depends only on the arguments (see the module docstring)."""
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index])
    size = image_size
    canvas = _background(rng, size)
    owner = np.full((size, size), -1, dtype=np.int16)  # which figure is visible at each pixel
    figures = []
    for figure in range(int(rng.integers(1, _MAX_FIGURES + 1))):
        height = size * math.exp(rng.uniform(math.log(_MIN_HEIGHT), math.log(_MAX_HEIGHT)))
        top = np.array([rng.uniform(0.1, 0.9) * size, rng.uniform(-0.05 * height, max(0.0, size - 0.9 * height))])
        joints = _pose(rng, top, height)  # (K, 2) pixels
        mask = _draw(joints, height, size)
        colour = _contrasting(rng, canvas[mask] if mask.any() else canvas.reshape(-1, 3))
        mask = _draw(joints, height, size)
        canvas[mask] = colour
        owner[mask] = figure
        figures.append(joints)
    occluder = None
    if rng.random() < _OCCLUDER_PROBABILITY:
        x1, y1 = rng.uniform(0, 0.7) * size, rng.uniform(0.4, 0.8) * size
        occluder = (int(x1), int(y1), int(x1 + rng.uniform(0.2, 0.5) * size), int(y1 + rng.uniform(0.1, 0.25) * size))
        cv2.rectangle(canvas, occluder[:2], occluder[2:], (128.0, 128.0, 128.0), -1)
        owner[occluder[1] : occluder[3] + 1, occluder[0] : occluder[2] + 1] = -2
    boxes, keypoints = [], []
    for figure, joints in enumerate(figures):
        ys, xs = np.nonzero(owner == figure)
        if len(xs) < 20:  # (almost) entirely hidden: not a person anyone could annotate
            continue
        inside = (joints[:, 0] >= 0) & (joints[:, 0] < size) & (joints[:, 1] >= 0) & (joints[:, 1] < size)
        cells = joints.clip(0, size - 1).astype(int)
        seen = owner[cells[:, 1], cells[:, 0]] == figure
        visibility = np.where(inside, np.where(seen, 2, 1), 0)
        points = np.where(inside[:, None], joints, 0.0)
        keypoints.append(np.concatenate([points, visibility[:, None]], axis=1))
        boxes.append([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()])
    return StickFigureImage(
        image=np.clip(canvas, 0, 255).astype(np.uint8),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        keypoints=np.asarray(keypoints, dtype=np.float32).reshape(-1, len(STICK_JOINTS), 3),
    )


def _pose(rng: np.random.Generator, top: np.ndarray, height: float) -> np.ndarray:
    """(K, 2) joints of a figure facing the camera whose head top is at ``top``; limb angles random."""
    lean = rng.uniform(-0.2, 0.2)  # radians from vertical
    down = np.array([math.sin(lean), math.cos(lean)])
    right = np.array([down[1], -down[0]])  # the figure's left, on the image's right
    head = top + 0.07 * height * down
    neck = top + 0.16 * height * down
    pelvis = neck + 0.34 * height * down
    joints = np.zeros((len(STICK_JOINTS), 2))
    joints[0], joints[1] = head, neck

    def limb(start: np.ndarray, side: float, length: float, low: float, high: float) -> np.ndarray:
        angle = lean + side * rng.uniform(low, high)  # from straight down, towards the figure's ``side``
        return start + length * height * np.array([math.sin(angle), math.cos(angle)])

    for side, (shoulder, elbow, wrist, hip, knee, ankle) in ((1.0, (2, 4, 6, 8, 10, 12)), (-1.0, (3, 5, 7, 9, 11, 13))):
        joints[shoulder] = neck + side * 0.11 * height * right + 0.02 * height * down
        joints[elbow] = limb(joints[shoulder], side, 0.16, 0.1, 1.9)
        joints[wrist] = limb(joints[elbow], side, 0.14, -0.6, 2.6)
        joints[hip] = pelvis + side * 0.07 * height * right
        joints[knee] = limb(joints[hip], side, 0.23, -0.15, 0.9)
        joints[ankle] = limb(joints[knee], side, 0.22, -0.5, 0.5)
    return joints


def _contrasting(rng: np.random.Generator, under: np.ndarray, tries: int = 32) -> np.ndarray:
    """An RGB colour far from the (m, 3) pixels it is painted over: the best of ``tries`` random ones by the
    10th percentile of the distance, so that the figure stands out everywhere along its lines."""
    candidates = rng.uniform(0, 255, (tries, 3))
    distance = np.linalg.norm(under[None, :, :] - candidates[:, None, :], axis=-1)  # (tries, m)
    return candidates[int(np.percentile(distance, 10, axis=1).argmax())]


def _draw(joints: np.ndarray, height: float, size: int) -> np.ndarray:
    """(S, S) bool mask of the figure: its skeleton's lines and a round head."""
    mask = np.zeros((size, size), dtype=np.uint8)
    thickness = max(1, round(0.04 * height))
    shift = 4  # 1/16-pixel vertices
    scaled = np.round(joints * (1 << shift)).astype(np.int64)
    for a, b in STICK_SKELETON:
        if a == 0:
            continue  # the head is a disc, not a line
        cv2.line(
            mask, tuple(int(v) for v in scaled[a]), tuple(int(v) for v in scaled[b]), 1, thickness, cv2.LINE_8, shift
        )
    cv2.circle(mask, tuple(int(v) for v in scaled[0]), int(0.07 * height * (1 << shift)), 1, -1, cv2.LINE_8, shift)
    return mask.astype(bool)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random gradient with blotches, (S, S, 3) float32 in about [0, 255]."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    start, end = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(angle) + ys * math.sin(angle)
    ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
    canvas = start + ramp[..., None] * (end - start)
    for _ in range(int(rng.integers(0, 6))):
        centre = tuple(int(v) for v in rng.uniform(0, size, 2))
        axes = tuple(int(v) for v in rng.uniform(2, size / 5, 2))
        cv2.ellipse(
            canvas,
            centre,
            axes,
            float(rng.uniform(0, 180)),
            0,
            360,
            tuple(float(v) for v in rng.uniform(0, 255, 3)),
            -1,
        )
    return canvas


def _write_split(folder: Path, split: str, count: int, image_size: int, seed: int) -> None:
    """Write ``count`` PNG images and one COCO keypoints json for ``split`` into ``folder``."""
    (folder / "images").mkdir(parents=True)
    images, annotations = [], []
    for index in range(count):
        sample = generate_stick_figure_image(image_size, seed, split, index)
        file_name = f"{index:06d}.png"
        if not cv2.imwrite(str(folder / "images" / file_name), cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {folder / 'images' / file_name}")
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": image_size, "height": image_size})
        for box, joints in zip(sample.boxes.tolist(), sample.keypoints, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": box,
                    "area": float(box[2] * box[3] * _AREA_PER_BOX_AREA),
                    "iscrowd": 0,
                    "keypoints": [round(float(v), 2) for v in joints.reshape(-1)],
                    "num_keypoints": int((joints[:, 2] > 0).sum()),
                }
            )
    coco = {
        "info": {
            "description": f"centernet synthetic stick figures, {split} split",
            "version": str(_GENERATOR_VERSION),
        },
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(STICK_JOINTS),
                "skeleton": [[a + 1, b + 1] for a, b in STICK_SKELETON],
            }
        ],
        "images": images,
        "annotations": annotations,
    }
    with open(folder / "annotations.json", "w") as f:
        json.dump(coco, f)
