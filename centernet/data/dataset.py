"""One Dataset for every format: validated :class:`DetectionSource` records -> samples of the batch contract."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from centernet.boxes import absolute_to_relative, xyxy_to_cxcywh
from centernet.data.crops import NativeCrops
from centernet.data.imagefile import ImageFileError, decode_rgb
from centernet.data.mosaic import Mosaic
from centernet.data.records import DetectionSource

__all__ = ["CROP_CACHE_BYTES", "DetectionDataset"]

# Decoded pixels that native-resolution training keeps per loader process (see DetectionDataset._load_cached).
CROP_CACHE_BYTES = 256 * 1024 * 1024


class DetectionDataset(Dataset):
    """Detection samples from validated records (see :func:`centernet.data.validation.validate_source`).

    Args:
        source: Validated records: decoded sizes, ``x1, y1, x2, y2`` pixel boxes inside their image.
        transform: Called as ``transform(image=, bboxes=, labels=)`` with an (H, W, 3) uint8 RGB image, (n, 4)
            float32 ``x1, y1, x2, y2`` pixel boxes and (n,) int64 labels, and for keypoint data ``keypoints=``, the
            boxes' (n, K, 3) joints in the same pixels; returns a dict with the same keys and optionally ``scale``
            (see :mod:`centernet.data.transforms`). ``None``: the image is used as is.
        mosaic: Optional :class:`Mosaic` applied before ``transform`` (training only).
        crops: Optional :class:`NativeCrops` (native-resolution training): the dataset then holds every image's
            crops of the epoch (their number follows the image's area), each a random ``image_size`` crop at the
            image's own scale, taken before ``mosaic`` and ``transform``. A mosaic then combines native crops of
            half that side, so that it keeps the native scale too.

    Keypoint data (``source.keypoints``): every loader (:meth:`load`, :meth:`load_crop`, ``mosaic``) returns the
    boxes' joints as a fourth element, moved with the pixels and the boxes, so that they reach ``transform`` in the
    frame of the image they come with.

    Attributes:
        class_names: Category names, index = contiguous label.
        category_ids: The dataset's category ids, index = contiguous label.
        image_ids: Image ids, index = sample index.
    """

    def __init__(
        self,
        source: DetectionSource,
        transform: Callable[..., dict[str, Any]] | None = None,
        mosaic: Mosaic | None = None,
        crops: NativeCrops | None = None,
    ) -> None:
        if any(record.normalized for record in source.records):
            raise ValueError(f"{source.description}: records must be validated (validate_source) first")
        self.source = source
        self.transform = transform
        self.mosaic = mosaic
        self.class_names = list(source.class_names)
        self.category_ids = list(source.category_ids)
        self.image_ids = [record.image_id for record in source.records]
        self.crops = crops
        self._crop_rng = np.random.default_rng()

    @property
    def crops(self) -> NativeCrops | None:
        return self._crops

    @crops.setter
    def crops(self, crops: NativeCrops | None) -> None:
        self._crops = crops
        self._half_crops = None
        self._crop_starts = np.zeros(1, dtype=np.int64)
        if crops is not None:
            counts = [crops.count(record.height, record.width) for record in self.source.records]
            self._crop_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)  # (images + 1,)
            half = crops.image_size // 2
            self._half_crops = NativeCrops(half, crops.scale_range, crops.object_bias, crops.min_visibility)

    def locate(self, index: int) -> tuple[int, int]:
        """Sample ``index`` -> ``(image index, crop of that image)``; the crop is 0 without native crops."""
        if self._crops is None:
            return index, 0
        image = int(np.searchsorted(self._crop_starts, index, side="right")) - 1
        return image, index - int(self._crop_starts[image])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        if self._crops is not None:
            return int(self._crop_starts[-1])
        return len(self.source.records)

    def set_random_seed(self, seed: int | None) -> None:
        """Reseed the augmentations (the transform's own random state and the mosaic's)."""
        if hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        if self.mosaic is not None:
            self.mosaic.set_random_seed(None if seed is None else seed + 1)
        self._crop_rng = np.random.default_rng(None if seed is None else seed + 2)

    def load_crop(self, index: int, half: bool = False) -> tuple[np.ndarray, ...]:
        """Sample ``index``'s native-resolution crop (see :class:`NativeCrops`), as :meth:`load` returns images
        (joints included, in crop pixels); ``half``: a crop of half the side (the pieces of a native mosaic)."""
        image_index, cell = self.locate(index)
        crops = self._half_crops if half else self._crops
        image, boxes, labels, *keypoints = self._load_cached(image_index)  # keypoints: [] or [(n, K, 3)]
        return crops(image, boxes, labels, cell, self._crop_rng, keypoints[0] if keypoints else None)

    def _load_cached(self, index: int) -> tuple[np.ndarray, ...]:
        """:meth:`load` through a small cache of decoded images (per process, least recently used first out).

        A large image gives many crops per epoch, and decoding a 2,048 px PNG costs more than cropping it tens of
        times; the cache keeps at most :data:`CROP_CACHE_BYTES` of pixels, so that memory stays bounded.
        """
        cache = self.__dict__.setdefault("_decoded", OrderedDict())
        if index in cache:
            cache.move_to_end(index)
            return cache[index]
        loaded = self.load(index)
        cache[index] = loaded
        while len(cache) > 1 and sum(item[0].nbytes for item in cache.values()) > CROP_CACHE_BYTES:
            cache.popitem(last=False)
        return loaded

    def load(self, index: int) -> tuple[np.ndarray, ...]:
        """The image and its training targets, untransformed.

        Returns:
            ``(image, boxes, labels)``: (H, W, 3) uint8 RGB; (n, 4) float32 ``x1, y1, x2, y2`` pixels; (n,) int64
            labels. Keypoint data: a fourth element, the boxes' (n, K, 3) float32 joints (x, y pixels, visibility).
            Crowd regions are not targets and are left out.
        """
        record = self.source.records[index]
        image = decode_rgb(record.path)
        if image.shape[:2] != (record.height, record.width):
            raise ImageFileError(
                f"{record.path}: decoded as {image.shape[1]}x{image.shape[0]} pixels, but it was "
                f"{record.width}x{record.height} when the dataset was validated (did the file change?)"
            )
        targets = record.iscrowd == 0
        loaded = (image, record.boxes[targets].astype(np.float32), record.labels[targets])
        return loaded if self.source.keypoints is None else (*loaded, self._keypoints(record))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample of the batch contract.

        Returns:
            dict with ``image`` (3, H, W) float32 RGB in [0, 1]; ``bboxes`` (n, 4) float32 ``cx, cy, w, h``
            relative to the transformed image; ``labels`` (n,) int64; ``image_id`` int; ``orig_size`` (h, w) ints
            of the image file; ``scale`` (sx, sy) floats (transformed pixels per original pixel; (1, 1) for a
            mosaic). Keypoint data: ``keypoints`` (n, K, 3) float32 x, y relative to the transformed image and
            visibility (0: not labelled) and ``gt_keypoints`` (m, K, 3) in original pixels. For evaluation in
            original pixels, untouched by the transform, every valid annotation of the
            image (crowd included, clipped to the image): ``gt_boxes`` (m, 4) float32 ``x1, y1, x2, y2`` pixels,
            ``gt_labels`` (m,) int64, ``gt_iscrowd`` (m,) int64 and ``gt_area`` (m,) float32 (COCO's ``area``,
            else ``w * h``).
        """
        image_index, _ = self.locate(index)
        record = self.source.records[image_index]
        if self._crops is not None and self.mosaic is not None:
            loaded = self.mosaic(index, lambda i: self.load_crop(i, half=True), len(self))
            if loaded[0].shape[0] != self._crops.image_size:  # no mosaic this time: a full-size crop
                loaded = self.load_crop(index)
        elif self._crops is not None:
            loaded = self.load_crop(index)
        elif self.mosaic is not None:
            loaded = self.mosaic(index, self.load, len(self))
        else:
            loaded = self.load(index)
        # The joints come from the loader, in the frame of its image: the record's are in whole-image pixels.
        image, boxes, labels, *joints = loaded
        keypoints = joints[0] if joints else None
        scale = (1.0, 1.0)
        if self.transform is not None:
            extra = {"keypoints": keypoints} if keypoints is not None else {}
            out = self.transform(image=image, bboxes=boxes, labels=labels, **extra)
            image = out["image"]
            keypoints = out.get("keypoints")
            boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
            sx, sy = out.get("scale", (1.0, 1.0))
            scale = (float(sx), float(sy))
        cxcywh = absolute_to_relative(xyxy_to_cxcywh(boxes), image.shape[:2])  # (n, 4) relative to the input
        sample = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0),
            "bboxes": torch.from_numpy(np.ascontiguousarray(cxcywh, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            "image_id": int(record.image_id),
            "orig_size": (int(record.height), int(record.width)),
            "scale": scale,
            "gt_boxes": torch.from_numpy(record.boxes.astype(np.float32)),
            "gt_labels": torch.from_numpy(record.labels.astype(np.int64)),
            "gt_iscrowd": torch.from_numpy(record.iscrowd.astype(np.int64)),
            "gt_area": torch.from_numpy(record.area.astype(np.float32)),
        }
        if keypoints is not None:
            height, width = image.shape[:2]
            num_joints = len(self.source.keypoints["joint_names"])
            relative = np.asarray(keypoints, dtype=np.float32).reshape(len(boxes), num_joints, 3) / np.array(
                [width, height, 1.0], dtype=np.float32
            )
            sample["keypoints"] = torch.from_numpy(np.ascontiguousarray(relative))  # (n, K, 3) x, y relative
            sample["gt_keypoints"] = torch.from_numpy(record.keypoints.astype(np.float32))  # (m, K, 3) pixels
        return sample

    def _keypoints(self, record: Any) -> np.ndarray:
        """(n, K, 3) joints of the record's training targets in whole-image pixels (crowd regions left out, as in
        :meth:`load`)."""
        num_joints = len(self.source.keypoints["joint_names"])
        return record.keypoints[record.iscrowd == 0].astype(np.float32).reshape(-1, num_joints, 3)
