"""CenterNet data: formats (COCO, Pascal VOC, YOLO), validation, datasets, transforms, collate and the DataModule."""

from centernet.data.augment import build_transform_from_config
from centernet.data.coco import CocoDetection, parse_coco, read_categories
from centernet.data.collate import collate_detections
from centernet.data.datamodule import CenterNetDataModule
from centernet.data.dataset import DetectionDataset
from centernet.data.imagefile import ImageFileError, decode_rgb, inspect_image
from centernet.data.mosaic import Mosaic
from centernet.data.records import DatasetError, DetectionSource, ImageRecord, Problems
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
from centernet.data.validation import DataWarning, validate_source
from centernet.data.voc import discover_voc_classes, parse_voc
from centernet.data.yolo import YoloData, parse_yolo, read_yolo_yaml

__all__ = [
    "BBOX_FORMAT",
    "SHAPE_CATEGORY_IDS",
    "SHAPE_CLASSES",
    "CenterNetDataModule",
    "CocoDetection",
    "DataWarning",
    "DatasetError",
    "DetectionDataset",
    "DetectionSource",
    "DetectionTransform",
    "ImageFileError",
    "ImageRecord",
    "Mosaic",
    "Problems",
    "ShapesImage",
    "ShapesPaths",
    "YoloData",
    "build_eval_transform",
    "build_transform_from_config",
    "build_train_transform",
    "collate_detections",
    "decode_rgb",
    "default_cache_root",
    "discover_voc_classes",
    "ensure_shapes_dataset",
    "generate_shapes_image",
    "inspect_image",
    "parse_coco",
    "parse_voc",
    "parse_yolo",
    "read_categories",
    "read_yolo_yaml",
    "validate_source",
]
