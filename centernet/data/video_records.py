"""The internal representation of annotated videos (MOTChallenge, COCO-video), and its validation policy.

Every video parser (:mod:`centernet.data.mot`, :mod:`centernet.data.coco_video`) produces a :class:`VideoSource`:
sequences of :class:`VideoFrame` s in frame order, each with pixel ``x1, y1, x2, y2`` boxes, contiguous labels and
track ids. The policy, applied by the parsers while reading (they know the file and the line):

- A track id used twice in one frame: an error naming the file, the line (or annotation id), the frame and the id.
- Annotations out of frame order (lines of ``gt.txt``, images of a video in a COCO-video json): accepted and
  sorted by frame number; the order of a file carries no meaning.
- The same frame number twice in one video (COCO-video): an error naming both images.
- A missing frame: an image file that the annotations or ``seqinfo.ini`` promise but that does not exist is an
  error naming the file. A gap in the frame numbers of a COCO-video (frames 1, 2, 5) is kept: frames keep their
  numbers, training pairs measure their gap in frame numbers, and the tracker treats the listed frames as
  consecutive (the gap is reported by ``VideoSequence.gaps``).
- A box partly outside its frame is clipped to it; one with no area after clipping, or non-finite, is dropped and
  counted in :attr:`Problems.dropped` with its file and line (as for detection).
- MOTChallenge rows whose "consider" flag (column 7) is 0 are not objects to track (the benchmark ignores them):
  they are left out and counted in ``VideoSource.ignored``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from centernet.data.records import Problems

__all__ = ["VideoFrame", "VideoSequence", "VideoSource", "clip_or_drop"]


@dataclass
class VideoFrame:
    """One annotated frame.

    Attributes:
        path: The image file.
        frame: Frame number in its sequence (1-based, MOTChallenge's and COCO-video's ``frame_id`` convention).
        image_id: Unique integer id over the whole source (for evaluation and messages).
        boxes: (n, 4) float64 ``x1, y1, x2, y2`` pixels.
        labels: (n,) int64 contiguous labels.
        track_ids: (n,) int64 track ids, unique within the frame.
    """

    path: Path
    frame: int
    image_id: int
    boxes: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class VideoSequence:
    """One video: its frames in increasing frame number.

    Attributes:
        name: Sequence name (MOTChallenge folder name, COCO-video ``videos[].name``).
        frames: Frames sorted by frame number.
        width: Frame width in pixels.
        height: Frame height in pixels.
        frame_rate: Frames per second (for writing videos; 30 when the format records none).
        source: The file the sequence was read from, for messages.
    """

    name: str
    frames: list[VideoFrame]
    width: int
    height: int
    frame_rate: float = 30.0
    source: Path = field(default_factory=Path)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """Pairs of consecutive listed frames whose numbers are not consecutive (missing frames between them)."""
        numbers = [frame.frame for frame in self.frames]
        return [(a, b) for a, b in zip(numbers, numbers[1:], strict=False) if b != a + 1]


@dataclass
class VideoSource:
    """Parsed videos plus the label map.

    Attributes:
        sequences: The videos.
        class_names: Class names, index = contiguous label.
        category_ids: The dataset's class ids, index = contiguous label.
        description: What was read, for messages.
        ignored: Annotations left out by the policy (MOTChallenge "consider" flag 0).
    """

    sequences: list[VideoSequence]
    class_names: list[str]
    category_ids: list[int]
    description: str
    ignored: int = 0

    @property
    def num_frames(self) -> int:
        return sum(len(sequence) for sequence in self.sequences)


def clip_or_drop(box: np.ndarray, size: tuple[int, int], where: str, problems: Problems) -> np.ndarray | None:
    """The (4,) xyxy ``box`` clipped to an image of ``size`` (H, W); ``None`` (and a message in
    ``problems.dropped``) when it is non-finite or has no area left."""
    if not np.isfinite(box).all():
        problems.dropped.append(f"{where}: non-finite box {box.tolist()} dropped")
        return None
    height, width = size
    clipped = np.array(
        [
            min(max(box[0], 0), width),
            min(max(box[1], 0), height),
            min(max(box[2], 0), width),
            min(max(box[3], 0), height),
        ]
    )
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        problems.dropped.append(f"{where}: box {box.tolist()} has no area inside the {width}x{height} frame, dropped")
        return None
    if not np.array_equal(clipped, box):
        problems.clipped += 1
    return clipped
