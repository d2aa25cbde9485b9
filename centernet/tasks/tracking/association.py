"""Greedy association of detections into tracks by their predicted previous centres (CenterTrack, section 4.2).

Every detection of frame t comes with its displacement to where the object was at frame t - 1 (the tracking head).
Its predicted previous centre is compared with where each track was at t - 1; pairs closer than the size of both
boxes (squared distance below each box's area, CenterTrack's rule) and of the same class are matched greedily,
detections in decreasing score first, each taking its nearest free track. An unmatched detection above
``new_track_threshold`` starts a track; an unmatched track is kept "lost" for ``max_age`` frames, moving at its
last velocity, so an object hidden for a few frames gets its id back.

Plain NumPy: no torch, no Lightning; the inference ``Tracker`` and the evaluation both run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GreedyAssociator", "Track"]


@dataclass
class Track:
    """One object followed through the frames (original pixels).

    Attributes:
        track_id: Positive id, unique within the associator's life.
        box: (4,) xyxy where the object was last seen.
        score: Its detection score then.
        label: Its class.
        velocity: (2,) centre motion per frame, for extrapolating it while lost.
        lost: Frames since it was last matched (0: matched in the latest frame).
        hits: Frames it was matched in.
    """

    track_id: int
    box: np.ndarray
    score: float
    label: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, dtype=np.float64))
    lost: int = 0
    hits: int = 1

    @property
    def centre(self) -> np.ndarray:
        """(2,) centre of :attr:`box`."""
        return (self.box[:2] + self.box[2:]) / 2

    def previous_position(self) -> np.ndarray:
        """(2,) where the object is expected to have been one frame ago, seen from the frame being matched: its last
        centre, moved by its velocity for the frames it has been lost."""
        return self.centre + self.velocity * self.lost


class GreedyAssociator:
    """Turns each frame's detections into track ids.

    Args:
        detection_threshold: Detections scoring at or below this are ignored (neither matched nor started).
        new_track_threshold: An unmatched detection above this score starts a new track.
        max_age: Frames an unmatched track is kept (and can be matched again) before it is dropped.
        match_labels: Only match a detection to a track of the same class.
    """

    def __init__(
        self,
        detection_threshold: float = 0.3,
        new_track_threshold: float = 0.4,
        max_age: int = 5,
        match_labels: bool = True,
    ) -> None:
        if not 0 <= detection_threshold <= new_track_threshold:
            raise ValueError(
                "need 0 <= detection_threshold <= new_track_threshold, got "
                f"{detection_threshold} and {new_track_threshold}"
            )
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.detection_threshold = detection_threshold
        self.new_track_threshold = new_track_threshold
        self.max_age = max_age
        self.match_labels = match_labels
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video); ids start again at 1."""
        self.tracks: list[Track] = []
        self._next_id = 1

    @property
    def active(self) -> list[Track]:
        """Tracks matched in the latest frame."""
        return [track for track in self.tracks if track.lost == 0]

    def update(
        self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, displacements: np.ndarray | None = None
    ) -> np.ndarray:
        """Associate one frame's detections.

        Args:
            boxes: (K, 4) xyxy.
            scores: (K,) detection scores.
            labels: (K,) classes.
            displacements: (K, 2) (dx, dy) from each detection's centre to its centre in the previous frame, in the
                boxes' pixels; ``None`` is no motion (plain nearest-centre matching).

        Returns:
            (K,) int64 track id of every detection, -1 for a detection that belongs to no track (below the
            thresholds, or unmatched and too weak to start one).
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        count = len(boxes)
        motion = np.zeros((count, 2)) if displacements is None else np.asarray(displacements, np.float64).reshape(-1, 2)
        ids = np.full(count, -1, dtype=np.int64)
        order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > self.detection_threshold]
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # (K, 2)
        predicted = centres + motion  # (K, 2) where each detection says it was one frame ago
        det_area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), axis=1)  # (K,)
        taken = np.zeros(len(self.tracks), dtype=bool)
        if self.tracks and order:
            positions = np.stack([track.previous_position() for track in self.tracks])  # (M, 2)
            track_area = np.array([np.prod(np.clip(t.box[2:] - t.box[:2], 0, None)) for t in self.tracks])  # (M,)
            track_labels = np.array([track.label for track in self.tracks])
            distance = ((predicted[:, None, :] - positions[None, :, :]) ** 2).sum(-1)  # (K, M) squared
            invalid = (distance > track_area[None, :]) | (distance > det_area[:, None])
            if self.match_labels:
                invalid |= labels[:, None] != track_labels[None, :]
            distance = np.where(invalid, np.inf, distance)
            for i in order:
                row = np.where(taken, np.inf, distance[i])
                j = int(np.argmin(row))
                if np.isfinite(row[j]):
                    taken[j] = True
                    ids[i] = self._match(self.tracks[j], boxes[i], float(scores[i]), centres[i])
        for track, matched in zip(self.tracks, taken, strict=True):
            if not matched:
                track.lost += 1
        self.tracks = [track for track in self.tracks if track.lost <= self.max_age]
        for i in order:
            if ids[i] == -1 and scores[i] > self.new_track_threshold:
                track = Track(self._next_id, boxes[i].copy(), float(scores[i]), int(labels[i]))
                self._next_id += 1
                self.tracks.append(track)
                ids[i] = track.track_id
        return ids

    @staticmethod
    def _match(track: Track, box: np.ndarray, score: float, centre: np.ndarray) -> int:
        """Move ``track`` to its new detection; its velocity is the motion per frame since it was last seen."""
        track.velocity = (centre - track.centre) / (track.lost + 1)
        track.box, track.score, track.lost = box.copy(), score, 0
        track.hits += 1
        return track.track_id
