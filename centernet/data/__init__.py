"""CenterNet data: formats (COCO, Pascal VOC, YOLO) -> records -> validation -> dataset -> transforms -> collate,
the Lightning DataModule and the built-in synthetic datasets.

Names are imported on first use, so that reading an image (:mod:`centernet.data.imagefile`) does not load
Lightning or albumentations.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_transform_from_config": "augment",
    "CocoDetection": "coco",
    "parse_coco": "coco",
    "read_categories": "coco",
    "collate_detections": "collate",
    "CenterNetDataModule": "datamodule",
    "DetectionDataset": "dataset",
    "ImageFileError": "imagefile",
    "check_image_pixels": "imagefile",
    "decode_rgb": "imagefile",
    "inspect_image": "imagefile",
    "max_image_pixels": "imagefile",
    "read_image_size": "imagefile",
    "Mosaic": "mosaic",
    "DatasetError": "records",
    "DetectionSource": "records",
    "ImageRecord": "records",
    "Problems": "records",
    "SHAPE_CATEGORY_IDS": "synthetic",
    "SHAPE_CLASSES": "synthetic",
    "ShapesImage": "synthetic",
    "ShapesPaths": "synthetic",
    "ensure_shapes_dataset": "synthetic",
    "generate_shapes_image": "synthetic",
    "DetectionTransform": "transforms",
    "build_eval_transform": "transforms",
    "build_train_transform": "transforms",
    "DataWarning": "validation",
    "validate_source": "validation",
    "discover_voc_classes": "voc",
    "parse_voc": "voc",
    "YoloData": "yolo",
    "parse_coco_video": "coco_video",
    "write_coco_video": "coco_video",
    "parse_mot": "mot",
    "write_mot_results": "mot",
    "write_mot_sequence": "mot",
    "ensure_moving_shapes": "moving_shapes",
    "PriorNoise": "prior_heatmap",
    "render_prior_heatmap": "prior_heatmap",
    "ImagePairs": "tracking_pairs",
    "VideoPairs": "tracking_pairs",
    "collate_tracking": "tracking_pairs",
    "TrackingDataModule": "tracking_datamodule",
    "VideoFrame": "video_records",
    "VideoSequence": "video_records",
    "VideoSource": "video_records",
    "parse_yolo": "yolo",
    "read_yolo_yaml": "yolo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"centernet.data.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'centernet.data' has no attribute {name!r}")
