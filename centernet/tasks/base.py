"""The interface every task implements, and that the model, training, inference, export and the commands call.

A task is what the network predicts on top of the shared backbone and neck: its head's output maps, how their
targets are rendered and scored (the criterion), how the maps turn into results (decoding, then the inverse
letterbox into original pixels), the result type (which draws itself and writes COCO / YOLO entries) and the
evaluator. Detection is the first task (:mod:`centernet.tasks.detection`); a new one is a new folder and a line
in :data:`centernet.tasks.TASKS`.

A task is built by :func:`centernet.tasks.build_task` from ``head=`` and ``loss=`` (every task) and, where it
takes them, ``options=`` (its own options, ``model.task_options``) and ``data=`` (what it must know about the
dataset, ``model.task_data``, linked from the data module: pose's joints); results may carry keys beyond boxes,
scores and labels (pose's ``keypoints``), indexed by detection like them, so that selection and the inverse
letterbox keep them aligned.

Conventions: maps are at the network's output stride (4) with the image axis first; decoded results are
batched, K per image, in input pixels, padded with score 0; :meth:`Task.to_original` maps one image's results to
its original pixels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

from torch import Tensor, nn

from centernet.boxes import Letterbox

__all__ = ["Evaluator", "Task"]


class Evaluator(Protocol):
    """Accumulates one image at a time and computes the task's metrics (an object, so that training and
    ``centernet validate`` share it and get the same numbers)."""

    def update(self, image_id: int, image_size: tuple[int, int], ground_truth: Mapping[str, Any], result: Any) -> None:
        """Add one image: its ground truth in original pixels and the task's result for it."""

    def state(self) -> list[tuple[int, Any]]:
        """The accumulated images as ``(image_id, payload)`` pairs (picklable, to gather them across ranks)."""

    def load_state(self, items: Sequence[tuple[int, Any]]) -> None:
        """Replace the accumulated images (each image id once)."""

    def compute(self) -> Any:
        """The metrics of the accumulated images."""


class Task(ABC):
    """What the network predicts on the stride-4 features, and everything that depends on it."""

    name: ClassVar[str]
    output_names: ClassVar[tuple[str, ...]]  # decoded outputs, the order of an exported graph's outputs
    # Inputs besides the image, name -> channels, at the image's size (tracking: the previous image and a heatmap
    # of the previous frame's objects). The model adds them into the backbone's first layer (zero-initialised);
    # a batch carries them under these names. None for detection.
    extra_inputs: ClassVar[dict[str, int]] = {}
    # Modules (names under the network) that a checkpoint of another task may lack, kept at their initialisation
    # when fine-tuning from it (tracking from a detection checkpoint: the tracking branch, the extra inputs).
    fresh_layers: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        """The head: (N, in_channels, Ho, Wo) features -> dict of raw maps (N, *, Ho, Wo)."""

    @abstractmethod
    def build_criterion(self, num_classes: int, stride: int) -> nn.Module:
        """``criterion(maps, batch) -> dict of float32 scalar losses`` with their weighted sum under ``total``."""

    @abstractmethod
    def decode(self, maps: Mapping[str, Tensor], stride: int, max_detections: int) -> dict[str, Tensor]:
        """Raw maps -> the top-K results of every image in input pixels, (N, K, ...) each, score 0 as padding."""

    @abstractmethod
    def to_original(self, detections: Mapping[str, Tensor], letterbox: Letterbox) -> dict[str, Tensor]:
        """One image's decoded results (K, ...) in input pixels -> the same in original pixels."""

    @abstractmethod
    def select(
        self, detections: Mapping[str, Tensor], score_threshold: float, max_detections: int, nms_iou: float | None
    ) -> dict[str, Tensor]:
        """One image's results in original pixels: keep scores above the threshold (and, with ``nms_iou``, what
        non-maximum suppression keeps), at most ``max_detections``, in decreasing score."""

    @abstractmethod
    def result(
        self,
        detections: Mapping[str, Tensor],
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: tuple[int, int],
    ) -> Any:
        """The task's result object of one image (original pixels): draws itself, writes COCO / YOLO entries."""

    @abstractmethod
    def evaluator(self, class_names: Sequence[str], category_ids: Sequence[int], max_detections: int) -> Evaluator:
        """A fresh evaluator of this task's metrics."""

    def merge_flipped(self, maps: Mapping[str, Tensor], num_images: int) -> dict[str, Tensor]:
        """Maps of a batch ``[images, mirrored images]`` -> maps of ``images`` (flip test-time augmentation)."""
        raise ValueError(f"the {self.name} task has no flip test-time augmentation")

    def centres(self, detections: Mapping[str, Tensor]) -> Tensor:
        """One image's results (K, ...) -> (K, 2) x, y points that own them (sliced inference keeps a result in the
        tile whose core holds its point)."""
        raise ValueError(f"the {self.name} task has no sliced inference")

    def translate(self, detections: Mapping[str, Tensor], dx: float, dy: float) -> dict[str, Tensor]:
        """One image's results (K, ...) moved by (dx, dy) pixels: from a tile's pixels to the whole image's."""
        raise ValueError(f"the {self.name} task has no sliced inference")

    @property
    @abstractmethod
    def class_layer(self) -> str:
        """Name (under the head) of the layer whose output channels are the classes, e.g. ``heatmap.2``: the one
        layer re-initialised when fine-tuning to another number of classes."""
