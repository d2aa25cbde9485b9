"""Training pairs for the tracking task: (previous frame, current frame) with their objects matched by track id.

Two sources (CenterTrack, Zhou, Koltun & Krähenbühl 2020, sections 4.3-4.4):

- :class:`VideoPairs`: two frames of one video, the previous one a random number of frames away (up to
  ``max_gap``, either direction: played backwards a video is still a video); in validation the previous listed
  frame.
- :class:`ImagePairs`: one annotated image and a copy of it moved by a random shift and scale standing in for the
  previous frame, so that a plain detection dataset trains a tracker.

Both frames are letterboxed to ``image_size`` (:meth:`centernet.boxes.Letterbox.fit`). In training both then go
through the same random flip, scale and shift (the pair's motion is kept). The prior heatmap is drawn from the
previous frame's boxes with :class:`~centernet.data.prior_heatmap.PriorNoise` (no noise in validation).

A sample has detection's keys (``image``, ``bboxes`` relative cxcywh, ``labels``, ``image_id``, ``orig_size``,
``scale`` and the ``gt_*`` ground truth in original pixels) plus ``prev_image`` (3, S, S) in [0, 1],
``prev_heatmap`` (1, S, S), ``prev_centers`` (n, 2) each object's previous centre relative to the input image, and
``track_mask`` (n,) 1 where the object is in the previous frame. :func:`collate_tracking` batches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from centernet.boxes import Letterbox
from centernet.data.collate import collate_detections
from centernet.data.imagefile import decode_rgb
from centernet.data.prior_heatmap import PriorNoise, noisy_prior_boxes, render_prior_heatmap
from centernet.data.records import DetectionSource
from centernet.data.video_records import VideoSequence

__all__ = ["ImagePairs", "VideoPairs", "collate_tracking"]

_MIN_SIDE = 2.0  # pixels: a box clipped thinner than this by the augmentation is no longer a target


class _Pairs(Dataset):
    """What both pair sources share: letterbox, joint augmentation, matching by track id, the prior heatmap."""

    def __init__(
        self, image_size: int, train: bool, noise: PriorNoise, scale_range: tuple[float, float], shift: float, seed: int
    ) -> None:
        self.image_size = image_size
        self.train = train
        self.noise = noise
        self.scale_range = scale_range
        self.shift = shift
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def set_random_seed(self, seed: int | None) -> None:
        """Reseed the augmentation (a worker calls it with its own seed)."""
        self._rng = np.random.default_rng(seed)

    def _affine(self, scale_range: tuple[float, float], shift: float, flip: bool) -> np.ndarray:
        """A random 2x3 map of input pixels: scale about the centre, shift by up to ``shift`` of the side, flip."""
        side = self.image_size
        scale = self._rng.uniform(*scale_range)
        dx, dy = self._rng.uniform(-shift, shift, 2) * side
        sign = -1.0 if flip and self._rng.random() < 0.5 else 1.0
        centre = side / 2
        return np.array(
            [[sign * scale, 0, centre - sign * scale * centre + dx], [0, scale, centre - scale * centre + dy]]
        )

    def _warp(self, image: np.ndarray, boxes: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Warp an (S, S, 3) image and its (n, 4) xyxy boxes by the 2x3 ``matrix`` (scale, shift and flip only)."""
        side = self.image_size
        warped = cv2.warpAffine(image, matrix, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        xs = boxes[:, [0, 2]] * matrix[0, 0] + matrix[0, 2]
        ys = boxes[:, [1, 3]] * matrix[1, 1] + matrix[1, 2]
        moved = np.stack([xs.min(1), ys.min(1), xs.max(1), ys.max(1)], axis=1)
        return warped, moved

    def _sample(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray,
        track_ids: np.ndarray,
        prev_image: np.ndarray,
        prev_boxes: np.ndarray,
        prev_track_ids: np.ndarray,
        image_id: int,
        pair_motion: bool,
    ) -> dict[str, Any]:
        """A sample from two frames of the same size, (H, W, 3) uint8 RGB, with (n, 4) xyxy pixel boxes."""
        side = self.image_size
        letterbox = Letterbox.fit(image.shape[:2], side)
        gt = {
            "gt_boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "gt_labels": torch.as_tensor(labels, dtype=torch.int64),
            "gt_iscrowd": torch.zeros(len(labels), dtype=torch.int64),
            "gt_area": torch.as_tensor((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), dtype=torch.float32),
        }
        canvas, prev_canvas = letterbox.apply(image), letterbox.apply(prev_image)
        boxes, prev_boxes = letterbox.to_input(boxes.reshape(-1, 4)), letterbox.to_input(prev_boxes.reshape(-1, 4))
        if self.train:
            matrix = self._affine(self.scale_range, self.shift, flip=True)
            canvas, boxes = self._warp(canvas, boxes, matrix)
            prev_canvas, prev_boxes = self._warp(prev_canvas, prev_boxes, matrix)
        if pair_motion:  # a single image: the "previous frame" is a moved copy
            prev_canvas, prev_boxes = self._warp(prev_canvas, prev_boxes, self._affine((0.94, 1.06), 0.05, flip=False))
        boxes, keep = _clip(boxes, side)
        labels, track_ids = labels[keep], track_ids[keep]
        prev_boxes, prev_keep = _clip(prev_boxes, side)
        prev_track_ids = prev_track_ids[prev_keep]
        row_of = {int(t): i for i, t in enumerate(prev_track_ids)}
        rows = [row_of.get(int(t), -1) for t in track_ids]
        track_mask = np.array([row >= 0 for row in rows], dtype=np.float32)
        prev_centres = np.zeros((len(rows), 2))
        for i, row in enumerate(rows):
            if row >= 0:
                prev_centres[i] = (prev_boxes[row, :2] + prev_boxes[row, 2:]) / 2
        prior = noisy_prior_boxes(self._rng, prev_boxes, self.noise) if self.train else prev_boxes
        centre, extent = (boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]
        return {
            "image": _to_tensor(canvas),
            "prev_image": _to_tensor(prev_canvas),
            "prev_heatmap": torch.from_numpy(render_prior_heatmap(prior, (side, side))).unsqueeze(0),
            "bboxes": torch.as_tensor(np.concatenate([centre, extent], 1) / side, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(labels, dtype=torch.int64),
            "prev_centers": torch.as_tensor(prev_centres / side, dtype=torch.float32).reshape(-1, 2),
            "track_mask": torch.from_numpy(track_mask),
            "image_id": int(image_id),
            "orig_size": letterbox.source,
            "scale": letterbox.scale,
            **gt,
        }


def _clip(boxes: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 4) xyxy clipped to the (side x side) canvas, and the mask (n,) of those still at least 2 px wide and high."""
    clipped = boxes.clip(0, side)
    keep = ((clipped[:, 2] - clipped[:, 0]) >= _MIN_SIDE) & ((clipped[:, 3] - clipped[:, 1]) >= _MIN_SIDE)
    return clipped[keep], keep


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255)


class VideoPairs(_Pairs):
    """Pairs of frames of the same video.

    Args:
        sequences: Annotated videos (:mod:`centernet.data.video_records`).
        image_size: Side of the square network input.
        train: Random previous frame, augmentation and prior noise; else the previous listed frame, no noise.
        max_gap: Largest distance in frame numbers to the "previous" frame in training (CenterTrack: 3 on MOT17).
        noise: Noise of the training prior heatmap.
        scale_range: Joint random scale in training.
        shift: Joint random shift in training, as a fraction of the side.
        seed: Seed of the augmentation.
    """

    def __init__(
        self,
        sequences: Sequence[VideoSequence],
        image_size: int,
        train: bool = True,
        max_gap: int = 3,
        noise: PriorNoise | None = None,
        scale_range: tuple[float, float] = (0.8, 1.2),
        shift: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(image_size, train, noise or PriorNoise(), scale_range, shift, seed)
        if max_gap < 1:
            raise ValueError(f"max_gap must be >= 1, got {max_gap}")
        self.sequences = list(sequences)
        self.max_gap = max_gap
        self.index = [(s, f) for s, sequence in enumerate(self.sequences) for f in range(len(sequence))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, Any]:
        s, f = self.index[item]
        frames = self.sequences[s].frames
        frame = frames[f]
        if self.train:
            numbers = [other.frame for other in frames]
            near = [i for i, n in enumerate(numbers) if 0 < abs(n - frame.frame) <= self.max_gap]
            p = int(self._rng.choice(near)) if near else f
        else:
            p = max(f - 1, 0)
        previous = frames[p]
        return self._sample(
            decode_rgb(frame.path),
            frame.boxes,
            frame.labels,
            frame.track_ids,
            decode_rgb(previous.path),
            previous.boxes,
            previous.track_ids,
            frame.image_id,
            pair_motion=False,
        )


class ImagePairs(_Pairs):
    """Pairs simulated from single annotated images: the previous frame is the image moved by a small random shift
    (up to 5 % of the side) and scale (0.94-1.06); every object is in both.

    Args:
        source: Validated detection records (:func:`centernet.data.validation.validate_source`).
        image_size: Side of the square network input.
        train: Augmentation and prior noise.
        noise: Noise of the training prior heatmap.
        scale_range: Joint random scale in training.
        shift: Joint random shift in training, as a fraction of the side.
        seed: Seed of the augmentation.
    """

    def __init__(
        self,
        source: DetectionSource,
        image_size: int,
        train: bool = True,
        noise: PriorNoise | None = None,
        scale_range: tuple[float, float] = (0.8, 1.2),
        shift: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(image_size, train, noise or PriorNoise(), scale_range, shift, seed)
        self.records = list(source.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, item: int) -> dict[str, Any]:
        record = self.records[item]
        image = decode_rgb(record.path)
        ids = np.arange(len(record.labels))
        keep = record.iscrowd == 0 if len(record.iscrowd) else np.ones(len(ids), dtype=bool)
        boxes, labels, ids = record.boxes[keep], record.labels[keep], ids[keep]
        return self._sample(image, boxes, labels, ids, image, boxes, ids, record.image_id, pair_motion=True)


def collate_tracking(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Detection's batch (:func:`centernet.data.collate.collate_detections`) plus ``prev_image`` (N, 3, S, S),
    ``prev_heatmap`` (N, 1, S, S), ``prev_centers`` (N, D, 2) and ``track_mask`` (N, D), padded like ``bboxes``."""
    batch = collate_detections(samples)
    rows = batch["bboxes"].shape[1]
    prev_centers = torch.zeros(len(samples), rows, 2)
    track_mask = torch.zeros(len(samples), rows)
    for i, sample in enumerate(samples):
        count = len(sample["labels"])
        prev_centers[i, :count] = sample["prev_centers"]
        track_mask[i, :count] = sample["track_mask"]
    batch["prev_image"] = torch.stack([sample["prev_image"] for sample in samples])
    batch["prev_heatmap"] = torch.stack([sample["prev_heatmap"] for sample in samples])
    batch["prev_centers"] = prev_centers
    batch["track_mask"] = track_mask
    return batch
