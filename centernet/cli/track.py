"""``centernet track``: follow objects through videos or folders of frames with a tracking-task model.

    centernet track --source clip.mp4 [frames/ ...] --checkpoint model.ckpt [--out runs/track]

Writes, per source, ``<name>.txt`` (MOTChallenge results: ``frame,id,x,y,w,h,score,-1,-1,-1``), ``<name>.json``
(COCO-video, with ``track_id`` and ``score``) and ``<name>.mp4`` (each track in its own stable colour, labelled
with its id) into ``--out``. Frames are processed one at a time as they are read (streaming).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

__all__ = ["run_track"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centernet track", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", nargs="+", required=True, help="videos and/or folders of frames (sorted by name)")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a tracking-task `centernet fit` checkpoint (PyTorch)")
    model.add_argument("--onnx", help="a tracking model exported to ONNX (run by ONNX Runtime)")
    parser.add_argument("--out", default="runs/track", help="output folder (default runs/track)")
    parser.add_argument("--image-size", type=int, default=None, help="network input side (default: as trained)")
    parser.add_argument("--detection-threshold", type=float, default=0.3, help="ignore detections scoring below")
    parser.add_argument("--new-track-threshold", type=float, default=0.4, help="score to start a new track")
    parser.add_argument("--max-age", type=int, default=10, help="frames a lost track is kept (default 10)")
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video")
    return parser


def _frames(source: Path) -> tuple[Iterator[np.ndarray], int, float]:
    """(frames as RGB uint8, frame count or 0 if unknown, frames per second)."""
    from centernet.inference.inputs import is_video, list_images, read_rgb, read_video, video_info

    if is_video(source):
        info = video_info(source)
        return read_video(source), info.frames, info.fps
    paths = list_images(source)
    return (read_rgb(path) for path in paths), len(paths), 25.0


def run_track(argv: Sequence[str] = ()) -> Path:
    """Run the command; returns the output folder."""
    args = _parser().parse_args(list(argv))
    from rich.progress import Progress

    from centernet.data.coco_video import write_coco_video
    from centernet.data.mot import write_mot_results
    from centernet.inference.tracker import Tracker
    from centernet.viz import draw_detections

    options = {"detection_threshold": args.detection_threshold, "new_track_threshold": args.new_track_threshold,
               "max_age": args.max_age}  # fmt: skip
    if args.checkpoint:
        tracker = Tracker.from_checkpoint(args.checkpoint, image_size=args.image_size, **options)
    else:
        tracker = Tracker.from_onnx(args.onnx, **options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for source in map(Path, args.source):
        frames, total, fps = _frames(source)
        name = source.stem if source.is_file() else source.name
        rows, coco_frames, writer = [], [], None
        with Progress(transient=True) as progress:
            task = progress.add_task(f"tracking {name}", total=total or None)
            for index, (frame, tracks) in enumerate(_with_tracks(tracker, frames), start=1):
                rows += [(index, int(i), box, float(s)) for i, box, s in zip(tracks.track_ids, tracks.boxes,
                                                                              tracks.scores, strict=True)]  # fmt: skip
                coco_frames.append((f"{name}/{index:06d}", list(zip(tracks.track_ids.tolist(), tracks.boxes,
                                    tracks.labels.tolist(), tracks.scores.tolist(), strict=True))))  # fmt: skip
                if not args.no_video:
                    if writer is None:
                        height, width = frame.shape[:2]
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                        writer = cv2.VideoWriter(str(out / f"{name}.mp4"), fourcc, fps, (width, height))
                    drawn = draw_detections(frame, tracks.boxes, tracks.track_ids)
                    writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                progress.advance(task)
        if writer is not None:
            writer.release()
        if not coco_frames:
            raise ValueError(f"{source}: no frames")
        height, width = frame.shape[:2]
        write_mot_results(out / f"{name}.txt", rows)
        write_coco_video(out / f"{name}.json", [(name, width, height, coco_frames)], tracker.class_names,
                         tracker.category_ids)  # fmt: skip
        print(f"{source}: {len(coco_frames)} frames, {len({r[1] for r in rows})} tracks -> {out / name}.txt/.json"
              + ("" if args.no_video else "/.mp4"))  # fmt: skip
    return out


def _with_tracks(tracker, frames: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, object]]:
    """Pairs (frame, its tracks), streaming."""
    kept: list[np.ndarray] = []

    def remember() -> Iterator[np.ndarray]:
        for frame in frames:
            kept.append(frame)
            yield frame

    for tracks in tracker.track(remember()):
        yield kept.pop(0), tracks
