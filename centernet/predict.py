"""``centernet predict``: detect objects in an image or a folder with a trained checkpoint.

Writes one annotated copy of each image and ``predictions.json`` (COCO results: ``bbox`` as x, y, w, h in
original pixels, the dataset's own ``category_id``, plus ``file_name``) into the output folder.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import cv2
from rich.progress import track

from .evaluation import coco_results
from .inference import Detector, list_images, read_rgb
from .viz import draw_detections

__all__ = ["build_parser", "run_predict"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centernet predict", description=__doc__)
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by `centernet fit` (.ckpt)")
    parser.add_argument("--source", required=True, help="an image file or a folder of images")
    parser.add_argument("--output", default="runs/predict", help="folder for annotated images and predictions.json")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="keep detections scoring above this")
    parser.add_argument("--image-size", type=int, default=None, help="network input side (default: training size)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward pass")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    return parser


def run_predict(argv: Sequence[str] = ()) -> Path:
    """Run the command; returns the path of ``predictions.json``."""
    args = build_parser().parse_args(list(argv))
    detector = Detector.from_checkpoint(args.checkpoint, device=args.device, image_size=args.image_size)
    paths = list_images(args.source)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, object]] = []
    for start in track(range(0, len(paths), args.batch_size), description="predicting"):
        chunk = paths[start : start + args.batch_size]
        images = [read_rgb(path) for path in chunk]
        predictions = detector.predict(images, score_threshold=args.score_threshold, batch_size=args.batch_size)
        for offset, (path, image, prediction) in enumerate(zip(chunk, images, predictions, strict=True)):
            drawing = draw_detections(
                image, prediction.boxes, prediction.labels, prediction.scores, detector.class_names
            )
            cv2.imwrite(str(output / f"{path.stem}.png"), cv2.cvtColor(drawing, cv2.COLOR_RGB2BGR))
            extra = {"file_name": path.name}
            results += coco_results(start + offset, prediction.boxes, prediction.scores, prediction.category_ids, extra)
    json_path = output / "predictions.json"
    json_path.write_text(json.dumps(results))
    print(f"{len(paths)} images, {len(results)} detections -> {output} ({json_path.name})")
    return json_path
