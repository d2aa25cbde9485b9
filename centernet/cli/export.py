"""``centernet export``: write a checkpoint as ONNX or TorchScript with decoding inside the graph.

The file outputs ``boxes`` (N, K, 4) xyxy in input pixels, ``scores`` (N, K) and ``labels`` (N, K) for an input
``images`` (N, 3, H, W) float RGB in [0, 1] (H, W multiples of 32, letterboxed as ``Detector`` does); class
names, category ids and the input size are stored in it. ``centernet predict/validate --checkpoint FILE`` and
``Detector.load(FILE)`` run it (ONNX on ONNX Runtime).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from centernet.cli.predict import positive_int
from centernet.inference import Detector
from centernet.inference.export import export_onnx, export_torchscript

__all__ = ["build_parser", "run_export"]

_SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by `centernet fit` (.ckpt)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--output", default=None, help="output file (default: the checkpoint's name + suffix)")
    parser.add_argument("--image-size", type=positive_int, default=None, help="input side (default: training size)")
    parser.add_argument("--batch-size", type=positive_int, default=1, help="batch size of a fixed-size export")
    parser.add_argument(
        "--max-det", type=positive_int, default=None,
        help="detections per image in the graph (default: the model's max_detections, as it was trained)",
    )  # fmt: skip
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch size and input height/width")
    parser.add_argument("--opset", type=int, default=19, help="ONNX opset (19 or later for deformable convolutions)")
    parser.add_argument("--no-check", action="store_true", help="skip comparing the exported outputs with eager")
    return parser


def run_export(argv: Sequence[str] = ()) -> Path:
    """Run the command; returns the path written."""
    args = build_parser().parse_args(list(argv))
    detector = Detector.from_checkpoint(args.checkpoint, image_size=args.image_size, max_detections=args.max_det)
    model = detector.model.float().eval().to(memory_format=torch.contiguous_format)
    output = Path(args.output) if args.output else Path(args.checkpoint).with_suffix(_SUFFIX[args.format])
    common = {
        "class_names": detector.class_names,
        "category_ids": detector.category_ids,
        "image_size": detector.image_size,
        "batch_size": args.batch_size,
        "dynamic": args.dynamic,
        "max_detections": detector.max_detections,
    }
    if args.format == "onnx":
        export_onnx(model, output, opset=args.opset, **common)
    else:
        export_torchscript(model, output, **common)
    message = f"exported {args.checkpoint} -> {output} ({args.format}, {'dynamic' if args.dynamic else 'fixed'} "
    message += f"input {args.batch_size}x3x{detector.image_size}x{detector.image_size}, "
    message += f"{detector.max_detections} detections per image)"
    if not args.no_check and not model.task.extra_inputs:  # a tracking graph's parity: Tracker.from_onnx's tests
        difference = _compare(detector, output, args.batch_size)
        message += f"; max |exported - eager| on boxes/scores: {difference:.2e}"
    print(message)
    return output


def _compare(detector: Detector, path: Path, batch_size: int) -> float:
    """Largest difference between the exported file and the eager model on random images (same letterbox)."""
    exported = Detector.from_exported(path)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (detector.image_size, detector.image_size, 3), dtype=np.uint8)] * batch_size
    eager = detector.predict(images, score_threshold=0.0)
    other = exported.predict(images, score_threshold=0.0)
    difference = 0.0
    for a, b in zip(eager, other, strict=True):
        if a.boxes.shape != b.boxes.shape:
            raise RuntimeError(f"{path}: exported model returns {len(b.boxes)} detections, eager {len(a.boxes)}")
        difference = max(difference, float(np.abs(a.boxes - b.boxes).max(initial=0)))
        difference = max(difference, float(np.abs(a.scores - b.scores).max(initial=0)))
    return difference
