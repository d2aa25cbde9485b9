"""Images read window by window: an in-memory array, or a (Geo)TIFF read through rasterio without decoding it whole.

Sliced inference (:mod:`centernet.inference.tiling`) asks a source for one tile's pixels at a time, so a 20,000 x
20,000 TIFF never sits in memory: only the tiles of one batch do. Windowed reads need the optional ``geo`` extra
(``pip install "centernet[geo]"``, rasterio); without it a TIFF is decoded whole like any other image file. Every
file source applies the pixel limit of :mod:`centernet.data.imagefile` (``CENTERNET_MAX_IMAGE_PIXELS``; set it to a
larger number of pixels, or to 0, to accept larger images).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from centernet.data.imagefile import ImageFileError, check_image_pixels
from centernet.inference.inputs import as_rgb

__all__ = ["ArraySource", "GEO_EXTRA_HINT", "ImageSource", "RasterioSource", "has_rasterio", "open_source"]

GEO_EXTRA_HINT = 'pip install "centernet[geo]"  (rasterio)'
_TIFF_SUFFIXES = (".tif", ".tiff")


def has_rasterio() -> bool:
    """Whether the optional ``geo`` extra (rasterio) is installed."""
    return importlib.util.find_spec("rasterio") is not None


class ImageSource:
    """Pixels of one image by window. ``size`` is (H, W); ``dtype`` uint8 (or float32 in [0, 1]); ``transform``
    and ``crs`` are the georeference of a GeoTIFF (``None`` otherwise)."""

    size: tuple[int, int]
    dtype: np.dtype = np.dtype(np.uint8)
    transform: tuple[float, float, float, float, float, float] | None = None
    crs: str | None = None

    def read(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """(height, width, 3) RGB pixels of the window at (x0, y0); black where it leaves the image."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (nothing for arrays)."""


class ArraySource(ImageSource):
    """An (H, W, 3) RGB array already in memory (uint8, or float32 in [0, 1])."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image
        self.size = (int(image.shape[0]), int(image.shape[1]))
        self.dtype = image.dtype

    def read(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        window = self.image[y0 : y0 + height, x0 : x0 + width]
        if window.shape[:2] == (height, width):
            return window
        out = np.zeros((height, width, 3), dtype=self.image.dtype)
        out[: window.shape[0], : window.shape[1]] = window
        return out


class RasterioSource(ImageSource):
    """A raster file opened with rasterio (GeoTIFF, TIFF, and the other formats GDAL reads), read by windows.

    Bands: one band is grey (replicated to RGB), three or more are RGB (the first three, alpha dropped). 8-bit
    pixels are used as they are and 16-bit ones keep their most significant byte, as training reads images.

    Raises:
        ImageFileError: The file cannot be opened, has another pixel type, or exceeds the pixel limit.
    """

    def __init__(self, path: str | Path) -> None:
        import rasterio
        from rasterio.errors import RasterioIOError

        self.path = Path(path)
        try:
            self.dataset = rasterio.open(self.path)
        except RasterioIOError as error:
            raise ImageFileError(f"{self.path}: cannot open the raster ({error})") from error
        width, height = self.dataset.width, self.dataset.height
        try:
            check_image_pixels(self.path, width, height)
            kinds = set(self.dataset.dtypes)
            if not kinds <= {"uint8", "uint16"}:
                raise ImageFileError(
                    f"{self.path}: pixels of type {', '.join(sorted(kinds))}; expected 8- or 16-bit unsigned bands "
                    "(convert it, e.g. with gdal_translate -ot Byte -scale)"
                )
        except ImageFileError:
            self.dataset.close()
            raise
        self.size = (int(height), int(width))
        self.bands = [1, 1, 1] if self.dataset.count < 3 else [1, 2, 3]
        self._shift = 8 if "uint16" in kinds else 0
        self.crs = self.dataset.crs.to_string() if self.dataset.crs else None
        affine = self.dataset.transform
        georeferenced = self.dataset.crs is not None or not affine.is_identity
        self.transform = (affine.a, affine.b, affine.c, affine.d, affine.e, affine.f) if georeferenced else None

    def read(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        from rasterio.windows import Window

        out = np.zeros((height, width, 3), dtype=np.uint8)
        inside_w = min(width, self.size[1] - x0)
        inside_h = min(height, self.size[0] - y0)
        if inside_w <= 0 or inside_h <= 0:
            return out
        window = Window(x0, y0, inside_w, inside_h)  # col_off, row_off, width, height
        pixels = self.dataset.read(self.bands, window=window)  # (3, h, w)
        if self._shift:
            pixels = pixels >> self._shift
        out[:inside_h, :inside_w] = pixels.transpose(1, 2, 0)
        return out

    def close(self) -> None:
        self.dataset.close()


def open_source(item: Any) -> ImageSource:
    """A source for one input of ``Detector.predict``: TIFF files through rasterio when installed (windowed
    reads), everything else decoded as :func:`centernet.inference.inputs.as_rgb` decodes it."""
    if isinstance(item, (str, Path)) and Path(item).suffix.lower() in _TIFF_SUFFIXES and has_rasterio():
        if not Path(item).is_file():
            raise ImageFileError(f"{item}: image file not found")
        return RasterioSource(item)
    return ArraySource(as_rgb(item))
