"""The built-in "moving shapes" videos: shapes gliding over a textured background, written as MOTChallenge sequences.

They exist so that the tracking task trains, evaluates and is tested anywhere without downloads, through the same
reader as real data (:func:`centernet.data.mot.parse_mot`). Rules of the generator (deterministic from
``(seed, split, index)``):

- One class, ``shape``: circles, squares and triangles in distinct saturated colours, 10-22 % of the side.
- Motion: each object moves at 2.5-6 % of the side per frame (about a third of its size: nearest-centre
  matching confuses objects that pass close by), either at constant velocity or turning (its velocity
  rotates by 2-6 degrees per frame), so that a constant-velocity guess is not always right.
- Occlusions: every object has a depth; nearer ones are painted over farther ones, so objects cross and hide
  each other. An object less than 30 % visible (its own pixels, hidden or outside the frame) is not annotated in
  that frame and keeps its track id when it reappears.
- Entering and leaving: 3-6 objects start inside, and new ones enter from a random border about every 5 frames;
  objects that drift out of the frame leave for good.
- Boxes are the full (amodal) box clipped to the frame, MOTChallenge's convention; ``visibility`` is the visible
  fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from centernet.cache import build_once, default_cache_root
from centernet.data.mot import write_mot_sequence

__all__ = ["MovingShapesPaths", "ensure_moving_shapes", "generate_moving_shapes"]

_GENERATOR_VERSION = 2
_SPLIT_IDS = {"train": 0, "val": 1}
_MIN_VISIBILITY = 0.3
_SHAPES = ("circle", "square", "triangle")
_SUBPIXEL_BITS = 4


@dataclass(frozen=True)
class MovingShapesPaths:
    """Where the videos are: ``train`` and ``val`` folders of MOTChallenge sequences."""

    root: Path
    train: Path
    val: Path


@dataclass
class _Object:
    track_id: int
    shape: str
    colour: tuple[int, int, int]
    side: float
    position: np.ndarray  # (2,) centre, pixels
    velocity: np.ndarray  # (2,) pixels per frame
    turn: float  # radians per frame
    depth: float
    angle: float


def _polygon(obj: _Object) -> np.ndarray:
    """(V, 2) vertices of the object in frame pixels."""
    half = obj.side / 2
    if obj.shape == "circle":
        t = np.linspace(0, 2 * math.pi, 32, endpoint=False)
        points = np.stack([np.cos(t), np.sin(t)], 1) * half
    elif obj.shape == "square":
        points = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * half * 0.85
    else:
        t = obj.angle + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3])
        points = np.stack([np.cos(t), np.sin(t)], 1) * half
    return points + obj.position


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """(S, S, 3) float32 smooth colour blobs over a gradient, muted so that the shapes stand out."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    start, end = rng.uniform(60, 160, (2, 3)).astype(np.float32)
    canvas = start + xs[..., None] * (end - start)
    grid = rng.uniform(-1, 1, (4, 4, 3)).astype(np.float32)
    return canvas + cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) * 25 + ys[..., None] * 10


def _new_object(rng: np.random.Generator, track_id: int, size: int, entering: bool) -> _Object:
    side = rng.uniform(0.10, 0.22) * size
    speed = rng.uniform(0.025, 0.06) * size
    if entering:  # just outside a random border, heading inwards
        border = int(rng.integers(4))
        along = rng.uniform(0.2, 0.8) * size
        position = [
            np.array([-side / 2, along]),
            np.array([size + side / 2, along]),
            np.array([along, -side / 2]),
            np.array([along, size + side / 2]),
        ][border]
        heading = [0.0, math.pi, math.pi / 2, -math.pi / 2][border] + rng.uniform(-0.5, 0.5)
    else:
        position = rng.uniform(0.15, 0.85, 2) * size
        heading = rng.uniform(0, 2 * math.pi)
    turning = rng.random() < 0.4
    turn = math.radians(rng.uniform(2, 6)) * (1 if rng.random() < 0.5 else -1) if turning else 0.0
    hue = rng.uniform(0, 180)
    colour = cv2.cvtColor(np.uint8([[[hue, 230, 240]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return _Object(
        track_id,
        str(rng.choice(_SHAPES)),
        tuple(int(c) for c in colour),
        side,
        np.asarray(position, float),
        speed * np.array([math.cos(heading), math.sin(heading)]),
        turn,
        rng.random(),
        rng.uniform(0, 6.3),
    )


def generate_moving_shapes(
    seed: int, split: str, index: int, num_frames: int = 100, image_size: int = 128
) -> tuple[list[np.ndarray], list[tuple]]:
    """One video: ``num_frames`` (S, S, 3) uint8 RGB frames and its MOTChallenge rows
    ``(frame, id, x1, y1, x2, y2, class, visibility)`` (frames from 1)."""
    rng = np.random.default_rng([seed, _SPLIT_IDS[split], index, _GENERATOR_VERSION])
    size = image_size
    background = _background(rng, size)
    objects = [_new_object(rng, i + 1, size, entering=False) for i in range(int(rng.integers(3, 7)))]
    next_id = len(objects) + 1
    frames, rows = [], []
    for number in range(1, num_frames + 1):
        if number > 1 and rng.random() < 1 / 5:
            objects.append(_new_object(rng, next_id, size, entering=True))
            next_id += 1
        canvas = background + rng.normal(0, 3, background.shape).astype(np.float32)
        owner = np.full((size, size), -1, dtype=np.int32)
        full = []
        for k, obj in enumerate(sorted(objects, key=lambda o: -o.depth)):  # far to near
            points = np.round(_polygon(obj) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
            alone = np.zeros((size, size), dtype=np.uint8)
            cv2.fillPoly(alone, [points], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
            owner[alone.astype(bool)] = k
            full.append((obj, cv2.contourArea(_polygon(obj).astype(np.float32))))
        for k, (obj, area) in enumerate(full):
            visible = owner == k
            canvas[visible] = obj.colour
            visibility = float(visible.sum()) / max(area, 1.0)
            x1, y1 = obj.position - obj.side / 2
            box = np.clip([x1, y1, x1 + obj.side, y1 + obj.side], 0, size)
            if visibility >= _MIN_VISIBILITY and box[2] - box[0] >= 2 and box[3] - box[1] >= 2:
                rows.append((number, obj.track_id, *box.tolist(), 1, min(visibility, 1.0)))
        frames.append(np.clip(canvas, 0, 255).astype(np.uint8))
        for obj in objects:
            c, s = math.cos(obj.turn), math.sin(obj.turn)
            obj.velocity = np.array(
                [c * obj.velocity[0] - s * obj.velocity[1], s * obj.velocity[0] + c * obj.velocity[1]]
            )
            obj.position = obj.position + obj.velocity
        margin = 0.6 * max((o.side for o in objects), default=0)
        objects = [
            o for o in objects if -margin < o.position[0] < size + margin and -margin < o.position[1] < size + margin
        ]
    return frames, rows


def ensure_moving_shapes(
    root: str | Path | None = None,
    num_train: int = 6,
    num_val: int = 2,
    num_frames: int = 100,
    image_size: int = 128,
    seed: int = 0,
) -> MovingShapesPaths:
    """Generate the moving-shapes videos under ``root`` unless a complete copy is there (written to a temporary
    folder and renamed into place, like :func:`centernet.data.synthetic.ensure_shapes_dataset`).

    Args:
        root: Parent folder of the cache; defaults to :func:`default_cache_root`.
        num_train: Training sequences.
        num_val: Validation sequences.
        num_frames: Frames per sequence.
        image_size: Side of the square frames.
        seed: Base seed.
    """
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_val", num_val, 1),
        ("num_frames", num_frames, 2),
        ("image_size", image_size, 32),
        ("seed", seed, 0),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"ensure_moving_shapes: {name} must be an integer >= {low}, got {value!r}")
    parent = Path(root).expanduser() if root is not None else default_cache_root()
    key = f"moving-shapes-v{_GENERATOR_VERSION}-seed{seed}-train{num_train}-val{num_val}-{num_frames}f-{image_size}px"
    final = parent / key
    paths = MovingShapesPaths(final, final / "train", final / "val")
    if final.exists():
        return paths

    def build(tmp: Path) -> None:
        for split, count in (("train", num_train), ("val", num_val)):
            for index in range(count):
                frames, rows = generate_moving_shapes(seed, split, index, num_frames, image_size)
                write_mot_sequence(tmp / split / f"shapes-{split}-{index:02d}", frames, rows)

    build_once(final, build)
    return paths
