"""Frames per second of ``centernet track`` on the CPU, and the share of association in the frame time.

A clip of moving shapes (generated at the input size, 512 px by default) is tracked end to end, reading aside:
letterbox, prior heatmap, network with decoding, selection, association. Backends: ONNX Runtime (the export of
the three-input graph with decoding inside) and the eager PyTorch model, paired (interleaved repetitions,
``benchmarks/timing.py``); the eager / ONNX ratio is the median of per-repetition ratios (IQR). The association
share is the time inside ``GreedyAssociator.update`` over the whole frame time, per repetition. ``--videos N``
tracks N copies of the clip together (``Tracker.track_many``, frame t of each in one forward pass; the ONNX graph is
then exported with a dynamic batch), frames/s counting the frames of all of them.

Usage:

    python benchmarks/track_speed.py --checkpoint runs/demo_track/checkpoints/last.ckpt
    python benchmarks/track_speed.py --checkpoint CKPT --image-size 512 --frames 30 --repeats 5
    python benchmarks/track_speed.py --checkpoint CKPT --videos 4
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from timing import machine_header, paired_times, ratio_stats

from centernet.data.moving_shapes import generate_moving_shapes
from centernet.inference.export import export_onnx
from centernet.inference.tracker import Tracker
from centernet.model.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/demo_track/checkpoints/last.ckpt")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--videos", type=int, default=1, help="copies of the clip tracked together (batch size)")
    args = parser.parse_args()
    print(machine_header())
    frames, _ = generate_moving_shapes(seed=0, split="val", index=0, num_frames=args.frames, image_size=args.image_size)
    loaded = load_model(args.checkpoint)
    with tempfile.TemporaryDirectory() as folder:
        onnx_path = export_onnx(
            loaded.model, Path(folder) / "tracker.onnx", loaded.class_names, loaded.category_ids, args.image_size,
            dynamic=args.videos > 1,
        )  # fmt: skip
        trackers = {
            "onnxruntime": Tracker.from_onnx(onnx_path),
            "eager": Tracker.from_checkpoint(args.checkpoint, image_size=args.image_size),
        }
        shares: dict[str, list[float]] = {name: [] for name in trackers}
        counts: dict[str, float] = {}

        def run(name: str):
            def call() -> None:
                tracker = trackers[name]
                if args.videos == 1:
                    tracked = list(tracker.track(frames))
                else:
                    tracked = [t for _, _, t in tracker.track_many([frames] * args.videos, batch_size=args.videos)]
                shares[name].append(tracker.association_seconds)  # summed over the videos
                counts[name] = statistics.mean(len(t) for t in tracked)

            return call

        times = paired_times({name: run(name) for name in trackers}, args.repeats, warmup=1)
    batch = "batch 1 (streaming)" if args.videos == 1 else f"{args.videos} videos in lockstep, batch {args.videos}"
    print(f"{args.frames} frames of {args.image_size} px moving shapes, {batch}")
    for name in trackers:
        association = shares[name][-args.repeats :]  # the timed repetitions (the first one was the warm-up)
        fps = [args.videos * args.frames / t for t in times[name]]
        share = [a / t for a, t in zip(association, times[name], strict=True)]
        print(
            f"  {name:12s} {statistics.median(fps):6.1f} frames/s (IQR {statistics.quantiles(fps, n=4)[0]:.1f}-"
            f"{statistics.quantiles(fps, n=4)[2]:.1f}), association {100 * statistics.median(share):.2f} % of the "
            f"frame time, {counts[name]:.1f} tracks per frame"
        )
    print(f"  eager / onnxruntime frame time: {ratio_stats(times['eager'], times['onnxruntime'])}")


if __name__ == "__main__":
    main()
