"""Checking and decoding image files: one policy for every dataset format, and one pixel limit.

- **Checks** (:func:`inspect_image`, run for every image before training): the file exists, is not empty, is an
  image PIL can identify, is within the pixel limit, and decodes with the decoder of the training loader (OpenCV,
  as :func:`decode_rgb`), so that a file that would crash a DataLoader worker fails before training, naming the
  file. A JPEG must also be complete: libjpeg decodes image data cut short without an error, filling the rest with
  grey, so the file's structure is read and a file that may have been cut (several scans, or a last pixel of that
  grey) is decoded a second time with bytes inserted after its image data, which changes only the pixels of a cut
  file (see :mod:`centernet.data.jpeg`). A cut inside the last block of a baseline JPEG, which changes at most that
  block, is not looked for.
- **Pixel limit**: an image of more than :func:`max_image_pixels` pixels (width x height) is refused before it is
  decoded, in training (:func:`inspect_image`) and in ``centernet predict`` (:func:`read_image_size`, then
  :func:`check_image_pixels`), so that a small file declaring a huge size cannot exhaust the memory. The limit is
  the environment variable ``CENTERNET_MAX_IMAGE_PIXELS``: a number of pixels, or ``0`` / ``none`` for no limit;
  the default is 178,956,970 pixels, the size PIL refuses by default (``2 * PIL.Image.MAX_IMAGE_PIXELS``). PIL's own
  limit does not apply on top of it: the header of a larger image is read with PIL's check lifted.
- **EXIF orientation is ignored**: boxes refer to the pixels as stored in the file, which is how pycocotools,
  COCO's own tools and PIL read them. :func:`inspect_image` reports the orientation tag so a dataset annotated
  on rotated images can be recognised (the size check then names the likely cause).
- **Colour**: :func:`decode_rgb` returns 8-bit RGB for every input: grayscale is replicated to three channels,
  the alpha channel of RGBA/LA is dropped, palette images are expanded, and 16-bit images keep their most
  significant byte (``value >> 8``).
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from centernet.data.jpeg import probe, read_jpeg_layout
from centernet.errors import InputError

__all__ = [
    "DEFAULT_MAX_IMAGE_PIXELS",
    "MAX_IMAGE_PIXELS_VARIABLE",
    "ImageFileError",
    "ImageInfo",
    "check_image_pixels",
    "decode_rgb",
    "inspect_image",
    "max_image_pixels",
    "read_image_size",
]

MAX_IMAGE_PIXELS_VARIABLE = "CENTERNET_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 178_956_970  # PIL's error threshold: 2 * PIL.Image.MAX_IMAGE_PIXELS (its default)

_IMREAD_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # 90/270 degree rotations: stored width and height swap on display
_CUT_JPEG_GREY = 128  # what libjpeg decodes where image data is missing (zero coefficients), in every channel
_PIL_LIMIT_LOCK = threading.Lock()


class ImageFileError(InputError, OSError):
    """An image file that cannot be used; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class ImageInfo:
    """What :func:`inspect_image` learned about a file.

    Attributes:
        width: Stored width in pixels.
        height: Stored height in pixels.
        mode: PIL mode of the file (``"RGB"``, ``"L"``, ``"RGBA"``, ``"P"``, ``"I;16"``, ...).
        orientation: EXIF orientation tag (1 = upright; 0 if absent).
    """

    width: int
    height: int
    mode: str
    orientation: int

    @property
    def transposed(self) -> bool:
        """True if the EXIF tag rotates the image by 90 or 270 degrees when displayed (width and height swap)."""
        return self.orientation in _TRANSPOSING_ORIENTATIONS


def max_image_pixels() -> int | None:
    """The largest image, in pixels (width x height), that centernet decodes; ``None`` if there is no limit.

    Read from ``$CENTERNET_MAX_IMAGE_PIXELS`` on every call (see the module docstring); 178,956,970 if it is unset.

    Raises:
        ValueError: The variable holds something else than a number of pixels, ``0`` or ``none``.
    """
    value = os.environ.get(MAX_IMAGE_PIXELS_VARIABLE, "").strip()
    if not value:
        return DEFAULT_MAX_IMAGE_PIXELS
    if value.lower() == "none":
        return None
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        raise ValueError(
            f"{MAX_IMAGE_PIXELS_VARIABLE} must be a number of pixels, or 0 or none for no limit; got {value!r}"
        )
    return limit or None


def check_image_pixels(path: str | Path, width: int, height: int) -> None:
    """Refuse an image larger than :func:`max_image_pixels`, before it is decoded.

    Raises:
        ImageFileError: ``width * height`` is above the limit; the message names the file, its size and the
            variable that raises the limit.
    """
    limit = max_image_pixels()
    if limit is not None and width * height > limit:
        raise ImageFileError(
            f"{path}: the image is {width}x{height} = {width * height:,} pixels, more than the limit of {limit:,} "
            f"pixels (set {MAX_IMAGE_PIXELS_VARIABLE} to a larger number, or to 0 for no limit, to accept it)"
        )


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file read from its header only: nothing is decoded, whatever it declares.

    Raises:
        ImageFileError: Missing, not an image PIL can identify, or a corrupt header; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: image file not found")
    width, height, *_ = _identify(path, path)
    return width, height


def inspect_image(path: str | Path) -> ImageInfo:
    """Check that ``path`` is an image within the pixel limit that the training loader decodes completely.

    Returns:
        The stored size, mode and EXIF orientation.

    Raises:
        ImageFileError: Missing, zero-byte, not an image, above the pixel limit, truncated or corrupt; the message
            names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: image file not found")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageFileError(f"{path}: cannot read the file ({err})") from err
    if not data:
        raise ImageFileError(f"{path}: zero-byte file")
    width, height, mode, image_format, orientation = _identify(io.BytesIO(data), path)
    if width < 1 or height < 1:
        raise ImageFileError(f"{path}: image has no pixels ({width}x{height})")
    check_image_pixels(path, width, height)
    pixels = _decode(data)
    if pixels is None:
        raise ImageFileError(f"{path}: truncated or corrupt image (OpenCV cannot decode it)")
    if pixels.shape[:2] != (height, width):
        raise ImageFileError(
            f"{path}: OpenCV decodes the image as {pixels.shape[1]}x{pixels.shape[0]} pixels but its header says "
            f"{width}x{height}"
        )
    if image_format == "JPEG":
        _check_jpeg_complete(path, data, pixels)
    return ImageInfo(width, height, mode, orientation)


def decode_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file as (H, W, 3) uint8 RGB in stored orientation (see the module docstring).

    Raises:
        ImageFileError: OpenCV cannot decode the file.
    """
    bgr = cv2.imread(str(path), _IMREAD_FLAGS)
    if bgr is None:
        raise ImageFileError(f"{path}: cannot decode the image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _identify(source: Path | BinaryIO, path: Path) -> tuple[int, int, str, str | None, int]:
    """``(width, height, mode, format, EXIF orientation)`` from the header; errors name ``path``."""
    try:
        with _open_without_pil_limit(source) as image:
            return image.width, image.height, image.mode, image.format, _orientation(image)
    except UnidentifiedImageError as err:
        raise ImageFileError(f"{path}: not an image file (or a format PIL cannot identify)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{path}: truncated or corrupt image ({err})") from err


def _open_without_pil_limit(source: Path | BinaryIO) -> Image.Image:
    """``PIL.Image.open`` (which reads the header only) without PIL's own pixel limit, replaced by ours.

    PIL refuses a header that declares more than ``2 * Image.MAX_IMAGE_PIXELS`` pixels before its size can be read,
    whatever limit is set here. Such a (rare) header is read again with PIL's limit lifted; the limit is a
    process-wide setting, so it is lifted under a lock and only while the header is read.
    """
    try:
        return Image.open(source)
    except Image.DecompressionBombError:
        with _PIL_LIMIT_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(source)
            finally:
                Image.MAX_IMAGE_PIXELS = saved


def _decode(data: bytes) -> np.ndarray | None:
    """Decode like :func:`decode_rgb` (OpenCV, same flags; BGR), from the file's bytes; ``None`` if it fails."""
    try:
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _IMREAD_FLAGS)
    except cv2.error:
        return None


def _check_jpeg_complete(path: Path, data: bytes, pixels: np.ndarray) -> None:
    """Raise if the image data of a JPEG was cut short (see :mod:`centernet.data.jpeg`)."""
    try:
        layout = read_jpeg_layout(data)
    except ValueError as err:
        raise ImageFileError(f"{path}: truncated or corrupt image ({err})") from err
    # A baseline JPEG cut short decodes as grey from the cut to its last pixel. The probe costs a second decode, so
    # for baseline files it runs only when the last pixel is that grey.
    if layout.grey_when_cut and not (pixels[-1, -1] == _CUT_JPEG_GREY).all():
        return
    probed = _decode(probe(data, layout))
    if probed is None or not np.array_equal(probed, pixels):
        raise ImageFileError(
            f"{path}: truncated or corrupt image (the JPEG image data stops short; the decoder would fill the rest "
            "with grey)"
        )


def _orientation(image: Image.Image) -> int:
    if image.format == "PNG" and "exif" not in image.info:
        # An eXIf chunk is not before the pixel data: PIL would decode the whole image to look for one after it.
        return 0
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 0))
    except Exception:  # a malformed EXIF block does not make the pixels unusable
        return 0
