"""CenterNet data: datasets, transforms, collate and the LightningDataModule."""

from centernet.data.coco import CocoDetection, read_categories
from centernet.data.collate import collate_detections
from centernet.data.datamodule import CenterNetDataModule
from centernet.data.synthetic import (
    SHAPE_CATEGORY_IDS,
    SHAPE_CLASSES,
    ShapesImage,
    ShapesPaths,
    default_cache_root,
    ensure_shapes_dataset,
    generate_shapes_image,
)
from centernet.data.transforms import BBOX_FORMAT, DetectionTransform, build_eval_transform, build_train_transform

__all__ = [
    "BBOX_FORMAT",
    "SHAPE_CATEGORY_IDS",
    "SHAPE_CLASSES",
    "CenterNetDataModule",
    "CocoDetection",
    "DetectionTransform",
    "ShapesImage",
    "ShapesPaths",
    "build_eval_transform",
    "build_train_transform",
    "collate_detections",
    "default_cache_root",
    "ensure_shapes_dataset",
    "generate_shapes_image",
    "read_categories",
]
