"""``centernet validate --task track``: track annotated videos with a tracking model and score HOTA / MOTA / IDF1.

    centernet validate --task track --checkpoint CKPT_OR_ONNX --mot MOT_FOLDER [--output DIR]
    centernet validate --task track --checkpoint CKPT_OR_ONNX --coco-video VIDEOS.json --images DIR

Prints the metrics and writes ``metrics.json`` (every metric of :mod:`centernet.tasks.tracking.metrics`, the
checkpoint and the data) into ``--output`` (default ``runs/validate_track``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["run_validate_track", "track_sequences"]


def track_sequences(tracker: Any, sequences: Sequence[Any]) -> dict[str, tuple[list, list]]:
    """Track every :class:`~centernet.data.video_records.VideoSequence`; name -> (ground truth per frame, tracks per
    frame), the input of :func:`~centernet.tasks.tracking.metrics.evaluate_tracking`."""
    from centernet.inference.inputs import read_rgb

    pairs = {}
    for sequence in sequences:
        tracked = list(tracker.track(read_rgb(frame.path) for frame in sequence.frames))
        ground_truth = [(frame.track_ids, frame.boxes) for frame in sequence.frames]
        pairs[sequence.name] = (ground_truth, [(t.track_ids, t.boxes) for t in tracked])
    return pairs


def run_validate_track(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Run the command; returns what ``metrics.json`` holds."""
    parser = argparse.ArgumentParser(prog="centernet validate --task track", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a tracking checkpoint (.ckpt) or its ONNX export")
    parser.add_argument("--mot", help="a MOTChallenge sequence folder or a folder of them")
    parser.add_argument("--coco-video", help="a COCO-video json (with --images)")
    parser.add_argument("--images", help="the folder the COCO-video json's file names are relative to")
    parser.add_argument("--output", default="runs/validate_track")
    parser.add_argument("--max-age", type=int, default=10)
    args = parser.parse_args([a for a in argv if a not in ("--task", "track", "--task=track")])
    from rich.console import Console

    from centernet.data.coco_video import parse_coco_video
    from centernet.data.mot import parse_mot
    from centernet.inference.tracker import Tracker
    from centernet.tasks.tracking.metrics import TRACKING_METRIC_NAMES, evaluate_tracking

    if bool(args.mot) == bool(args.coco_video):
        parser.error("give one of --mot and --coco-video")
    if args.coco_video and not args.images:
        parser.error("--coco-video needs --images")
    source = parse_mot(args.mot) if args.mot else parse_coco_video(args.coco_video, args.images)
    if Path(args.checkpoint).suffix == ".onnx":
        tracker = Tracker.from_onnx(args.checkpoint, max_age=args.max_age)
    else:
        tracker = Tracker.from_checkpoint(args.checkpoint, max_age=args.max_age)
    metrics = evaluate_tracking(track_sequences(tracker, source.sequences))
    payload = {**metrics, "checkpoint": str(args.checkpoint), "data": source.description}
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    Console().print(
        "  ".join(f"{name} {metrics[name]:.3f}" for name in TRACKING_METRIC_NAMES[:3] + ("MOTA", "IDF1"))
        + f"  IDSW {metrics['IDSW']:.0f} ({len(source.sequences)} videos, {source.num_frames} frames)"
    )
    return payload
