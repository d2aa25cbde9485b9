"""``centernet validate``: evaluate a checkpoint or an exported model on a validation set (COCO, VOC or YOLO).

Prints the 12 COCO box numbers and the AP of every class, and writes into the output folder:

- ``metrics.json``: the 12 numbers, the per-class AP and how they were obtained (model, mode, input size);
- ``predictions.json``: the detections as COCO results (the dataset's image and category ids, original pixels),
  so any COCO tool can re-evaluate them;
- ``pr_curve_iou50.png`` and ``pr_curve_iou50-95.png``: precision-recall curves per class and their mean.

The data comes from the same YAML files ``fit`` reads (their ``data:`` section, read by ``fit``'s own parser on
top of ``configs/base.yaml``), from the checkpoint's own data settings when no config is given, or from
``--images`` / ``--annotations`` (a COCO json). The split is read and checked by the same validation policy as
training and scored by the same evaluator as validation during ``fit`` (the task's), against the same ground truth:
the annotations as the policy left them (boxes clipped to their image, boxes without area dropped), so a
checkpoint gets the same 12 numbers here as in training. Two modes: resized to the input size as in training
(default), or ``--keep-resolution`` (each image at its own size padded to a multiple of 32, as the CenterNet paper
evaluates), or ``--tile SIZE [--overlap PX]``: sliced inference at the images' own resolution, as ``predict --tile``
runs it (for images far larger than the network).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from centernet.cli.config import image_data, read_config
from centernet.cli.predict import add_inference_arguments, load_detector, predict_options
from centernet.data.datamodule import CenterNetDataModule
from centernet.data.imagefile import decode_rgb
from centernet.data.records import DetectionSource
from centernet.evaluation import CocoEvaluation, format_coco_table, write_metrics_json
from centernet.inference import Detector
from centernet.model.checkpoint import read_checkpoint
from centernet.viz import plot_pr_curves

__all__ = ["build_parser", "evaluate_source", "resolve_data", "run_validate"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet validate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_inference_arguments(parser)
    parser.add_argument("--config", default=None, help="a YAML config of `centernet fit`; its data: section is used")
    parser.add_argument("--images", default=None, help="folder of the validation images (overrides the config)")
    parser.add_argument("--annotations", default=None, help="COCO json of the validation images (overrides)")
    parser.add_argument("--output", default="runs/validate", help="folder for metrics.json, predictions.json, plots")
    parser.add_argument(
        "--conf", "--score-threshold", dest="score_threshold", type=float, default=0.0,
        help="keep detections scoring above this (0: all top-K, as COCO evaluation expects)",
    )  # fmt: skip
    return parser


def resolve_data(config: str | None, checkpoint: str | Path | None) -> CenterNetDataModule:
    """The data module that a config (or the checkpoint) describes; its ``val`` split is evaluated.

    Args:
        config: A ``fit`` YAML file; read as ``fit`` reads it, on top of ``configs/base.yaml``.
        checkpoint: A ``centernet fit`` checkpoint; its saved data-module settings are used when ``config`` is None.

    Returns:
        The data module (not set up); the built-in shapes dataset is generated first if needed.
    """
    if config is not None:
        instead = "a tracker is scored on videos: centernet validate --task track --checkpoint CKPT --mot DIR"
        data = image_data(read_config([config]), "validate", instead)
    elif checkpoint is not None and Path(checkpoint).suffix.lower() == ".ckpt":
        saved = read_checkpoint(checkpoint).get("datamodule_hyper_parameters") or {}
        if not saved:
            raise ValueError(f"{checkpoint}: holds no data settings; give --config FILE or --images and --annotations")
        data = read_config(sections={"data": saved})["data"]
    else:
        raise ValueError("say which data to evaluate on: --config FILE, or --images DIR --annotations JSON")
    datamodule = CenterNetDataModule(**data)
    datamodule.prepare_data()  # generates the shapes dataset when it is not cached yet
    return datamodule


def run_validate(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Run the command; returns what ``metrics.json`` holds."""
    if "--task=track" in argv or any(a == "--task" and b == "track" for a, b in zip(argv, argv[1:], strict=False)):
        from centernet.cli.validate_track import run_validate_track

        return run_validate_track(argv)
    args = build_parser().parse_args(list(argv))
    if args.images and args.annotations:
        datamodule = CenterNetDataModule(dataset="coco", val_images=args.images, val_annotations=args.annotations)
        description = args.annotations
    else:
        datamodule = resolve_data(args.config, args.checkpoint)
        if args.images or args.annotations:
            datamodule.val_images = args.images or datamodule.val_images
            datamodule.val_annotations = args.annotations or datamodule.val_annotations
        description = args.config or args.checkpoint
    if args.tile is None and datamodule.native_resolution:
        args.tile = datamodule.image_size  # trained on native crops: evaluate as fit validated, sliced
    detector = load_detector(args)
    _check_categories(detector, datamodule.category_ids, datamodule.class_names, description)
    source, problems = datamodule.read_split("val")
    problems.raise_if_errors(source.description)
    evaluator, results = evaluate_source(detector, source, args)

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "predictions.json").write_text(json.dumps(results))
    evaluation = evaluator.compute()
    mode = "sliced" if args.tile else "keep_resolution" if args.keep_resolution else "resize"
    extra = {
        "model": str(args.checkpoint),
        "backend": detector.backend.name,
        "mode": mode,
        "image_size": None if args.keep_resolution else detector.image_size,
        "flip": args.flip,
        "scales": args.scales,
        "tile": args.tile,
        "overlap": args.overlap,
        "tile_merge": args.tile_merge if args.tile else None,
        "max_detections": detector.max_detections if args.max_det is None else args.max_det,
        "images": len(source.records),
        "annotations": source.description,
        "per_class": evaluation.per_class,
    }
    write_metrics_json(output / "metrics.json", evaluation.metrics, extra)
    _plot(evaluation, output)

    console = Console()
    size = "own size, padded to /32" if args.keep_resolution else f"{detector.image_size} px"
    if args.tile:
        size = f"own size, tiles of at most {args.tile} px"
    title = f"COCO {'box and keypoint' if 'kp_map' in evaluation.metrics else 'box'} metrics ({mode}, {size})"
    console.print(format_coco_table(evaluation.metrics, title, max_detections=extra["max_detections"]))
    console.print(_per_class_table(evaluation))
    console.print(f"metrics.json, predictions.json and PR curves -> {output}")
    return {**evaluation.metrics, **extra}


def evaluate_source(
    detector: Detector, source: DetectionSource, args: argparse.Namespace
) -> tuple[Any, list[dict[str, object]]]:
    """Predict every image of a validated source in batches and feed the task's evaluator, image by image.

    Returns:
        The evaluator (with every image added) and the detections as COCO results (the dataset's image and
        category ids, original pixels).
    """
    records = sorted(source.records, key=lambda record: record.image_id)
    limit = detector.max_detections if args.max_det is None else args.max_det
    evaluator = detector.task.evaluator(detector.class_names, detector.category_ids, limit)
    with Progress(transient=True) as progress:
        task = progress.add_task("validating", total=len(records))
        for start in range(0, len(records), args.batch_size):
            chunk = records[start : start + args.batch_size]
            # As the training data is read: 8-bit RGB of the stored pixels, EXIF rotation ignored.
            images = [decode_rgb(record.path) for record in chunk]
            predictions = detector.predict(images, args.score_threshold, **predict_options(args))
            for record, prediction in zip(chunk, predictions, strict=True):
                ground_truth = {
                    "boxes": record.boxes,
                    "labels": record.labels,
                    "iscrowd": record.iscrowd,
                    "area": record.area,
                }
                if record.keypoints is not None:  # pose data: the joints in original pixels
                    ground_truth["keypoints"] = record.keypoints
                evaluator.update(record.image_id, (record.height, record.width), ground_truth, prediction)
            progress.advance(task, len(chunk))
    return evaluator, evaluator.results()


def _check_categories(
    detector: Detector, category_ids: Sequence[int], class_names: Sequence[str], description: str | Path
) -> None:
    """The data must have the model's categories: the same ids with the same names (swapped names under the same
    ids would score every class against another one's boxes)."""
    ids = sorted(int(i) for i in category_ids)
    if ids != sorted(detector.category_ids):
        raise ValueError(
            f"{description} has category ids {ids} but the model was trained on {sorted(detector.category_ids)}"
        )
    model = dict(zip(detector.category_ids, detector.class_names, strict=True))
    data = dict(zip((int(i) for i in category_ids), class_names, strict=True))
    renamed = [f"id {i}: {data[i]!r} (model: {model[i]!r})" for i in ids if data[i] != model[i]]
    if renamed:
        raise ValueError(
            f"{description} names categories differently from the model: {', '.join(renamed)}; the ids must mean the "
            "same classes"
        )


def _per_class_table(evaluation: CocoEvaluation) -> Table:
    table = Table(title="AP per class")
    for column in ("category_id", "name", "ground truth", "AP", "AP50"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for row in evaluation.per_class:
        table.add_row(
            str(row["category_id"]), str(row["name"]), str(row["num_ground_truth"]),
            f"{row['ap']:.4f}", f"{row['ap50']:.4f}",
        )  # fmt: skip
    return table


def _plot(evaluation: CocoEvaluation, output: Path) -> None:
    names = [str(row["name"]) for row in evaluation.per_class]
    recall = evaluation.recall_thresholds
    at_50 = evaluation.precision[0]  # (R, K)
    # Averaged over the 10 IoU thresholds, as AP@[.5:.95] averages them; undefined (-1) stays undefined.
    defined = (evaluation.precision > -1).all(axis=0)  # (R, K)
    mean = np.where(defined, evaluation.precision.mean(axis=0), -1.0)
    plot_pr_curves(recall, at_50, names, output / "pr_curve_iou50.png", "precision-recall, IoU 0.50")
    plot_pr_curves(recall, mean, names, output / "pr_curve_iou50-95.png", "precision-recall, IoU 0.50:0.95 (mean)")
