"""``centernet data check``: validate a dataset without training and report on it.

Reads the ``data:`` section of the training config (on top of ``configs/base.yaml``, like ``centernet fit``),
reads and validates every annotation and image of the train and val splits, prints a summary (images, boxes per
class, box sizes, every problem with its file) and writes into the output folder:

- ``labels.png``: boxes per class, box width x height, box centres and boxes per image (training split);
- ``train_batch.png``: training images as the model sees them (after augmentation) with their boxes drawn;
- ``report.json``: the numbers and the full list of problems.

Exit status 1 if there are errors (training would refuse the data), else 0.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from centernet.boxes import cxcywh_to_xyxy, relative_to_absolute
from centernet.cli.config import image_data, read_config
from centernet.data.datamodule import CenterNetDataModule
from centernet.data.dataset import DetectionDataset
from centernet.data.records import DetectionSource, Problems
from centernet.data.statistics import LabelStatistics, label_statistics
from centernet.viz import draw_detections

__all__ = ["build_parser", "run_data_check"]

_SHOWN_PROBLEMS = 50  # per kind and split in the printed summary; report.json has all of them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet data check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Extra --data.KEY=VALUE arguments override the config, e.g. --data.invalid_images=skip",
    )
    parser.add_argument("--config", action="append", default=[], help="training config (repeatable, applied in order)")
    parser.add_argument(
        "--output", default="runs/data_check", help="folder for labels.png, train_batch.png, report.json"
    )
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    parser.add_argument("--samples", type=int, default=16, help="training images drawn in train_batch.png")
    parser.add_argument("--seed", type=int, default=0, help="seed of the augmentations drawn in train_batch.png")
    return parser


def run_data_check(argv: Sequence[str] = ()) -> int:
    """Run the command; returns the exit status (1 if the data has errors)."""
    args, overrides = build_parser().parse_known_args(list(argv))
    data_config = _data_config(args.config, overrides)
    try:
        datamodule = CenterNetDataModule(**data_config)
    except (OSError, ValueError) as err:  # a missing folder, an unreadable dataset YAML or XML: nothing to report on
        print(f"ERROR: {err}\nRESULT: errors found; training would stop")
        return 1
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"dataset": datamodule.dataset, "class_names": datamodule.class_names, "splits": {}}
    failed = False
    train_source = None
    for split in args.splits:
        try:
            source, problems = datamodule.read_split(split)
        except (OSError, ValueError) as err:  # the split cannot be read at all (missing folder, bad label map)
            print(f"\n== {split}\n  ERROR: {err}")
            report["splits"][split] = {"errors": [str(err)]}
            failed = True
            continue
        statistics = label_statistics(source)
        _print_split(split, source, statistics, problems)
        report["splits"][split] = _split_report(source, statistics, problems)
        failed |= bool(problems.errors)
        if split == "train" or train_source is None:
            train_source, train_statistics = source, statistics
    written = []
    if train_source is not None:
        _plot_labels(train_statistics, output / "labels.png", train_source.description)
        _draw_batch(datamodule, train_source, output / "train_batch.png", args.samples, args.seed)
        written = [output / "labels.png", output / "train_batch.png"]
    (output / "report.json").write_text(json.dumps(report, indent=1))
    print(f"\nwrote {', '.join(str(path) for path in [*written, output / 'report.json'])}")
    print("RESULT: " + ("errors found; training would stop" if failed else "the data is ready for training"))
    return 1 if failed else 0


def _data_config(configs: list[str], overrides: list[str]) -> dict[str, Any]:
    """The ``data:`` section as ``fit`` reads it: base.yaml, each config, then ``--data.KEY=VALUE`` overrides."""
    for item in overrides:
        if not item.startswith("--data."):
            raise ValueError(f"unknown argument {item!r} (only --data.KEY=VALUE overrides)")
    instead = "the video data of the tracking task is checked when fit reads it (errors name the file and line)"
    return image_data(read_config(configs, overrides), "data check", instead)


def _print_split(split: str, source: DetectionSource, stats: LabelStatistics, problems: Problems) -> None:
    print(f"\n== {split}: {source.description}")
    print(
        f"images {stats.images} ({stats.empty_images} without boxes, {len(problems.skipped)} skipped), "
        f"boxes {stats.boxes} ({problems.clipped} clipped to their image, {len(problems.dropped)} dropped)"
    )
    width = max([len(name) for name in stats.class_names] + [5])
    print(f"  {'class':<{width}}  {'boxes':>8}  {'images':>7}")
    for name, boxes, images in zip(stats.class_names, stats.boxes_per_class, stats.images_per_class, strict=True):
        print(f"  {name:<{width}}  {boxes:>8}  {images:>7}")
    if stats.boxes:
        for axis, values in (("width", stats.sizes[:, 0]), ("height", stats.sizes[:, 1])):
            low, median, high = np.percentile(values, [5, 50, 95])
            print(
                f"  box {axis:<6} (pixels): 5% {low:.1f}, median {median:.1f}, 95% {high:.1f}, max {values.max():.1f}"
            )
        ranges = stats.area_ranges()
        print(
            "  box area (COCO ranges): "
            + ", ".join(f"{k} {v} ({100 * v / stats.boxes:.0f}%)" for k, v in ranges.items())
        )
        print(f"  boxes per image: mean {stats.boxes_per_image.mean():.1f}, max {stats.boxes_per_image.max()}")
    if problems.exif_rotated:
        print(
            f"  {len(problems.exif_rotated)} images carry an EXIF rotation tag, ignored (boxes refer to the stored "
            f"pixels), e.g. {problems.exif_rotated[0]}"
        )
    for kind, messages in (("ERROR", problems.errors), ("skipped", problems.skipped), ("dropped", problems.dropped)):
        for message in messages[:_SHOWN_PROBLEMS]:
            print(f"  {kind}: {message}")
        if len(messages) > _SHOWN_PROBLEMS:
            print(f"  ... {len(messages) - _SHOWN_PROBLEMS} more ({kind}; all in report.json)")


def _split_report(source: DetectionSource, stats: LabelStatistics, problems: Problems) -> dict[str, Any]:
    return {
        "description": source.description,
        "images": stats.images,
        "empty_images": stats.empty_images,
        "boxes": stats.boxes,
        "boxes_per_class": dict(zip(stats.class_names, stats.boxes_per_class.tolist(), strict=True)),
        "area_ranges": stats.area_ranges(),
        "clipped": problems.clipped,
        "errors": problems.errors,
        "skipped": problems.skipped,
        "dropped": problems.dropped,
        "exif_rotated": problems.exif_rotated,
    }


def _plot_labels(stats: LabelStatistics, path: Path, title: str) -> None:
    """Four panels: boxes per class, box width x height (relative), box centres, boxes per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 9))
    classes = np.arange(len(stats.class_names))
    axes[0, 0].bar(classes, stats.boxes_per_class, color="tab:blue")
    axes[0, 0].set_xticks(classes, stats.class_names, rotation=90 if len(classes) > 8 else 0)
    axes[0, 0].set_title("boxes per class")
    if stats.boxes:
        axes[0, 1].hist2d(*stats.relative_sizes.T, bins=50, range=[[0, 1], [0, 1]], cmap="viridis", cmin=1)
        axes[1, 0].hist2d(*stats.relative_centres.T, bins=50, range=[[0, 1], [0, 1]], cmap="viridis", cmin=1)
    axes[0, 1].set(title="box size (relative to the image)", xlabel="width", ylabel="height")
    axes[1, 0].set(title="box centres (relative)", xlabel="x", ylabel="y")
    axes[1, 0].invert_yaxis()
    top = int(stats.boxes_per_image.max()) if stats.images else 0
    axes[1, 1].hist(stats.boxes_per_image, bins=np.arange(top + 2) - 0.5, color="tab:orange")
    axes[1, 1].set(title="boxes per image", xlabel="boxes", ylabel="images")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _draw_batch(datamodule: CenterNetDataModule, source: DetectionSource, path: Path, samples: int, seed: int) -> None:
    """A grid of training samples after augmentation (mosaic included) with their boxes and class names."""
    dataset = DetectionDataset(source, datamodule.train_transform, datamodule.mosaic)
    dataset.set_random_seed(seed)
    count = min(samples, len(dataset))
    size = datamodule.image_size
    columns = max(1, math.ceil(math.sqrt(count)))
    rows = max(1, math.ceil(count / columns))
    grid = np.zeros((rows * size, columns * size, 3), dtype=np.uint8)
    for i in range(count):
        sample = dataset[i]
        image = (sample["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        height, width = image.shape[:2]
        boxes = cxcywh_to_xyxy(relative_to_absolute(sample["bboxes"].numpy(), (height, width)))  # (n, 4) pixels
        drawing = draw_detections(image, boxes, sample["labels"].numpy(), class_names=datamodule.class_names)
        row, column = divmod(i, columns)
        grid[row * size : (row + 1) * size, column * size : (column + 1) * size] = drawing
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
