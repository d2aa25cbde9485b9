"""``Tracker``: a trained tracking-task CenterNet run frame by frame over videos, giving each object a track id.

Each frame is letterboxed like :class:`~centernet.inference.Detector` does (longer side to the input size, black
padding); the network sees it with the previous frame and a heatmap of its own previous tracked objects, and
detections are associated greedily (:mod:`centernet.tasks.tracking.online`). The network runs eagerly (PyTorch) or
on ONNX Runtime from an exported three-input graph with decoding inside.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from centernet.boxes import STRIDE_MULTIPLE, Letterbox
from centernet.model import CenterNet
from centernet.model.checkpoint import load_model
from centernet.tasks.tracking.association import GreedyAssociator
from centernet.tasks.tracking.online import FrameTracks, OnlineTracking, Runner
from centernet.tasks.tracking.task import TrackingTask

__all__ = ["FrameTracks", "Tracker"]


class _EagerRunner:
    """The PyTorch model with its decoding (BatchNorm is not folded: the extra inputs join before the first one)."""

    def __init__(self, model: CenterNet, device: torch.device, max_detections: int) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.max_detections = max_detections

    @torch.inference_mode()
    def __call__(self, image: Tensor, prev_image: Tensor, prev_heatmap: Tensor) -> dict[str, Tensor]:
        extras = {"prev_image": prev_image.to(self.device), "prev_heatmap": prev_heatmap.to(self.device)}
        maps = self.model(image.to(self.device), extras)
        decoded = self.model.decode(maps, self.max_detections)
        return {key: value.cpu() for key, value in decoded.items()}


class _OnnxRunner:
    """An exported tracking graph (inputs ``images``, ``prev_images``, ``prev_heatmaps``) on ONNX Runtime."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import os

        import onnxruntime as ort

        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_names = [item.name for item in self.session.get_inputs()]
        self.output_names = [item.name for item in self.session.get_outputs()]
        if len(self.input_names) != 3:
            raise ValueError(f"{path}: a tracking graph has 3 inputs, this one has {self.input_names}")

    def __call__(self, image: Tensor, prev_image: Tensor, prev_heatmap: Tensor) -> dict[str, Tensor]:
        arrays = [np.ascontiguousarray(t.float().numpy()) for t in (image, prev_image, prev_heatmap)]
        values = self.session.run(None, dict(zip(self.input_names, arrays, strict=True)))
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, values, strict=True)}


class Tracker:
    """A trained tracker.

    Args:
        runner: The network with decoding (see :data:`centernet.tasks.tracking.online.Runner`).
        class_names: Names indexed by contiguous label.
        category_ids: The dataset's category id of each label.
        image_size: Side of the square network input (a multiple of 32).
        detection_threshold: Detections at or below this score are ignored.
        new_track_threshold: An unmatched detection above this score starts a track.
        max_age: Frames a lost track is kept for re-identification.
        max_detections: Detections per frame considered.
        use_displacement: ``False`` matches by the current centres only (the nearest-centre baseline).
    """

    def __init__(
        self,
        runner: Runner,
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: int,
        detection_threshold: float = 0.3,
        new_track_threshold: float = 0.4,
        max_age: int = 10,
        max_detections: int = 100,
        use_displacement: bool = True,
    ) -> None:
        if image_size % STRIDE_MULTIPLE:
            raise ValueError(f"image_size must be a multiple of {STRIDE_MULTIPLE}, got {image_size}")
        self.runner = runner
        self.class_names = list(class_names)
        self.category_ids = list(category_ids)
        self.image_size = image_size
        associator = GreedyAssociator(detection_threshold, new_track_threshold, max_age)
        self.online = OnlineTracking(TrackingTask(), associator, max_detections, use_displacement)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str = "cpu", image_size: int | None = None, **options: float | int | bool
    ) -> Tracker:
        """A tracker from a ``centernet fit`` checkpoint of the tracking task (eager PyTorch)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: checkpoint not found")
        loaded = load_model(path)
        if loaded.model.task.name != "tracking":
            raise ValueError(f"{path}: a {loaded.model.task.name} checkpoint; tracking needs a tracking-task one")
        max_detections = int(options.pop("max_detections", loaded.model.max_detections))
        runner = _EagerRunner(loaded.model, torch.device(device), max_detections)
        size = image_size or loaded.image_size
        return cls(runner, loaded.class_names, loaded.category_ids, size, max_detections=max_detections, **options)

    @classmethod
    def from_onnx(cls, path: str | Path, threads: int | None = None, **options: float | int | bool) -> Tracker:
        """A tracker from an ONNX file written by :func:`centernet.inference.export.export_onnx` for a tracking
        model (names, ids and input size from its metadata), run by ONNX Runtime on the CPU."""
        from centernet.inference.export import read_metadata

        metadata = read_metadata(path)
        if metadata.get("task") != "tracking":
            raise ValueError(f"{path}: exported for the {metadata.get('task')!r} task, not tracking")
        runner = _OnnxRunner(Path(path), threads)
        return cls(runner, metadata["class_names"], metadata["category_ids"], int(metadata["image_size"]), **options)

    def reset(self) -> None:
        """Forget the current video (ids start again at 1)."""
        self.online.reset()

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[FrameTracks]:
        """Track the frames of one video, (H, W, 3) uint8 RGB each, all of one size; yields each frame's tracks in
        original pixels as soon as it is processed (streaming). Starts a new video."""
        self.reset()
        letterbox = None
        for frame in frames:
            if letterbox is None:
                letterbox = Letterbox.fit(frame.shape[:2], self.image_size)
            elif frame.shape[:2] != letterbox.source:
                raise ValueError(f"frame of size {frame.shape[:2]} in a video of {letterbox.source} frames")
            canvas = letterbox.apply(np.ascontiguousarray(frame))
            image = torch.from_numpy(canvas).permute(2, 0, 1).unsqueeze(0).float().div_(255)  # (1, 3, S, S)
            yield self.online.step(image, letterbox, self.runner)

    @property
    def association_seconds(self) -> float:
        """Seconds spent in association since the current video started."""
        return self.online.association_seconds
