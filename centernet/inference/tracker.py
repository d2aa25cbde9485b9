"""``Tracker``: a trained tracking-task CenterNet run frame by frame over videos, giving each object a track id.

Each frame is letterboxed like :class:`~centernet.inference.Detector` does (longer side to the input size, black
padding); the network sees it with the previous frame and a heatmap of its own previous tracked objects, and
detections are associated greedily (:mod:`centernet.tasks.tracking.online`). The network runs eagerly (PyTorch) or
on ONNX Runtime from an exported three-input graph with decoding inside.

Batched where it can be, streaming where it must: :meth:`Tracker.track_many` puts frame t of several videos into one
forward pass (each video with its own previous image, prior heatmap and association state), while every video is
still read one frame at a time; :meth:`Tracker.track` is its one-video case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
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
        """Images and previous images (B, 3, S, S) in [0, 1], prior heatmaps (B, 1, S, S) -> the decoded
        ``boxes`` (B, K, 4) xyxy, ``scores`` (B, K), ``labels`` (B, K) and ``tracking`` (B, K, 2), input pixels."""
        extras = {"prev_image": prev_image.to(self.device), "prev_heatmap": prev_heatmap.to(self.device)}
        maps = self.model(image.to(self.device), extras)
        decoded = self.model.decode(maps, self.max_detections)
        return {key: value.cpu() for key, value in decoded.items()}


class _OnnxRunner:
    """An exported tracking graph (inputs ``images``, ``prev_images``, ``prev_heatmaps``) on ONNX Runtime.

    A graph exported with ``dynamic=True`` takes any batch in one run. One exported with a fixed batch (the
    default of ``centernet export``, batch 1) only accepts that many images per run, so a larger batch is run in
    chunks of that size, the last one padded with zeros: every image is decoded independently, so the results are
    those of one batched run.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import os

        import onnxruntime as ort

        ort.disable_telemetry_events()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        self.input_names = [item.name for item in inputs]
        self.output_names = [item.name for item in self.session.get_outputs()]
        if len(self.input_names) != 3:
            raise ValueError(f"{path}: a tracking graph has 3 inputs, this one has {self.input_names}")
        batch = inputs[0].shape[0]
        self.batch_size = batch if isinstance(batch, int) else None  # None: a dynamic batch axis (a name)

    def __call__(self, image: Tensor, prev_image: Tensor, prev_heatmap: Tensor) -> dict[str, Tensor]:
        """As :class:`_EagerRunner`: (B, ...) inputs -> (B, K, ...) decoded outputs in input pixels."""
        inputs = (image, prev_image, prev_heatmap)
        count = image.shape[0]
        if self.batch_size in (None, count):
            return self._run(inputs)
        outputs = []
        for start in range(0, count, self.batch_size):
            chunk = [t[start : start + self.batch_size] for t in inputs]
            real = chunk[0].shape[0]
            if real < self.batch_size:
                chunk = [torch.cat([t, t.new_zeros((self.batch_size - real, *t.shape[1:]))]) for t in chunk]
            outputs.append({key: value[:real] for key, value in self._run(chunk).items()})
        return {key: torch.cat([o[key] for o in outputs]) for key in outputs[0]}

    def _run(self, inputs: Sequence[Tensor]) -> dict[str, Tensor]:
        arrays = [np.ascontiguousarray(t.float().numpy()) for t in inputs]
        values = self.session.run(None, dict(zip(self.input_names, arrays, strict=True)))
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, values, strict=True)}


@dataclass
class _Video:
    """One video in a batched run: where it is and what it remembers."""

    index: int  # position in the videos given to track_many
    frames: Iterator[np.ndarray]
    state: OnlineTracking
    letterbox: Letterbox | None = None  # from its first frame
    frame_index: int = -1  # of the frame being tracked, from 0

    def next_image(self, side: int) -> Tensor | None:
        """Its next frame letterboxed as (1, 3, S, S) float in [0, 1]; ``None`` when the video has ended."""
        frame = next(self.frames, None)
        if frame is None:
            return None
        self.frame_index += 1
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"video {self.index}, frame {self.frame_index}: expected (H, W, 3) RGB, got {frame.shape}")
        if self.letterbox is None:
            self.letterbox = Letterbox.fit(frame.shape[:2], side)
        elif frame.shape[:2] != self.letterbox.source:
            raise ValueError(
                f"video {self.index}, frame {self.frame_index}: frame of size {frame.shape[:2]} in a video of "
                f"{self.letterbox.source} frames"
            )
        canvas = self.letterbox.apply(np.ascontiguousarray(frame))
        return torch.from_numpy(canvas).permute(2, 0, 1).unsqueeze(0).float().div_(255)  # (1, 3, S, S)


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
        # The state of the video of track(); track_many gives each of its videos a fresh one with these options.
        self.online = OnlineTracking(TrackingTask(), associator, max_detections, use_displacement)
        #: The per-video states of the latest track() ([online]) or track_many() call, in video order.
        self.video_states: list[OnlineTracking] = [self.online]

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
        self.video_states = [self.online]

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[FrameTracks]:
        """Track the frames of one video, (H, W, 3) uint8 RGB each, all of one size; yields each frame's tracks in
        original pixels as soon as it is processed (streaming). Starts a new video in :attr:`online`."""
        self.reset()
        for _, _, tracks in self._lockstep([frames], 1, lambda: self.online):
            yield tracks

    def track_many(
        self, videos: Iterable[Iterable[np.ndarray]], batch_size: int = 8
    ) -> Iterator[tuple[int, int, FrameTracks]]:
        """Track several videos together, one forward pass for the current frame of up to ``batch_size`` of them.

        Each video keeps its own state (previous image, prior heatmap, tracks; ids from 1), so its results are those
        of :meth:`track` on it alone. The first ``batch_size`` videos start together and advance in lockstep; a
        video that ends leaves the batch and the next waiting one takes its place, so at most ``batch_size`` videos
        are open at once, and each is read one frame at a time (streaming). A video's iterable is first iterated
        when it enters the batch.

        Args:
            videos: Iterables of (H, W, 3) uint8 RGB frames, one per video; each video has its own frame size and
                length.
            batch_size: Videos per forward pass (1: one video after the other).

        Yields:
            ``(video index, frame index, tracks)`` for every frame, indices from 0, tracks in the video's original
            pixels; after each forward pass, the frames of that pass in batch order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        yield from self._lockstep(videos, batch_size, self._new_state)

    def _new_state(self) -> OnlineTracking:
        """A fresh per-video state with :attr:`online`'s options."""
        online, associator = self.online, self.online.associator
        fresh = GreedyAssociator(
            associator.detection_threshold, associator.new_track_threshold, associator.max_age, associator.match_labels
        )
        return OnlineTracking(online.task, fresh, online.max_detections, online.use_displacement)

    def _lockstep(
        self, videos: Iterable[Iterable[np.ndarray]], batch_size: int, new_state: Callable[[], OnlineTracking]
    ) -> Iterator[tuple[int, int, FrameTracks]]:
        """The loop of :meth:`track` and :meth:`track_many`: per time step, read the next frame of each video in the
        batch, refill free places from the waiting videos, run the network once on the stacked frames, associate
        each video's detections in its own state."""
        waiting = enumerate(videos)
        self.video_states = []
        batch: list[_Video] = []
        while True:
            batch, images = self._advance(batch, waiting, batch_size, new_state)
            if not batch:
                return
            pasts = [video.state.network_inputs(im, video.letterbox) for video, im in zip(batch, images, strict=True)]
            previous, priors = (torch.cat([past[i] for past in pasts]) for i in (0, 1))  # (B, 3 | 1, S, S)
            decoded = self.runner(torch.cat(images), previous, priors)  # images (B, 3, S, S)
            for row, (video, image) in enumerate(zip(batch, images, strict=True)):
                tracks = video.state.update(image, {key: value[row] for key, value in decoded.items()}, video.letterbox)
                yield video.index, video.frame_index, tracks

    def _advance(
        self,
        batch: list[_Video],
        waiting: Iterator[tuple[int, Iterable[np.ndarray]]],
        batch_size: int,
        new_state: Callable[[], OnlineTracking],
    ) -> tuple[list[_Video], list[Tensor]]:
        """The videos of the next time step and their next frames ((1, 3, S, S) each): those of ``batch`` that
        have one more frame, then waiting videos started in the free places; empty when every video has ended."""
        running: list[_Video] = []
        images: list[Tensor] = []
        candidates = iter(batch)
        while len(running) < batch_size:
            video = next(candidates, None)
            if video is None:  # a free place: the next waiting video takes it
                entry = next(waiting, None)
                if entry is None:
                    break
                video = _Video(entry[0], iter(entry[1]), new_state())
                video.state.reset()
                self.video_states.append(video.state)
            image = video.next_image(self.image_size)
            if image is None:
                video.state.close()  # this video has ended; the others go on
                continue
            running.append(video)
            images.append(image)
        return running, images

    @property
    def association_seconds(self) -> float:
        """Seconds spent in association in the latest :meth:`track` (since its video started) or
        :meth:`track_many` (summed over its videos; per video: ``video_states[i].association_seconds``)."""
        return sum(state.association_seconds for state in self.video_states)
