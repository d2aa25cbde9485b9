"""Checking and decoding image files: one policy for every dataset format.

- **Checks** (:func:`inspect_image`, run for every image before training): the file exists, is not empty, is an
  image PIL can identify, and is complete. JPEG and PNG are checked cheaply by their end marker (``FFD9`` /
  ``IEND``); a file without it, and any other format, is decoded fully, and a decoding error means the file is
  truncated or corrupt.
- **EXIF orientation is ignored**: boxes refer to the pixels as stored in the file, which is how pycocotools,
  COCO's own tools and PIL read them. :func:`inspect_image` reports the orientation tag so a dataset annotated
  on rotated images can be recognised (the size check then names the likely cause).
- **Colour**: :func:`decode_rgb` returns 8-bit RGB for every input: grayscale is replicated to three channels,
  the alpha channel of RGBA/LA is dropped, palette images are expanded, and 16-bit images keep their most
  significant byte (``value >> 8``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["ImageFileError", "ImageInfo", "decode_rgb", "inspect_image"]

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # 90/270 degree rotations: stored width and height swap on display


class ImageFileError(OSError):
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


def inspect_image(path: str | Path) -> ImageInfo:
    """Check that ``path`` is a complete, decodable image and return its stored size.

    Raises:
        ImageFileError: Missing, zero-byte, not an image, truncated or corrupt; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"{path}: image file not found")
    if path.stat().st_size == 0:
        raise ImageFileError(f"{path}: zero-byte file")
    try:
        with Image.open(path) as image:
            info = ImageInfo(image.width, image.height, image.mode, _orientation(image))
            if not _has_end_marker(path, image.format):
                image.load()  # decodes everything: raises on missing or corrupt data
    except UnidentifiedImageError as err:
        raise ImageFileError(f"{path}: not an image file (or a format PIL cannot identify)") from err
    except Image.DecompressionBombError as err:
        raise ImageFileError(f"{path}: {err} (raise PIL.Image.MAX_IMAGE_PIXELS to accept images this large)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageFileError(f"{path}: truncated or corrupt image ({err})") from err
    if info.width < 1 or info.height < 1:
        raise ImageFileError(f"{path}: image has no pixels ({info.width}x{info.height})")
    return info


def decode_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file as (H, W, 3) uint8 RGB in stored orientation (see the module docstring).

    Raises:
        ImageFileError: OpenCV cannot decode the file.
    """
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None:
        raise ImageFileError(f"{path}: cannot decode the image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 0))
    except Exception:  # a malformed EXIF block does not make the pixels unusable
        return 0


def _has_end_marker(path: Path, image_format: str | None) -> bool:
    """True if a JPEG ends with EOI or a PNG with its IEND chunk (cheap completeness check)."""
    if image_format not in ("JPEG", "PNG"):
        return False
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 16))
        tail = f.read()
    if image_format == "JPEG":
        return tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    return b"IEND" in tail[-12:]
