"""Inputs of inference: image files, folders, glob patterns, videos, arrays, PIL images and tensors.

Everything becomes an (H, W, 3) RGB image: ``uint8`` in [0, 255] (files, arrays, PIL images, uint8 tensors)
or ``float32`` in [0, 1] (float tensors, as torchvision models take them).
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from centernet.data.imagefile import check_image_pixels, decode_rgb, read_image_size

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoInfo",
    "as_rgb",
    "expand_inputs",
    "is_video",
    "list_images",
    "read_rgb",
    "read_video",
    "video_info",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
_GLOB_CHARS = set("*?[")


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB uint8, refusing one above the pixel limit before decoding it.

    The limit is training's (``CENTERNET_MAX_IMAGE_PIXELS``, see :mod:`centernet.data.imagefile`), so a small file
    that declares a huge size cannot exhaust the memory. EXIF orientation is ignored, as in training: boxes refer to
    the stored pixels.

    Raises:
        ImageFileError: Missing, not an image, above the pixel limit, or undecodable; the message names the file.
    """
    width, height = read_image_size(path)
    check_image_pixels(path, width, height)
    return decode_rgb(path)


def list_images(source: str | Path) -> list[Path]:
    """Image files of ``source``: the file itself, the images of a folder (sorted, non-recursive), or the
    images matching a glob pattern such as ``data/*.jpg`` or ``data/**/*.png`` (sorted)."""
    text = str(source)
    if _GLOB_CHARS & set(text) and not Path(text).exists():
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{text}: the pattern matches no image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return [source]


def is_video(path: str | Path) -> bool:
    """Whether ``path`` names a video file (by its suffix)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """Frame rate, frame size (pixels) and frame count (as the container reports it, may be 0 if unknown)."""

    fps: float
    width: int
    height: int
    frames: int


def video_info(path: str | Path) -> VideoInfo:
    """Read a video's header; raises ``ValueError`` naming the file if OpenCV cannot open it."""
    capture = _open_video(path)
    try:
        return VideoInfo(
            fps=float(capture.get(cv2.CAP_PROP_FPS)) or 25.0,
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
            frames=max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))),
        )
    finally:
        capture.release()


def read_video(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of a video as (H, W, 3) RGB uint8, in order."""
    capture = _open_video(path)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def _open_video(path: str | Path) -> cv2.VideoCapture:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: OpenCV cannot open this file as a video")
    return capture


def expand_inputs(images: Any) -> list[Any]:
    """Flatten what ``Detector.predict`` accepts into a list of single images (paths or in-memory images).

    Accepted: a path (file, folder or glob pattern), an (H, W, 3) array or an (N, H, W, 3) stack, a PIL image,
    a (3, H, W) or (N, 3, H, W) tensor, or a list/tuple of any of these (a folder inside a list expands too).
    """
    if isinstance(images, (str, Path)):
        return list(list_images(images))
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, torch.Tensor):
        return list(images) if images.ndim == 4 else [images]
    if _is_pil(images):
        return [images]
    if isinstance(images, (list, tuple)):
        items: list[Any] = []
        for item in images:
            items += expand_inputs(item) if isinstance(item, (list, tuple)) or _is_dir(item) else [item]
        return items
    raise TypeError(
        f"cannot predict on a {type(images).__name__}: give a path, a folder, a glob pattern, an RGB uint8 array, "
        "a PIL image, a float tensor in [0, 1], or a list of these"
    )


def as_rgb(item: Any) -> np.ndarray:
    """One image as (H, W, 3) RGB, ``uint8`` or ``float32`` in [0, 1]; errors name what is wrong."""
    if isinstance(item, (str, Path)):
        return read_rgb(item)
    if _is_pil(item):
        return np.asarray(item.convert("RGB"))
    if isinstance(item, torch.Tensor):
        if item.ndim != 3 or item.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) RGB tensor, got shape {tuple(item.shape)}")
        if item.dtype == torch.uint8:
            return item.permute(1, 2, 0).cpu().numpy()
        if not item.is_floating_point():
            raise ValueError(f"expected a float tensor in [0, 1] or a uint8 tensor, got dtype {item.dtype}")
        array = item.detach().permute(1, 2, 0).float().cpu().numpy()
        if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
            raise ValueError(
                f"float image tensors must hold RGB values in [0, 1], got [{array.min():.3g}, {array.max():.3g}]"
            )
        return np.ascontiguousarray(array.clip(0, 1))
    if isinstance(item, np.ndarray):
        if item.ndim != 3 or item.shape[2] != 3 or item.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) RGB uint8 array, got shape {item.shape} and dtype {item.dtype}")
        return item
    raise TypeError(f"cannot read an image from a {type(item).__name__}")


def _is_pil(item: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # Pillow is optional
        return False
    return isinstance(item, Image.Image)


def _is_dir(item: Any) -> bool:
    return isinstance(item, (str, Path)) and Path(item).is_dir()
