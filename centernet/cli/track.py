"""``centernet track``: follow objects through videos or folders of frames with a tracking-task model.

    centernet track --source clip.mp4 [frames/ ...] --checkpoint model.ckpt [--out runs/track] [--batch-size 8]

Writes, per source, ``<name>.txt`` (MOTChallenge results: ``frame,id,x,y,w,h,score,-1,-1,-1``), ``<name>.json``
(COCO-video, with ``track_id`` and ``score``) and ``<name>.mp4`` (each track in its own stable colour, labelled
with its id) into ``--out``. Several sources are tracked together, the current frame of up to ``--batch-size`` of
them in one forward pass (``Tracker.track_many``), each with its own tracks and ids, so every output is the one a
run on that source alone writes. Frames are processed one at a time as they are read (streaming), and a source's
files are written as soon as its last frame is tracked.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from centernet.cli.predict import positive_int

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from centernet.tasks.tracking.online import FrameTracks

__all__ = ["run_track"]

_DEFAULT_BATCH = 8


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centernet track", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", nargs="+", required=True,
        help="videos, folders of frames (sorted by name) and/or MOTChallenge sequence folders (seqinfo.ini)",
    )  # fmt: skip
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a tracking-task `centernet fit` checkpoint (PyTorch)")
    model.add_argument("--onnx", help="a tracking model exported to ONNX (run by ONNX Runtime)")
    parser.add_argument("--out", default="runs/track", help="output folder (default runs/track)")
    parser.add_argument("--image-size", type=int, default=None, help="network input side (default: as trained)")
    parser.add_argument("--detection-threshold", type=float, default=0.3, help="ignore detections scoring below")
    parser.add_argument("--new-track-threshold", type=float, default=0.4, help="score to start a new track")
    parser.add_argument("--max-age", type=int, default=10, help="frames a lost track is kept (default 10)")
    parser.add_argument(
        "--batch-size", type=positive_int, default=_DEFAULT_BATCH,
        help=f"sources tracked together, one forward pass for a frame of each (default {_DEFAULT_BATCH}; at most "
        "this many are open at once, the next one starts when one ends; 1: one after the other). Each source's "
        "results are those of tracking it alone. An ONNX file exported without --dynamic runs its fixed batch at a "
        "time",
    )  # fmt: skip
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    return parser


def _sequence(source: Path) -> tuple[Path, dict[str, str]] | None:
    """The MOTChallenge sequence ``source`` is (a folder with ``seqinfo.ini``) or is the frame folder of, with its
    ``seqinfo.ini`` entries; ``None`` for a video or a plain folder of frames."""
    from centernet.data.mot import read_seqinfo

    if not source.is_dir():
        return None
    if (source / "seqinfo.ini").is_file():
        return source, read_seqinfo(source)
    if (source.parent / "seqinfo.ini").is_file():
        info = read_seqinfo(source.parent)
        return (source.parent, info) if source.name == info["imDir"] else None
    return None


def _source_name(source: Path) -> str:
    """The name of a source's output files: a video's stem, a MOTChallenge sequence's folder (also when its
    ``img1/`` is given: every sequence has one), else the folder of frames."""
    sequence = _sequence(source)
    if sequence is not None:
        return sequence[0].name
    return source.stem if source.is_file() else source.name


def _frames(source: Path) -> tuple[Iterator[np.ndarray], int, float]:
    """(frames as RGB uint8, frame count or 0 if unknown, frames per second). A MOTChallenge sequence folder gives
    the frames of its ``imDir`` at its ``frameRate``."""
    from centernet.inference.inputs import is_video, list_images, read_rgb, read_video, video_info

    if is_video(source):
        info = video_info(source)
        return read_video(source), info.frames, info.fps
    fps, sequence = 25.0, _sequence(source)
    if sequence is not None:
        folder, seqinfo = sequence
        source, fps = folder / seqinfo["imDir"], float(seqinfo.get("frameRate", fps))
    paths = list_images(source)
    return (read_rgb(path) for path in paths), len(paths), fps


class _Output:
    """What ``centernet track`` writes for one source, filled frame by frame as its tracks arrive.

    Args:
        source: The video file or folder of frames.
        out: The output folder.
        write_video: Whether to write ``<name>.mp4``.
        progress: The shared progress display; this source has a bar while it is being tracked.
    """

    def __init__(self, source: Path, out: Path, write_video: bool, progress: Progress) -> None:
        self.source = source
        self.name = _source_name(source)
        self.out = out
        self.write_video = write_video
        self.progress = progress
        self.rows: list[tuple[int, int, np.ndarray, float]] = []  # MOT rows: (frame from 1, id, xyxy, score)
        self.coco_frames: list[tuple[str, list]] = []
        self.pending: deque[np.ndarray] = deque()  # frames read and not yet tracked (one in lockstep)
        self.size: tuple[int, int] | None = None  # (H, W) of the frames
        self.writer: cv2.VideoWriter | None = None
        self.fps = 25.0
        self.task: TaskID | None = None
        self.ended = False  # every frame has been read
        self.written = False

    def frames(self) -> Iterator[np.ndarray]:
        """The source's frames, (H, W, 3) uint8 RGB, read lazily (the tracker starts it when it has a place)."""
        frames, total, self.fps = _frames(self.source)
        self.task = self.progress.add_task(f"tracking {self.name}", total=total or None)
        for frame in frames:
            self.pending.append(frame)
            yield frame
        self.ended = True

    def add(self, frame_index: int, tracks: FrameTracks) -> None:
        """The tracks of frame ``frame_index`` (from 0), original pixels."""
        frame = self.pending.popleft()
        self.size = frame.shape[:2]
        number = frame_index + 1
        self.rows += [(number, int(i), box, float(s)) for i, box, s in zip(tracks.track_ids, tracks.boxes,
                                                                           tracks.scores, strict=True)]  # fmt: skip
        self.coco_frames.append((f"{self.name}/{number:06d}", list(zip(tracks.track_ids.tolist(), tracks.boxes,
                                 tracks.labels.tolist(), tracks.scores.tolist(), strict=True))))  # fmt: skip
        if self.write_video:
            if self.writer is None:
                height, width = frame.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                self.writer = cv2.VideoWriter(str(self.out / f"{self.name}.mp4"), fourcc, self.fps, (width, height))
            from centernet.viz import draw_detections

            drawn = draw_detections(frame, tracks.boxes, tracks.track_ids)
            self.writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        self.progress.advance(self.task)

    def finish(self, class_names: list[str], category_ids: list[int]) -> None:
        """Write the MOT txt and the COCO-video json (and close the video) once every frame is tracked."""
        from centernet.data.coco_video import write_coco_video
        from centernet.data.mot import write_mot_results

        self.written = True
        if self.writer is not None:
            self.writer.release()
        if self.task is not None:
            self.progress.remove_task(self.task)
        if not self.coco_frames:
            raise ValueError(f"{self.source}: no frames")
        height, width = self.size
        write_mot_results(self.out / f"{self.name}.txt", self.rows)
        write_coco_video(self.out / f"{self.name}.json", [(self.name, width, height, self.coco_frames)], class_names,
                         category_ids)  # fmt: skip
        tracks = len({row[1] for row in self.rows})
        print(f"{self.source}: {len(self.coco_frames)} frames, {tracks} tracks -> {self.out / self.name}.txt/.json"
              + ("" if not self.write_video else "/.mp4"))  # fmt: skip


def run_track(argv: Sequence[str] = ()) -> Path:
    """Run the command; returns the output folder."""
    args = _parser().parse_args(list(argv))
    from rich.progress import Progress

    from centernet.inference.tracker import Tracker

    options = {"detection_threshold": args.detection_threshold, "new_track_threshold": args.new_track_threshold,
               "max_age": args.max_age}  # fmt: skip
    if args.checkpoint:
        tracker = Tracker.from_checkpoint(args.checkpoint, image_size=args.image_size, **options)
    else:
        tracker = Tracker.from_onnx(args.onnx, **options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(transient=True) as progress:
        outputs = [_Output(source, out, not args.no_video, progress) for source in map(Path, args.source)]
        names: dict[str, Path] = {}
        for output in outputs:  # tracked together, two sources of one name would write into the same files
            if output.name in names:
                raise ValueError(f"{names[output.name]} and {output.source} would both write {out / output.name}.*")
            names[output.name] = output.source
        for index, frame_index, tracks in tracker.track_many((o.frames() for o in outputs), args.batch_size):
            outputs[index].add(frame_index, tracks)
            # A source whose frames have run out has had all its tracks (the tracker asks a video for its next
            # frame only after the previous frame's tracks were taken): write it now rather than at the end.
            for output in outputs:
                if output.ended and not output.written:
                    output.finish(tracker.class_names, tracker.category_ids)
        for output in outputs:  # the last ones to end, and sources without frames
            if not output.written:
                output.finish(tracker.class_names, tracker.category_ids)
    return out
