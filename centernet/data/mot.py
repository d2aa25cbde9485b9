"""MOTChallenge sequences: reading ``seqinfo.ini`` + ``gt/gt.txt``, writing sequences and tracking results.

A sequence is a folder::

    <name>/seqinfo.ini      [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    <name>/img1/000001.jpg  frame f is imDir / f"{f:06d}{imExt}"
    <name>/gt/gt.txt        frame, id, x, y, w, h, consider, class, visibility   (one object per line)

Results use ``frame, id, x, y, w, h, score, -1, -1, -1``. Coordinates: MOTChallenge's ``x, y`` is the top-left
corner with the first pixel at 1 (its devkit's Matlab heritage); inside centernet a box is continuous ``x1, y1``
with the first pixel's corner at 0, so ``x1 = x - 1`` on reading and ``x = x1 + 1`` on writing (a round trip is
exact). Classes: the ``class`` column's ids (1 when absent) map to contiguous labels in increasing id order.
The validation policy is :mod:`centernet.data.video_records`'.
"""

from __future__ import annotations

import configparser
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from centernet.data.records import DatasetError, Problems, read_annotation_text
from centernet.data.video_records import VideoFrame, VideoSequence, VideoSource, clip_or_drop

__all__ = ["parse_mot", "read_mot_results", "read_seqinfo", "write_mot_results", "write_mot_sequence"]

_SEQINFO_KEYS = ("imDir", "seqLength", "imWidth", "imHeight")


def read_seqinfo(folder: Path) -> dict[str, str]:
    """The ``[Sequence]`` section of ``folder/seqinfo.ini``.

    Raises:
        DatasetError: the file is missing, not an ini file, or lacks one of imDir, seqLength, imWidth, imHeight.
    """
    path = folder / "seqinfo.ini"
    if not path.is_file():
        raise DatasetError(f"MOTChallenge sequence {folder}", [f"{path}: missing (every sequence needs one)"])
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep MOTChallenge's camelCase keys
    try:
        parser.read_string(read_annotation_text(path), source=str(path))
    except configparser.Error as error:
        raise DatasetError(f"MOTChallenge sequence {folder}", [f"{path}: not an ini file ({error})"]) from error
    if not parser.has_section("Sequence"):
        raise DatasetError(f"MOTChallenge sequence {folder}", [f"{path}: no [Sequence] section"])
    info = dict(parser["Sequence"])
    missing = [key for key in _SEQINFO_KEYS if key not in info]
    if missing:
        raise DatasetError(f"MOTChallenge sequence {folder}", [f"{path}: [Sequence] lacks {', '.join(missing)}"])
    return info


def _sequence_folders(root: Path) -> list[Path]:
    """``root`` itself when it is a sequence, else its sub-folders that are (sorted by name)."""
    if (root / "seqinfo.ini").is_file():
        return [root]
    folders = sorted(path for path in root.iterdir() if (path / "seqinfo.ini").is_file()) if root.is_dir() else []
    if not folders:
        raise DatasetError(f"MOTChallenge data {root}", [f"{root}: no seqinfo.ini in it or in its sub-folders"])
    return folders


def parse_mot(root: str | Path, class_names: Sequence[str] | None = None) -> VideoSource:
    """Read one MOTChallenge sequence folder, or a folder of them (a split such as ``MOT17/train``).

    Args:
        root: A sequence folder (with ``seqinfo.ini``) or a folder of sequence folders.
        class_names: Names of the class ids 1, 2, ... (default: the ids found, as text).

    Raises:
        DatasetError: listing every problem found (each names its file and line), after reading everything.
    """
    root = Path(root)
    problems = Problems()
    sequences, rows_per_sequence, ignored = [], [], 0
    for folder in _sequence_folders(root):
        info = read_seqinfo(folder)
        sequence, rows, skipped = _read_sequence(folder, info, problems)
        sequences.append(sequence)
        rows_per_sequence.append(rows)
        ignored += skipped
    found = sorted({int(row[1]) for rows in rows_per_sequence for row in rows})
    if class_names is not None:
        ids = list(range(1, len(class_names) + 1))
        names = list(class_names)
        for rows in rows_per_sequence:
            for row in rows:
                if not 1 <= int(row[1]) <= len(ids):
                    problems.error(f"{row[3]}: class {int(row[1])} is not one of 1..{len(ids)} ({names})")
    else:
        ids, names = found or [1], [str(i) for i in (found or [1])]
    label_of = {class_id: label for label, class_id in enumerate(ids)}
    image_id = 0
    for rows, sequence in zip(rows_per_sequence, sequences, strict=True):
        by_frame: dict[int, list[tuple]] = {}
        for row in rows:
            by_frame.setdefault(int(row[0]), []).append(row)
        for frame in sequence.frames:
            image_id += 1
            frame.image_id = image_id
            kept = [row for row in by_frame.get(frame.frame, []) if int(row[1]) in label_of]
            seen: dict[int, str] = {}
            for row in kept:
                track_id, where = int(row[4]), row[3]
                if track_id in seen:
                    problems.error(
                        f"{where}: track id {track_id} is used twice in frame {frame.frame} ({seen[track_id]})"
                    )
                seen[track_id] = where
            frame.boxes = np.array([row[2] for row in kept], dtype=np.float64).reshape(-1, 4)
            frame.labels = np.array([label_of[int(row[1])] for row in kept], dtype=np.int64)
            frame.track_ids = np.array([int(row[4]) for row in kept], dtype=np.int64)
    description = f"MOTChallenge data {root}"
    problems.raise_if_errors(description)
    return VideoSource(sequences, names, list(ids), description, ignored=ignored)


def _read_sequence(folder: Path, info: dict[str, str], problems: Problems) -> tuple[VideoSequence, list[tuple], int]:
    """The sequence's frames (image files checked) and its kept gt rows ``(frame, class, box, where, track id)``."""
    seqinfo = folder / "seqinfo.ini"
    try:
        length, width, height = int(info["seqLength"]), int(info["imWidth"]), int(info["imHeight"])
        frame_rate = float(info.get("frameRate", 30))
    except ValueError as error:
        raise DatasetError(f"MOTChallenge sequence {folder}", [f"{seqinfo}: {error}"]) from error
    image_dir, extension = folder / info["imDir"], info.get("imExt", ".jpg")
    frames = []
    for number in range(1, length + 1):
        path = image_dir / f"{number:06d}{extension}"
        if not path.is_file():
            problems.error(f"{path}: missing frame {number} of {length} ({seqinfo} promises seqLength={length})")
        empty = np.zeros((0, 4))
        frames.append(VideoFrame(path, number, 0, empty, np.zeros(0, np.int64), np.zeros(0, np.int64)))
    sequence = VideoSequence(info.get("name", folder.name), frames, width, height, frame_rate, seqinfo)
    gt = folder / "gt" / "gt.txt"
    if not gt.is_file():
        return sequence, [], 0  # a test sequence: frames without annotations
    rows, ignored = [], 0
    for line_number, line in enumerate(read_annotation_text(gt).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{gt}:{line_number}"
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError:
            problems.error(f"{where}: not comma-separated numbers: {line.strip()!r}")
            continue
        if len(values) < 6:
            problems.error(f"{where}: {len(values)} columns, need at least frame, id, x, y, w, h")
            continue
        frame, track_id, x, y, w, h = values[:6]
        if len(values) > 6 and values[6] == 0:
            ignored += 1
            continue
        class_id = int(values[7]) if len(values) > 7 and values[7] > 0 else 1
        if frame != int(frame) or not 1 <= frame <= length:
            problems.error(f"{where}: frame {values[0]:g} is not one of 1..{length} (seqLength in {seqinfo})")
            continue
        box = clip_or_drop(np.array([x - 1, y - 1, x - 1 + w, y - 1 + h]), (height, width), where, problems)
        if box is not None:
            rows.append((int(frame), class_id, box, where, int(track_id)))
    return sequence, rows, ignored


def write_mot_sequence(
    folder: Path, images: Iterable[np.ndarray], rows: Sequence[Sequence[float]], frame_rate: float = 30.0
) -> None:
    """Write a MOTChallenge sequence: frames (H, W, 3) RGB uint8 as ``img1/%06d.jpg``, ``gt/gt.txt`` from rows
    ``(frame, id, x1, y1, x2, y2, class, visibility)`` in centernet's pixel convention, and ``seqinfo.ini``."""
    import cv2

    image_dir = folder / "img1"
    image_dir.mkdir(parents=True, exist_ok=True)
    count, height, width = 0, 0, 0
    for count, image in enumerate(images, start=1):
        height, width = image.shape[:2]
        cv2.imwrite(
            str(image_dir / f"{count:06d}.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
    (folder / "gt").mkdir(exist_ok=True)
    lines = [
        f"{int(f)},{int(i)},{x1 + 1:.2f},{y1 + 1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},1,{int(c)},{v:.3f}"
        for f, i, x1, y1, x2, y2, c, v in rows
    ]
    (folder / "gt" / "gt.txt").write_text("".join(line + "\n" for line in lines))
    (folder / "seqinfo.ini").write_text(
        f"[Sequence]\nname={folder.name}\nimDir=img1\nframeRate={frame_rate:g}\nseqLength={count}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.jpg\n"
    )


def write_mot_results(path: Path, rows: Iterable[tuple[int, int, np.ndarray, float]]) -> None:
    """Write tracking results ``(frame, track id, (4,) xyxy box, score)`` as MOTChallenge lines
    ``frame,id,x,y,w,h,score,-1,-1,-1`` sorted by frame then id."""
    lines = []
    for frame, track_id, box, score in sorted(rows, key=lambda row: (row[0], row[1])):
        x1, y1, x2, y2 = (float(v) for v in box)
        lines.append(f"{frame},{track_id},{x1 + 1:.2f},{y1 + 1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def read_mot_results(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Tracking results per frame: ``frame -> (ids (n,), xyxy boxes (n, 4), scores (n,))`` (score 1 when absent).

    Raises:
        DatasetError: a malformed line, naming the file and line.
    """
    frames: dict[int, list[list[float]]] = {}
    for line_number, line in enumerate(read_annotation_text(Path(path)).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError as error:
            raise DatasetError(f"tracking results {path}", [f"{path}:{line_number}: not numbers"]) from error
        if len(values) < 6:
            raise DatasetError(f"tracking results {path}", [f"{path}:{line_number}: fewer than 6 columns"])
        frames.setdefault(int(values[0]), []).append(values)
    out = {}
    for frame, rows in frames.items():
        array = np.array([row[:7] + [1.0] * (7 - len(row[:7])) for row in rows], dtype=np.float64)
        boxes = np.stack(
            [array[:, 2] - 1, array[:, 3] - 1, array[:, 2] - 1 + array[:, 4], array[:, 3] - 1 + array[:, 5]], 1
        )
        out[frame] = (array[:, 1].astype(np.int64), boxes, array[:, 6])
    return out
