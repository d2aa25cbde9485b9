"""The data validation policy, applied to every image and box before training starts.

- A box partly outside its image is clipped to it; :attr:`Problems.clipped` counts them.
- A box with NaN/inf coordinates, or with zero or negative area after clipping, is dropped with a
  :class:`DataWarning` naming the annotation file, the image, the box index and where it was read.
- A missing, zero-byte, truncated or non-image file is an error naming the file, raised before training
  (``invalid_images="error"``), or the image is skipped and counted (``invalid_images="skip"``).
- The decoded size must match the size the annotation records (COCO ``width``/``height``, VOC ``<size>``);
  a mismatch is treated like an unusable file (error, or skipped). EXIF orientation is ignored (see
  :mod:`centernet.data.imagefile`); when the recorded size is the rotated one, the message says so.
- A labelled joint (keypoint datasets) with non-finite coordinates or outside its image becomes unlabelled with
  a :class:`DataWarning` naming the file, the object and the joint (:mod:`centernet.data.keypoints`).
- Unknown classes are errors raised by the parsers, which know the file and line.
- A split without images is an error naming its annotation file: nothing would be trained or validated (training
  would end at once with "no training batches"). So is a split whose every image was skipped as unusable.

Images are checked in a thread pool (the checks are I/O and decoding, which release the GIL).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np

from centernet.boxes import clip_xyxy, cxcywh_to_xyxy, relative_to_absolute
from centernet.data.imagefile import ImageFileError, ImageInfo, inspect_image
from centernet.data.keypoints import apply_keypoint_policy
from centernet.data.records import DetectionSource, ImageRecord, Problems

__all__ = ["DataWarning", "InvalidImagePolicy", "validate_source"]

InvalidImagePolicy = Literal["error", "skip"]
_MAX_WARNINGS = 20  # individual warnings per source; the rest are counted in one summary warning


class DataWarning(UserWarning):
    """A problem in the data that was handled by the policy (a dropped box); the message names the file."""


def validate_source(
    source: DetectionSource,
    invalid_images: InvalidImagePolicy = "error",
    problems: Problems | None = None,
    threads: int | None = None,
) -> tuple[DetectionSource, Problems]:
    """Check every image file and apply the box policy.

    Args:
        source: Parsed records (boxes may be normalized, sizes may be unknown).
        invalid_images: ``"error"``: an unusable image is an error; ``"skip"``: it is left out and counted.
        problems: Collector to add to (e.g. the parser's); a new one if ``None``.
        threads: Threads checking files; default ``min(16, cpu_count + 4)``.

    Returns:
        ``(validated, problems)``: records with decoded sizes, ``x1, y1, x2, y2`` pixel boxes clipped to the
        image, dropped boxes removed, skipped images left out; the caller decides what to do with
        ``problems.errors`` (see :meth:`Problems.raise_if_errors`), which include an empty split.
    """
    if invalid_images not in ("error", "skip"):
        raise ValueError(f"invalid_images must be 'error' or 'skip', got {invalid_images!r}")
    problems = problems if problems is not None else Problems()
    threads = threads or min(16, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        checked = list(pool.map(_check_file, source.records))
    records: list[ImageRecord] = []
    first_dropped = len(problems.dropped)
    for record, result in zip(source.records, checked, strict=True):
        if isinstance(result, ImageInfo):
            message = _size_mismatch(record, result)
            if message is None:
                if result.orientation not in (0, 1):
                    problems.exif_rotated.append(str(record.path))
                records.append(_apply_box_policy(record, result, problems))
                continue
        else:
            message = str(result)
        if invalid_images == "skip":
            problems.skipped.append(message)
        else:
            problems.error(message)
    if not source.records:
        problems.error(f"{source.description}: no images (the split is empty)")
    elif not records and invalid_images == "skip":
        problems.error(
            f"{source.description}: no usable images: all {len(source.records)} were skipped as unusable "
            "(invalid_images: skip; see the skipped images)"
        )
    _warn(problems.dropped[first_dropped:], source.description)
    if problems.skipped:
        warnings.warn(
            f"{source.description}: skipped {len(problems.skipped)} unusable image(s), e.g. {problems.skipped[0]}",
            DataWarning,
            stacklevel=2,
        )
    return dataclasses.replace(source, records=records), problems


def _check_file(record: ImageRecord) -> ImageInfo | ImageFileError:
    try:
        return inspect_image(record.path)
    except ImageFileError as err:
        return ImageFileError(f"{err} (listed in {record.source})")


def _size_mismatch(record: ImageRecord, info: ImageInfo) -> str | None:
    if record.width is None or record.height is None or (record.width, record.height) == (info.width, info.height):
        return None
    message = (
        f"{record.path}: the decoded image is {info.width}x{info.height} pixels but {record.source} records "
        f"{record.width}x{record.height}"
    )
    if info.transposed and (record.width, record.height) == (info.height, info.width):
        message += (
            f" (the file has EXIF orientation {info.orientation}: the annotation was made on the rotated image, "
            "but boxes must refer to the stored pixels; re-save the image upright)"
        )
    return message


def _apply_box_policy(record: ImageRecord, info: ImageInfo, problems: Problems) -> ImageRecord:
    """Clip boxes to the image, drop non-finite and empty ones; returns a record in ``x1, y1, x2, y2`` pixels."""
    width, height = info.width, info.height
    boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
    if record.normalized:
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, dropped below
            boxes = cxcywh_to_xyxy(relative_to_absolute(boxes, (height, width)))
    finite = np.isfinite(boxes).all(axis=1)
    clipped = clip_xyxy(boxes, (height, width))
    positive = (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    keep = finite & positive
    problems.clipped += int((keep & (clipped != boxes).any(axis=1)).sum())
    for i in np.flatnonzero(~keep):
        values = ", ".join(f"{v:g}" for v in boxes[i])
        reason = "has non-finite coordinates" if not finite[i] else f"has no area inside the {width}x{height} image"
        problems.dropped.append(
            f"{record.source}: box {i} ({record.refs[i]}) of {record.path.name} [{values}] {reason}; dropped"
        )
    clipped = clipped[keep]
    area = np.asarray(record.area, dtype=np.float32)[keep]
    missing = ~np.isfinite(area)
    area[missing] = ((clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1]))[missing]
    refs = [ref for ref, k in zip(record.refs, keep, strict=True) if k]
    keypoints = None
    if record.keypoints is not None:
        keypoints = np.asarray(record.keypoints, dtype=np.float64)[keep]  # (n, K, 3)
        if record.normalized:
            keypoints = keypoints * np.array([width, height, 1.0])
        where = f"{record.source} ({record.path.name})"
        keypoints = apply_keypoint_policy(keypoints, (height, width), refs, where, problems.dropped)
    return dataclasses.replace(
        record,
        width=width,
        height=height,
        boxes=clipped,
        labels=np.asarray(record.labels, dtype=np.int64)[keep],
        iscrowd=np.asarray(record.iscrowd, dtype=np.int64)[keep],
        area=area,
        refs=refs,
        normalized=False,
        keypoints=keypoints,
    )


def _warn(messages: list[str], description: str) -> None:
    for message in messages[:_MAX_WARNINGS]:
        warnings.warn(message, DataWarning, stacklevel=3)
    if len(messages) > _MAX_WARNINGS:
        warnings.warn(
            f"{description}: {len(messages) - _MAX_WARNINGS} more boxes dropped (run `centernet data check` "
            "for the full list)",
            DataWarning,
            stacklevel=3,
        )
