"""Tiles of a large image: network-sized windows whose *cores* partition the image, so that results merge without NMS.

A point-based detector owns each detection by the cell of its centre. Sliced inference therefore lets every tile
keep only the detections whose centre falls in its core, and the cores of all tiles partition the image: an
object seen by two overlapping tiles is reported by exactly one of them, with no box-level de-duplication.

Layout along each axis (lengths in pixels, all multiples of 32 so that every tile's stride-4 cells and its
stride-32 features sit on the whole image's grid, and a tile computes what the whole-image pass computes away
from its borders):

- the image is padded (black, bottom/right) to ``L = 32 * ceil(length / 32)``, as a whole-image pass pads it;
- ``L <= tile``: one tile of ``L``; otherwise ``n = ceil((L - overlap) / (tile - overlap))`` tiles, all of the
  smallest multiple of 32 that covers ``L`` with ``n`` tiles and at least ``overlap`` pixels in common between
  neighbours (so never wider than ``tile``), the first flush with the start, the last flush with the end;
- the core boundary between two neighbours is the middle of their overlap, snapped to the stride-4 cell grid:
  each tile then keeps at least ``overlap / 2`` pixels of context around its core.

``overlap`` is rounded up to a multiple of 32. Tiles are visited row by row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor

from centernet.boxes import STRIDE_MULTIPLE

__all__ = ["Tile", "TileGrid", "crop_tiles", "default_overlap"]

# Core boundaries sit a quarter pixel past a cell edge (a multiple of the output stride). Boxes annotated with
# integer corners have centres on the half-pixel lattice, so the offsets that place predicted centres cluster on
# it; a boundary off that lattice keeps two tiles' slightly different estimates of one centre on the same side.
_CELL = 4
_BOUNDARY_PHASE = 0.25


def default_overlap(tile: int) -> int:
    """The overlap used when none is given: an eighth of the tile (64 px for 512), rounded up to 32.

    An object of up to ``overlap`` pixels whose centre lies in a core is then entirely inside that core's tile,
    and the pixel overhead on a large image is about ``(tile / (tile - overlap))^2`` = 1.31x.
    """
    return max(STRIDE_MULTIPLE, -(-tile // 8 // STRIDE_MULTIPLE) * STRIDE_MULTIPLE)


@dataclass(frozen=True)
class Tile:
    """One window: ``x0, y0`` top-left in image pixels, and the core ``[core_x1, core_x2) x [core_y1, core_y2)``
    (infinite at the image's own edges, so nothing beyond them is lost)."""

    index: int
    x0: int
    y0: int
    core_x1: float
    core_y1: float
    core_x2: float
    core_y2: float

    def owns(self, centres: Tensor) -> Tensor:
        """(K, 2) x, y centres in image pixels -> (K,) bool: whether each falls in this tile's core."""
        x, y = centres[:, 0], centres[:, 1]
        return (x >= self.core_x1) & (x < self.core_x2) & (y >= self.core_y1) & (y < self.core_y2)


@dataclass(frozen=True)
class TileGrid:
    """The tiles of an image of ``image_size`` (H, W); every tile is ``tile_size`` (h, w) pixels.

    Build it with :meth:`plan`. ``xs`` / ``ys`` are the tile origins along each axis, ``x_bounds`` / ``y_bounds``
    the core boundaries between neighbours (one fewer than the origins).
    """

    image_size: tuple[int, int]
    tile_size: tuple[int, int]
    xs: tuple[int, ...]
    ys: tuple[int, ...]
    x_bounds: tuple[float, ...]
    y_bounds: tuple[float, ...]

    @classmethod
    def plan(cls, image_size: tuple[int, int], tile: int, overlap: int | None = None) -> TileGrid:
        """The grid for tiles of at most ``tile`` pixels overlapping by at least ``overlap`` (see the module).

        Raises:
            ValueError: ``tile`` is not a positive multiple of 32, or ``overlap`` is negative or leaves no core.
        """
        if isinstance(tile, bool) or tile < STRIDE_MULTIPLE or tile % STRIDE_MULTIPLE:
            raise ValueError(f"tile must be a positive multiple of {STRIDE_MULTIPLE}, got {tile}")
        overlap = default_overlap(tile) if overlap is None else overlap
        if overlap < 0:
            raise ValueError(f"overlap must be >= 0 pixels, got {overlap}")
        overlap_units = -(-overlap // STRIDE_MULTIPLE)
        if overlap_units >= tile // STRIDE_MULTIPLE:
            raise ValueError(f"overlap ({overlap} px, rounded up to a multiple of 32) must be below tile ({tile})")
        height, width = image_size
        ys, tile_h, y_bounds = _axis(height, tile // STRIDE_MULTIPLE, overlap_units)
        xs, tile_w, x_bounds = _axis(width, tile // STRIDE_MULTIPLE, overlap_units)
        return cls((int(height), int(width)), (tile_h, tile_w), xs, ys, x_bounds, y_bounds)

    def __len__(self) -> int:
        return len(self.xs) * len(self.ys)

    def __iter__(self) -> Iterator[Tile]:
        inf = math.inf
        x_edges = (-inf, *self.x_bounds, inf)
        y_edges = (-inf, *self.y_bounds, inf)
        index = 0
        for row, y0 in enumerate(self.ys):
            for column, x0 in enumerate(self.xs):
                yield Tile(index, x0, y0, x_edges[column], y_edges[row], x_edges[column + 1], y_edges[row + 1])
                index += 1

    @property
    def pixels(self) -> int:
        """Pixels the network sees over all tiles (padding included)."""
        return len(self) * self.tile_size[0] * self.tile_size[1]


def _axis(length: int, tile_units: int, overlap_units: int) -> tuple[tuple[int, ...], int, tuple[float, ...]]:
    """Origins (pixels), tile length (pixels) and core boundaries (pixels) along one axis of ``length`` pixels."""
    units = -(-length // STRIDE_MULTIPLE)  # the padded length, in units of 32 px
    if units <= tile_units:
        return (0,), units * STRIDE_MULTIPLE, ()
    count = -(-(units - overlap_units) // (tile_units - overlap_units))  # >= 2
    span = -(-(units + (count - 1) * overlap_units) // count)  # <= tile_units (count was chosen for tile_units)
    step = -(-(units - span) // (count - 1))  # span - step >= overlap_units
    origins = [min(i * step, units - span) for i in range(count)]
    bounds = []
    for left, right in zip(origins, origins[1:], strict=False):
        middle = (right + left + span) * STRIDE_MULTIPLE / 2  # the middle of the overlap [right, left + span)
        bounds.append(_CELL * round(middle / _CELL) + _BOUNDARY_PHASE)
    return tuple(o * STRIDE_MULTIPLE for o in origins), span * STRIDE_MULTIPLE, tuple(bounds)


def crop_tiles(image: Tensor, grid: TileGrid, tiles: list[Tile]) -> Tensor:
    """The windows of ``tiles`` from a (C, H, W) image tensor, padded black beyond it: (n, C, h, w)."""
    tile_h, tile_w = grid.tile_size
    channels, height, width = image.shape
    out = image.new_zeros((len(tiles), channels, tile_h, tile_w))
    for row, tile in enumerate(tiles):
        window = image[:, tile.y0 : tile.y0 + tile_h, tile.x0 : tile.x0 + tile_w]
        out[row, :, : window.shape[1], : window.shape[2]] = window
    return out
