"""Label statistics of a validated dataset: boxes per class, box sizes, boxes per image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from centernet.data.records import DetectionSource

__all__ = ["LabelStatistics", "label_statistics"]

# COCO's area ranges (pixels^2 in the original image): small < 32^2 <= medium < 96^2 <= large.
_SMALL, _LARGE = 32**2, 96**2


@dataclass(frozen=True)
class LabelStatistics:
    """Counts and distributions over every box of a dataset (crowd regions included, as annotated).

    Attributes:
        class_names: Names, index = label.
        images: Number of images.
        empty_images: Images without any box.
        boxes_per_class: (C,) number of boxes of each class.
        images_per_class: (C,) number of images with at least one box of the class.
        boxes_per_image: (images,) number of boxes in each image.
        sizes: (n, 2) box width and height in pixels of the original images.
        relative_sizes: (n, 2) box width and height relative to the image size.
        relative_centres: (n, 2) box centre x, y relative to the image size.
        labels: (n,) label of each box.
    """

    class_names: list[str]
    images: int
    empty_images: int
    boxes_per_class: np.ndarray
    images_per_class: np.ndarray
    boxes_per_image: np.ndarray
    sizes: np.ndarray
    relative_sizes: np.ndarray
    relative_centres: np.ndarray
    labels: np.ndarray

    @property
    def boxes(self) -> int:
        return int(self.boxes_per_class.sum())

    def area_ranges(self) -> dict[str, int]:
        """Number of boxes in COCO's small / medium / large area ranges (original pixels)."""
        area = self.sizes.prod(axis=1)
        return {
            "small": int((area < _SMALL).sum()),
            "medium": int(((area >= _SMALL) & (area < _LARGE)).sum()),
            "large": int((area >= _LARGE).sum()),
        }


def label_statistics(source: DetectionSource) -> LabelStatistics:
    """Statistics of a validated source (boxes ``x1, y1, x2, y2`` in pixels, sizes known)."""
    num_classes = source.num_classes
    per_class = np.zeros(num_classes, dtype=np.int64)
    images_per_class = np.zeros(num_classes, dtype=np.int64)
    sizes, relative_sizes, centres, labels = [], [], [], []
    for record in source.records:
        boxes = np.asarray(record.boxes, dtype=np.float64).reshape(-1, 4)
        wh = boxes[:, 2:] - boxes[:, :2]
        image_wh = np.array([record.width, record.height], dtype=np.float64)
        sizes.append(wh)
        relative_sizes.append(wh / image_wh)
        centres.append((boxes[:, :2] + boxes[:, 2:]) / 2 / image_wh)
        labels.append(record.labels)
        per_class += np.bincount(record.labels, minlength=num_classes)
        images_per_class[np.unique(record.labels)] += 1
    counts = np.array([len(record) for record in source.records], dtype=np.int64)
    return LabelStatistics(
        class_names=list(source.class_names),
        images=len(source.records),
        empty_images=int((counts == 0).sum()),
        boxes_per_class=per_class,
        images_per_class=images_per_class,
        boxes_per_image=counts,
        sizes=np.concatenate(sizes).reshape(-1, 2) if sizes else np.zeros((0, 2)),
        relative_sizes=np.concatenate(relative_sizes).reshape(-1, 2) if sizes else np.zeros((0, 2)),
        relative_centres=np.concatenate(centres).reshape(-1, 2) if sizes else np.zeros((0, 2)),
        labels=np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, dtype=np.int64),
    )
