"""Inference: load a trained detector and predict on images, returning boxes in original-image pixels.

Preprocessing mirrors the evaluation transform (resize keeping the aspect ratio so the longer side equals the
training size, pad bottom/right to a square); boxes are mapped back with per-axis scales computed from the
exact resized size, so the resize and the padding are undone exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .decode import split_detections
from .lightning_module import CenterNetModule
from .model import CenterNet

__all__ = ["IMAGE_SUFFIXES", "Detector", "Prediction", "list_images", "read_rgb"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Prediction:
    """Detections of one image, in that image's original pixels.

    Attributes:
        boxes: (K, 4) float32 xyxy.
        scores: (K,) float32 confidences, descending.
        labels: (K,) int64 contiguous class indices.
        names: K class names.
        category_ids: K dataset category ids (the ids of the training annotations).
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: list[str]
    category_ids: list[int]


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) RGB uint8; raises ``ValueError`` naming the file if it cannot be decoded."""
    # EXIF orientation is ignored, as in training (centernet.data.imagefile): boxes refer to the stored pixels.
    image = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ValueError(f"{path}: cannot read this file as an image (missing, empty, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def list_images(source: str | Path) -> list[Path]:
    """Image files of ``source``: the file itself, or the images of a folder (sorted, non-recursive)."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: folder holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        return files
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return [source]


class Detector:
    """A trained CenterNet ready for inference.

    Args:
        model: The network.
        class_names: Names indexed by contiguous label.
        category_ids: Dataset category id of each contiguous label.
        image_size: Side of the square network input (a multiple of 32).
        device: Where the network runs.
    """

    def __init__(
        self,
        model: CenterNet,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {image_size}")
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        self.class_names = list(class_names)
        self.category_ids = list(category_ids)
        self.image_size = image_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", image_size: int | None = None
    ) -> Detector:
        """Load a Lightning checkpoint written by ``centernet fit``; ``image_size`` defaults to the training size."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        module = CenterNetModule.load_from_checkpoint(str(path), map_location="cpu")
        size = image_size or module.hparams.image_size
        return cls(module.model, module.class_names, module.category_ids, size, device)

    def _preprocess(self, images: Sequence[np.ndarray]) -> tuple[torch.Tensor, np.ndarray]:
        """Letterbox RGB uint8 images into a (N, 3, S, S) float batch in [0, 1] and their (N, 2) x/y scales."""
        size = self.image_size
        batch = np.zeros((len(images), size, size, 3), dtype=np.uint8)
        scales = np.zeros((len(images), 2), dtype=np.float64)
        for i, image in enumerate(images):
            height, width = image.shape[:2]
            ratio = size / max(height, width)
            new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
            # Bilinear, as the evaluation transform resizes, so predictions match validation.
            batch[i, :new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
            scales[i] = (new_w / width, new_h / height)
        tensor = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, S, S)
        return tensor, scales

    @torch.inference_mode()
    def predict(
        self,
        images: str | Path | np.ndarray | Iterable[str | Path | np.ndarray],
        score_threshold: float = 0.3,
        batch_size: int = 8,
    ) -> list[Prediction]:
        """Detect objects in one or many images, batched.

        Args:
            images: A path, a folder, an (H, W, 3) RGB uint8 array, or a list of paths/arrays.
            score_threshold: Keep detections scoring above this.
            batch_size: Images per forward pass.

        Returns:
            One ``Prediction`` per image, boxes in that image's original pixels.
        """
        if isinstance(images, (str, Path)):
            items: list[str | Path | np.ndarray] = list(list_images(images))
        elif isinstance(images, np.ndarray):
            items = [images]
        else:
            items = list(images)
        results: list[Prediction] = []
        for start in range(0, len(items), batch_size):
            chunk = [
                read_rgb(x) if isinstance(x, (str, Path)) else _check_rgb(x) for x in items[start : start + batch_size]
            ]
            tensor, scales = self._preprocess(chunk)
            detections = self.model.decode(self.model(tensor))
            for image, scale, det in zip(chunk, scales, split_detections(detections, score_threshold), strict=True):
                results.append(self._to_prediction(det, scale, image.shape[:2]))
        return results

    def _to_prediction(self, det: dict[str, torch.Tensor], scale: np.ndarray, shape: tuple[int, int]) -> Prediction:
        boxes = det["boxes"].float().cpu().numpy().astype(np.float64)
        boxes[:, 0::2] = np.clip(boxes[:, 0::2] / scale[0], 0, shape[1])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2] / scale[1], 0, shape[0])
        labels = det["labels"].cpu().numpy()
        return Prediction(
            boxes=boxes.astype(np.float32),
            scores=det["scores"].float().cpu().numpy(),
            labels=labels,
            names=[self.class_names[int(i)] for i in labels],
            category_ids=[self.category_ids[int(i)] for i in labels],
        )


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) RGB uint8 array, got shape {image.shape} and dtype {image.dtype}")
    return image
