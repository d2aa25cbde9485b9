"""Sliced inference: an image far larger than the network, run tile by tile and merged without NMS.

The image is cut into a :class:`~centernet.tiles.TileGrid` of network-sized windows read one batch at a time from
an :class:`~centernet.inference.raster.ImageSource` (never the whole image as one tensor). Tiles of a batch go
through the backend together (eager, ONNX Runtime or TorchScript, flip TTA included: it is the detector's own
forward pass). Two ways to merge the tiles' results:

- ``"core"`` (default): each tile keeps the results whose centre falls in its core; the cores partition the
  image, so each object is reported once, by the tile that sees it with the most context, and nothing needs
  suppressing. This is the point-based detector's advantage over box detectors.
- ``"nms"``: every tile keeps all its results; the caller then de-duplicates them with class-aware NMS (the task's
  ``select`` with an IoU), as box-detector slicing libraries (SAHI) merge slices; offered for comparison.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from centernet.boxes import Letterbox
from centernet.inference.raster import ImageSource
from centernet.tasks import Task
from centernet.tiles import TileGrid

__all__ = ["TileMerge", "detect_tiled"]

TileMerge = Literal["core", "nms"]

# ``run(batch)``: (n, 3, h, w) uint8 or float tiles -> decoded results (n, K, ...) in tile pixels, score 0 padding.
Runner = Callable[[Tensor], dict[str, Tensor]]


def detect_tiled(
    run: Runner,
    task: Task,
    source: ImageSource,
    tile: int,
    overlap: int | None,
    merge: TileMerge = "core",
    batch_size: int = 8,
    progress: bool = False,
) -> dict[str, Tensor]:
    """Every result of one image from its tiles, in original pixels (CPU tensors, not yet thresholded or sorted).

    Args:
        run: The detector's forward pass and decoding for a batch of tiles.
        task: The model's task (moves results between tile and image pixels, names their owning points).
        source: The image's pixels, read one window at a time.
        tile: Largest tile side in pixels (a multiple of 32).
        overlap: Least overlap of neighbouring tiles in pixels; ``None``: :func:`~centernet.tiles.default_overlap`.
        merge: ``"core"`` keeps each tile's core; ``"nms"`` keeps everything (to be suppressed by the caller).
        batch_size: At most this many tiles per forward pass (the passes of an image get equal shares).
        progress: Show a progress bar counting tiles when the image has more than one batch of them.

    Returns:
        The task's results (K, ...) in original pixels, clipped to the image.
    """
    if merge not in ("core", "nms"):
        raise ValueError(f"tile merge must be 'core' or 'nms', got {merge!r}")
    grid = TileGrid.plan(source.size, tile, overlap)
    tiles = list(grid)
    tile_h, tile_w = grid.tile_size
    whole = Letterbox.keep_resolution(source.size)  # scale 1: to_original only clips to the image
    parts: list[dict[str, Tensor]] = []
    bar = _progress_bar(len(tiles)) if progress and len(tiles) > batch_size else None
    # Batches of equal size (9 tiles at batch_size 8: 5 + 4, not 8 + 1): a lone tile in its own forward pass cost
    # as much as several in a batch on the CPU (benchmarks/tiles.py).
    passes = -(-len(tiles) // batch_size)
    bounds = [round(i * len(tiles) / passes) for i in range(passes + 1)]
    try:
        for start, end in zip(bounds, bounds[1:], strict=False):
            chunk = tiles[start:end]
            pixels = np.stack([source.read(t.x0, t.y0, tile_w, tile_h) for t in chunk])  # (n, h, w, 3)
            detections = run(torch.from_numpy(pixels).permute(0, 3, 1, 2))  # (n, 3, h, w) channels-last view
            for row, one_tile in enumerate(chunk):
                one = {key: value[row] for key, value in detections.items()}
                keep = one["scores"] > 0  # the zero-score padding of tiles with fewer than K peaks
                one = task.translate({key: value[keep] for key, value in one.items()}, one_tile.x0, one_tile.y0)
                if merge == "core":
                    owned = one_tile.owns(task.centres(one))
                    one = {key: value[owned] for key, value in one.items()}
                parts.append(one)
            if bar is not None:
                bar[0].advance(bar[1], len(chunk))
    finally:
        if bar is not None:
            bar[0].stop()
    merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
    return task.to_original(merged, whole)


def _progress_bar(total: int):  # noqa: ANN202 - (Progress, task id)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("tiles"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
    bar.start()
    return bar, bar.add_task("tiles", total=total)
