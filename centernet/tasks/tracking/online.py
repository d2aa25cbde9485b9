"""Online tracking, one frame at a time, with any runner of the network (eager model, ONNX Runtime, ...).

For each frame: the letterboxed image, the previous frame's letterboxed image and the prior heatmap drawn from the
previous frame's tracked objects (the tracker's own output, CenterTrack section 4.2) go through the network; its
detections are selected, mapped to original pixels and associated greedily
(:class:`~centernet.tasks.tracking.association.GreedyAssociator`). The first frame of a video is its own previous
frame with an empty prior, as CenterTrack starts.

:meth:`OnlineTracking.step` is the two halves around the network, :meth:`~OnlineTracking.network_inputs` (prior
heatmap, previous image) and :meth:`~OnlineTracking.update` (selection, association), so that a batched tracker can
run one forward pass for the current frames of several videos, each with its own ``OnlineTracking``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from centernet.boxes import Letterbox
from centernet.data.prior_heatmap import render_prior_heatmap
from centernet.tasks.tracking.association import GreedyAssociator
from centernet.tasks.tracking.task import TrackingTask

__all__ = ["FrameTracks", "OnlineTracking", "Runner", "associate_recorded"]

#: ``runner(image, prev_image, prev_heatmap)`` -> decoded outputs of the tracking task, batched (N, K, ...) in
#: input pixels; images (N, 3, S, S) float in [0, 1], heatmap (N, 1, S, S).
Runner = Callable[[Tensor, Tensor, Tensor], Mapping[str, Tensor]]


@dataclass
class FrameTracks:
    """The tracked objects of one frame, original pixels.

    Attributes:
        boxes: (n, 4) float32 xyxy.
        scores: (n,) float32.
        labels: (n,) int64.
        track_ids: (n,) int64, positive.
        displacements: (n, 2) float32 predicted (dx, dy) to each object's centre in the previous frame.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    displacements: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)


class OnlineTracking:
    """The state of tracking one video.

    Args:
        task: The tracking task (decoding's selection and inverse letterbox).
        associator: Greedy association; its thresholds decide which detections become tracks.
        max_detections: Detections kept per frame before association.
        use_displacement: Match by the predicted previous centre (CenterTrack); ``False`` is plain nearest-centre
            matching of the same detections (a baseline).
    """

    def __init__(
        self,
        task: TrackingTask,
        associator: GreedyAssociator | None = None,
        max_detections: int = 100,
        use_displacement: bool = True,
    ) -> None:
        self.task = task
        self.associator = associator or GreedyAssociator()
        self.max_detections = max_detections
        self.use_displacement = use_displacement
        self.reset()

    def reset(self) -> None:
        """Start a new video."""
        self.associator.reset()
        self._previous: Tensor | None = None
        self._previous_boxes = np.zeros((0, 4))  # tracked boxes of the previous frame, original pixels
        self.association_seconds = 0.0  # time spent in association (for benchmarks)
        self.last_detections: tuple[np.ndarray, ...] = ()

    def step(self, image: Tensor, letterbox: Letterbox, runner: Runner) -> FrameTracks:
        """Track one frame: :meth:`network_inputs`, the network, :meth:`update`.

        Args:
            image: (1, 3, S, S) float in [0, 1], the frame letterboxed by ``letterbox``.
            letterbox: How the frame was resized and padded (the same for every frame of the video).
            runner: The network with decoding.
        """
        previous, prior = self.network_inputs(image, letterbox)
        decoded = runner(image, previous, prior)
        return self.update(image, {key: value[0] for key, value in decoded.items()}, letterbox)

    def network_inputs(self, image: Tensor, letterbox: Letterbox) -> tuple[Tensor, Tensor]:
        """What the network sees of this video's past next to ``image``; the part of :meth:`step` before the network
        (a batched tracker stacks these over its videos).

        Args:
            image: (1, 3, S, S) float in [0, 1], the current frame letterboxed by ``letterbox``.
            letterbox: The video's letterbox (maps the previous frame's tracks from original to input pixels).

        Returns:
            ``prev_image`` (1, 3, S, S), the previous frame letterboxed (``image`` itself on the first frame), and
            ``prev_heatmap`` (1, 1, S, S), the previous frame's tracked objects drawn in input pixels (empty on the
            first frame).
        """
        side = image.shape[-2:]
        previous = image if self._previous is None else self._previous
        prior_boxes = letterbox.to_input(self._previous_boxes) if len(self._previous_boxes) else self._previous_boxes
        prior = torch.from_numpy(render_prior_heatmap(prior_boxes, (int(side[0]), int(side[1]))))[None, None]
        return previous, prior

    def update(self, image: Tensor, decoded: Mapping[str, Tensor], letterbox: Letterbox) -> FrameTracks:
        """Select, map back and associate the network's detections of one frame; the part of :meth:`step` after
        the network.

        Args:
            image: (1, 3, S, S) the frame given to :meth:`network_inputs` (kept as the next frame's previous image).
            decoded: This frame's row of the runner's outputs: ``boxes`` (K, 4) xyxy, ``scores`` (K,), ``labels``
                (K,) and ``tracking`` (K, 2), input pixels.
            letterbox: The video's letterbox.

        Returns:
            The tracked objects of the frame, original pixels.
        """
        selected = self.task.select(decoded, self.associator.detection_threshold, self.max_detections, None)
        original = self.task.to_original(selected, letterbox)
        boxes = original["boxes"].numpy()
        scores, labels = original["scores"].numpy(), original["labels"].numpy()
        displacements = original["tracking"].numpy()
        # Every selected detection of the frame, before association (to replay it with another association).
        self.last_detections = (boxes, scores, labels, displacements)
        start = time.perf_counter()
        ids = self.associator.update(boxes, scores, labels, displacements if self.use_displacement else None)
        self.association_seconds += time.perf_counter() - start
        tracked = ids > 0
        self._previous = image
        self._previous_boxes = boxes[tracked].astype(np.float64)
        return FrameTracks(
            boxes[tracked].astype(np.float32), scores[tracked].astype(np.float32), labels[tracked].astype(np.int64),
            ids[tracked], displacements[tracked].astype(np.float32),
        )  # fmt: skip

    def close(self) -> None:
        """The video has ended: drop its previous image (a (1, 3, S, S) float tensor); the tracks, the last
        detections and the association time stay readable."""
        self._previous = None


def associate_recorded(
    detections: list[tuple[np.ndarray, ...]], associator: GreedyAssociator, use_displacement: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Associate recorded frames of detections (``OnlineTracking.last_detections`` of each frame: boxes, scores,
    labels, displacements) again with ``associator``: e.g. by nearest centre (``use_displacement=False``) on the
    same detections. Returns ``(track ids, boxes)`` of the tracked objects per frame."""
    associator.reset()
    frames = []
    for boxes, scores, labels, displacements in detections:
        ids = associator.update(boxes, scores, labels, displacements if use_displacement else None)
        frames.append((ids[ids > 0], boxes[ids > 0]))
    return frames
