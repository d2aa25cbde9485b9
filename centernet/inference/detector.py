"""Inference: load a trained detector and predict on images, returning boxes in original-image pixels.

Two preprocessing modes:

- resize (default): as the evaluation transform does, resize keeping the aspect ratio so the longer side equals
  the input size, pad bottom/right with black to a square;
- keep resolution (``keep_resolution=True``, how the CenterNet paper evaluates): each image at its own size,
  padded bottom/right to a multiple of 32.

Boxes are mapped back with per-axis scales computed from the exact resized size, so the resize and the padding
are undone exactly. The network runs on any :mod:`centernet.inference.backends` backend: the eager model (from a
Lightning checkpoint), or an exported TorchScript / ONNX file with decoding inside.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from centernet.evaluation import coco_results
from centernet.inference.backends import Backend, EagerBackend, OnnxRuntimeBackend, TorchScriptBackend
from centernet.inference.export import read_metadata
from centernet.inference.inputs import IMAGE_SUFFIXES, as_rgb, expand_inputs, list_images, read_rgb
from centernet.inference.onnx_cache import cached_onnx_export
from centernet.inference.tta import class_aware_nms, merge_flipped_maps
from centernet.model import CenterNet
from centernet.tasks.detection.decode import split_detections
from centernet.training.module import CenterNetModule
from centernet.viz import draw_detections

__all__ = ["IMAGE_SUFFIXES", "Detector", "Prediction", "list_images", "read_rgb"]

_STRIDE_MULTIPLE = 32
_EXPORTED_SUFFIXES = {".onnx": "onnxruntime", ".pt": "torchscript", ".torchscript": "torchscript", ".ts": "torchscript"}


@dataclass
class Prediction:
    """Detections of one image, in that image's original pixels (torchvision's contract plus names and ids).

    Attributes:
        boxes: (K, 4) float32 xyxy.
        scores: (K,) float32 confidences, descending.
        labels: (K,) int64 contiguous class indices.
        names: K class names.
        category_ids: K dataset category ids (the ids of the training annotations).
        image_size: (H, W) of the original image.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: list[str]
    category_ids: list[int]
    image_size: tuple[int, int] | None = None

    def to_coco(self, image_id: int, extra: dict[str, object] | None = None) -> list[dict[str, object]]:
        """COCO results entries (``bbox`` x, y, w, h in original pixels, the dataset's ``category_id``)."""
        return coco_results(image_id, self.boxes, self.scores, self.category_ids, extra)

    def to_yolo(self, with_scores: bool = False) -> list[str]:
        """YOLO txt lines ``label cx cy w h [score]``, coordinates relative to the image, contiguous labels."""
        if self.image_size is None:
            raise ValueError("to_yolo needs the prediction's image_size (H, W)")
        height, width = self.image_size
        lines = []
        for box, label, score in zip(self.boxes, self.labels, self.scores, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            values = [(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]
            line = f"{int(label)} " + " ".join(f"{v:.6f}" for v in values)
            lines.append(f"{line} {float(score):.5f}" if with_scores else line)
        return lines

    def draw(self, image: np.ndarray) -> np.ndarray:
        """A copy of ``image`` ((H, W, 3) RGB uint8, the original image) with the detections drawn."""
        return draw_detections(image, self.boxes, self.labels, self.scores, _names_by_label(self))


def _names_by_label(prediction: Prediction) -> dict[int, str]:
    return {int(label): name for label, name in zip(prediction.labels, prediction.names, strict=True)}


class Detector:
    """A trained CenterNet ready for inference.

    Args:
        model: The network, or a ready :class:`~centernet.inference.backends.Backend` (an exported file).
        class_names: Names indexed by contiguous label.
        category_ids: Dataset category id of each contiguous label.
        image_size: Side of the square network input in resize mode (a multiple of 32).
        device: Where the network runs.
        half: float16 inference (CUDA only; a clear error elsewhere).
        channels_last: Run the eager model in channels-last memory format; ``None``: on the CPU, where it is
            faster (see ``benchmarks/compare.py``).
    """

    def __init__(
        self,
        model: CenterNet | Backend,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: int,
        device: str | torch.device = "cpu",
        half: bool = False,
        channels_last: bool | None = None,
    ) -> None:
        if image_size % _STRIDE_MULTIPLE:
            raise ValueError(f"image_size must be a multiple of {_STRIDE_MULTIPLE}, got {image_size}")
        if len(class_names) != len(category_ids):
            raise ValueError(f"{len(class_names)} class names but {len(category_ids)} category ids")
        self.backend = model if isinstance(model, Backend) else EagerBackend(model, device, half, channels_last)
        self.device = torch.device(device)
        self.class_names = list(class_names)
        self.category_ids = list(category_ids)
        self.image_size = image_size

    @property
    def model(self) -> CenterNet:
        """The eager network as it runs (BatchNorm folded into a copy of the model given; eager backends only)."""
        if not isinstance(self.backend, EagerBackend):
            raise AttributeError(f"a {self.backend.name} detector has no eager model")
        return self.backend.model

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        image_size: int | None = None,
        half: bool = False,
        channels_last: bool | None = None,
        backend: str = "eager",
    ) -> Detector:
        """Load a Lightning checkpoint written by ``centernet fit``; ``image_size`` defaults to the training size.

        ``backend="eager"`` runs the PyTorch model (``half`` and ``channels_last`` apply to it);
        ``"onnxruntime"`` exports the checkpoint to ONNX once (cached, see :mod:`centernet.inference.onnx_cache`) and runs
        it on ONNX Runtime, the fastest CPU path.
        """
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        if backend == "onnxruntime":
            if half:
                raise ValueError("half precision applies to the eager backend only")
            return cls.from_exported(cached_onnx_export(path, image_size), device, image_size)
        if backend != "eager":
            raise ValueError(f"backend must be 'eager' or 'onnxruntime' for a checkpoint, got {backend!r}")
        module = CenterNetModule.load_from_checkpoint(str(path), map_location="cpu")
        size = image_size or module.hparams.image_size
        return cls(module.model, module.class_names, module.category_ids, size, device, half, channels_last)

    @classmethod
    def from_exported(
        cls, path: str | Path, device: str | torch.device = "cpu", image_size: int | None = None
    ) -> Detector:
        """Load a file written by ``centernet export``: ``.onnx`` runs on ONNX Runtime, ``.torchscript``/``.pt``
        on TorchScript. ``image_size`` defaults to the export size (and must equal it for a fixed-size graph)."""
        path = Path(path)
        backend_name = _EXPORTED_SUFFIXES.get(path.suffix.lower())
        if backend_name is None:
            raise ValueError(f"{path}: unknown exported format; expected one of {sorted(_EXPORTED_SUFFIXES)}")
        meta = read_metadata(path)
        size = image_size or meta["image_size"]
        if not meta["dynamic"] and size != meta["image_size"]:
            raise ValueError(
                f"{path} was exported for {meta['image_size']} px inputs only; re-export with --dynamic to use {size}"
            )
        if backend_name == "onnxruntime":
            backend: Backend = OnnxRuntimeBackend(path, device, meta["dynamic"], meta["image_size"], meta["batch_size"])
        else:
            backend = TorchScriptBackend(path, device, meta["image_size"])
            backend.dynamic = meta["dynamic"]
        return cls(backend, meta["class_names"], meta["category_ids"], size, device)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", **kwargs: Any) -> Detector:
        """A ``.ckpt`` checkpoint or an exported ``.onnx`` / ``.torchscript`` / ``.pt`` file, by suffix."""
        if Path(path).suffix.lower() == ".ckpt":
            return cls.from_checkpoint(path, device, **kwargs)
        return cls.from_exported(path, device, **kwargs)

    def predict(
        self,
        images: Any,
        score_threshold: float = 0.3,
        batch_size: int = 8,
        keep_resolution: bool = False,
        flip: bool = False,
        scales: Sequence[float] | None = None,
        nms_iou: float | None = None,
        max_detections: int = 100,
    ) -> list[Prediction]:
        """Detect objects in one or many images, batched.

        Args:
            images: A path, a folder, a glob pattern, an (H, W, 3) RGB uint8 array (or an (N, H, W, 3) stack),
                a PIL image, a (3, H, W) / (N, 3, H, W) float tensor in [0, 1], or a list of these.
            score_threshold: Keep detections scoring above this.
            batch_size: Images per forward pass (images of one pass share their padded size).
            keep_resolution: Each image at its own size padded to a multiple of 32, instead of resized.
            flip: Horizontal-flip test-time augmentation (eager backend only).
            scales: Multi-scale test-time augmentation: input-size factors, e.g. ``(0.75, 1.0, 1.25)``; the
                detections of all scales are merged with class-aware NMS (IoU ``nms_iou``, 0.5 by default).
            nms_iou: Class-aware NMS after top-K at this IoU (for duplicate peaks); ``None``: no NMS (one scale).
            max_detections: At most this many detections per image after merging scales.

        Returns:
            One ``Prediction`` per image, in input order, boxes in that image's original pixels.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._check_options(keep_resolution, flip, scales)
        items = expand_inputs(images)
        factors = [1.0] if not scales else [float(s) for s in scales]
        iou = nms_iou if nms_iou is not None else (0.5 if len(factors) > 1 else None)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = [as_rgb(item) for item in items[start : start + batch_size]]
            per_scale = [self._detect(chunk, factor, keep_resolution, flip) for factor in factors]
            for i, image in enumerate(chunk):
                merged = {key: torch.cat([dets[i][key] for dets in per_scale]) for key in ("boxes", "scores", "labels")}
                results.append(self._finish(merged, image.shape[:2], score_threshold, iou, max_detections))
        return results

    def _check_options(self, keep_resolution: bool, flip: bool, scales: Sequence[float] | None) -> None:
        if flip and not isinstance(self.backend, EagerBackend):
            raise ValueError(
                f"flip test-time augmentation needs the raw maps of the eager backend; the {self.backend.name} "
                "graph decodes inside. Use the checkpoint (.ckpt) for --flip."
            )
        if scales is not None and any(s <= 0 for s in scales):
            raise ValueError(f"scales must be positive, got {list(scales)}")
        if not self.backend.dynamic and (keep_resolution or (scales and list(scales) != [1.0])):
            raise ValueError(
                f"this {self.backend.name} file was exported for {self.image_size} px inputs only; keep-resolution "
                "and multi-scale need an export with --dynamic"
            )

    def _detect(
        self, images: list[np.ndarray], factor: float, keep_resolution: bool, flip: bool
    ) -> list[dict[str, torch.Tensor]]:
        """All peaks (score > 0) of each image at one scale, boxes in original pixels (float32 CPU tensors)."""
        prepared = [self._letterbox(image, factor, keep_resolution) for image in images]
        # Images sharing a padded size run in one forward pass; the result of an image never depends on the
        # others in its batch.
        groups: dict[tuple[int, int, np.dtype], list[int]] = defaultdict(list)
        for index, (canvas, _) in enumerate(prepared):
            groups[(*canvas.shape[:2], canvas.dtype)].append(index)
        out: list[dict[str, torch.Tensor]] = [{} for _ in images]
        for indices in groups.values():
            batch = torch.from_numpy(np.stack([prepared[i][0] for i in indices]))  # (n, S_h, S_w, 3)
            # (n, 3, S_h, S_w) uint8 (or float32 in [0, 1]), a channels-last view: uint8 crosses to a GPU in a
            # quarter of the bytes and becomes float there.
            batch = batch.permute(0, 3, 1, 2)
            detections = self._run(batch, flip)
            for i, det in zip(indices, split_detections(detections), strict=True):
                sx, sy = prepared[i][1]
                height, width = images[i].shape[:2]
                boxes = det["boxes"].double() / torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
                boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
                boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
                out[i] = {"boxes": boxes.float(), "scores": det["scores"].float(), "labels": det["labels"].long()}
        return out

    def _run(self, batch: torch.Tensor, flip: bool) -> dict[str, torch.Tensor]:
        if not flip:
            return self.backend(batch)
        backend = self.backend
        assert isinstance(backend, EagerBackend)
        maps = backend.maps(torch.cat([batch, batch.flip(-1)]))  # (2n, ...) images then their mirrors
        return backend.decode(merge_flipped_maps(maps, batch.shape[0]))

    def _letterbox(
        self, image: np.ndarray, factor: float, keep_resolution: bool
    ) -> tuple[np.ndarray, tuple[float, float]]:
        """(S_h, S_w, 3) network input (``image``'s dtype: uint8, or float32 in [0, 1]) and the (sx, sy) input
        pixels per original pixel."""
        height, width = image.shape[:2]
        if keep_resolution:
            new_w, new_h = max(1, round(width * factor)), max(1, round(height * factor))
            pad_w, pad_h = (_round_up(v, _STRIDE_MULTIPLE) for v in (new_w, new_h))
        else:
            size = max(_STRIDE_MULTIPLE, round(self.image_size * factor / _STRIDE_MULTIPLE) * _STRIDE_MULTIPLE)
            ratio = size / max(height, width)
            # The same rounding as the evaluation transform (albumentations' LongestMaxSize).
            new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
            pad_w = pad_h = size
        if (new_w, new_h) != (width, height):
            # Bilinear on the uint8 image, as the evaluation transform resizes, so predictions match validation.
            image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        canvas = np.zeros((pad_h, pad_w, 3), dtype=image.dtype)  # black padding at the bottom/right
        canvas[:new_h, :new_w] = image
        return canvas, (new_w / width, new_h / height)

    def _finish(
        self,
        det: dict[str, torch.Tensor],
        shape: tuple[int, int],
        score_threshold: float,
        nms_iou: float | None,
        max_detections: int,
    ) -> Prediction:
        keep = det["scores"] > score_threshold
        boxes, scores, labels = det["boxes"][keep], det["scores"][keep], det["labels"][keep]
        if nms_iou is not None:
            index = class_aware_nms(boxes, scores, labels, nms_iou, max_detections)
        else:
            index = torch.argsort(scores, descending=True, stable=True)[:max_detections]
        boxes, scores, labels = boxes[index], scores[index], labels[index]
        label_list = [int(i) for i in labels]
        return Prediction(
            boxes=boxes.numpy().astype(np.float32).reshape(-1, 4),
            scores=scores.numpy().astype(np.float32),
            labels=labels.numpy().astype(np.int64),
            names=[self.class_names[i] for i in label_list],
            category_ids=[self.category_ids[i] for i in label_list],
            image_size=(int(shape[0]), int(shape[1])),
        )


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
