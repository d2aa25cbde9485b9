"""``centernet validate``: evaluate a checkpoint or an exported model on a validation set (COCO, VOC or YOLO).

Prints the 12 COCO box numbers and the AP of every class, and writes into the output folder:

- ``metrics.json``: the 12 numbers, the per-class AP and how they were obtained (model, mode, input size);
- ``predictions.json``: the detections as COCO results (the dataset's image and category ids, original pixels),
  so any COCO tool can re-evaluate them;
- ``pr_curve_iou50.png`` and ``pr_curve_iou50-95.png``: precision-recall curves per class and their mean.

The data comes from the same YAML files ``fit`` reads (their ``data:`` section, on top of ``configs/base.yaml``),
from the checkpoint's own data settings when no config is given, or from ``--images`` / ``--annotations`` (a COCO
json). The split is read and checked by the same validation policy as training, so VOC and YOLO data are scored
like COCO data. Two
modes: resized to the input size as in training (default), or ``--keep-resolution`` (each image at its own size
padded to a multiple of 32, as the CenterNet paper evaluates).
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from centernet.cli.predict import add_inference_arguments, load_detector, predict_options
from centernet.data import CenterNetDataModule
from centernet.data.coco import source_to_coco
from centernet.data.imagefile import decode_rgb
from centernet.data.records import DetectionSource
from centernet.evaluation import CocoEvaluation, evaluate_coco, format_coco_table, write_metrics_json
from centernet.inference import Detector
from centernet.training.cli import config_path
from centernet.viz import plot_pr_curves

__all__ = ["build_parser", "resolve_data", "run_validate"]


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
        config: A ``fit`` YAML file; its ``data:`` section is read on top of ``configs/base.yaml``'s.
        checkpoint: A Lightning checkpoint; its saved data-module settings are used when ``config`` is None.

    Returns:
        The data module (not set up); the built-in shapes dataset is generated first if needed.
    """
    data: dict[str, Any] = dict(yaml.safe_load(config_path("base").read_text())["data"])
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file")
        loaded = yaml.safe_load(path.read_text()) or {}
        section = loaded.get("data") or {}
        if not isinstance(section, dict):
            raise ValueError(f"{path}: the data: section must be a mapping, got {type(section).__name__}")
        data.update(section)
    elif checkpoint is not None and Path(checkpoint).suffix.lower() == ".ckpt":
        saved = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
        saved_data = saved.get("datamodule_hyper_parameters") or {}
        # LightningCLI records private entries (e.g. ``_instantiator``) next to the settings.
        data.update({key: value for key, value in saved_data.items() if not key.startswith("_")})
    else:
        raise ValueError("say which data to evaluate on: --config FILE, or --images DIR --annotations JSON")
    known = set(inspect.signature(CenterNetDataModule.__init__).parameters) - {"self"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{config or checkpoint}: unknown data keys {unknown}")
    datamodule = CenterNetDataModule(**data)
    datamodule.prepare_data()  # generates the shapes dataset when it is not cached yet
    return datamodule


def run_validate(argv: Sequence[str] = ()) -> dict[str, Any]:
    """Run the command; returns what ``metrics.json`` holds."""
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
    detector = load_detector(args)
    _check_categories(detector, datamodule.category_ids, description)
    source, problems = datamodule.read_split("val")
    problems.raise_if_errors(source.description)
    ground_truth = _ground_truth(datamodule, source)
    results = predict_dataset(detector, source, args)

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "predictions.json").write_text(json.dumps(results))
    evaluation = evaluate_coco(ground_truth, results)
    mode = "keep_resolution" if args.keep_resolution else "resize"
    extra = {
        "model": str(args.checkpoint),
        "backend": detector.backend.name,
        "mode": mode,
        "image_size": None if args.keep_resolution else detector.image_size,
        "flip": args.flip,
        "scales": args.scales,
        "images": len(ground_truth["images"]),
        "annotations": source.description,
        "per_class": evaluation.per_class,
    }
    write_metrics_json(output / "metrics.json", evaluation.metrics, extra)
    _plot(evaluation, output)

    console = Console()
    size = "own size, padded to /32" if args.keep_resolution else f"{detector.image_size} px"
    console.print(format_coco_table(evaluation.metrics, title=f"COCO box metrics ({mode}, {size})"))
    console.print(_per_class_table(evaluation))
    console.print(f"metrics.json, predictions.json and PR curves -> {output}")
    return {**evaluation.metrics, **extra}


def predict_dataset(detector: Detector, source: DetectionSource, args: argparse.Namespace) -> list[dict[str, object]]:
    """COCO results of every image of a validated source, predicted in batches (original pixels)."""
    records = sorted(source.records, key=lambda record: record.image_id)
    results: list[dict[str, object]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("validating", total=len(records))
        for start in range(0, len(records), args.batch_size):
            chunk = records[start : start + args.batch_size]
            # As the training data is read: 8-bit RGB of the stored pixels, EXIF rotation ignored.
            images = [decode_rgb(record.path) for record in chunk]
            predictions = detector.predict(images, args.score_threshold, **predict_options(args))
            for record, prediction in zip(chunk, predictions, strict=True):
                results += prediction.to_coco(record.image_id)
            progress.advance(task, len(chunk))
    return results


def _ground_truth(datamodule: CenterNetDataModule, source: DetectionSource) -> dict[str, Any]:
    """COCO ground truth to score against: a COCO json as written (what pycocotools scores on it, unclipped), else
    the validated VOC / YOLO records. Images that the skip policy left out are left out of the ground truth too."""
    if datamodule.dataset not in ("coco", "shapes"):
        return source_to_coco(source)
    ground_truth = json.loads(Path(datamodule.val_annotations).read_text())
    kept = {record.image_id for record in source.records}
    ground_truth["images"] = [image for image in ground_truth["images"] if image["id"] in kept]
    ground_truth["annotations"] = [a for a in ground_truth.get("annotations", []) if a["image_id"] in kept]
    return ground_truth


def _check_categories(detector: Detector, category_ids: Sequence[int], description: str | Path) -> None:
    ids = sorted(int(i) for i in category_ids)
    if ids != sorted(detector.category_ids):
        raise ValueError(
            f"{description} has category ids {ids} but the model was trained on {sorted(detector.category_ids)}"
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
