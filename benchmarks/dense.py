"""Dense scenes: what COCO's cap of 100 detections per image costs when images hold 150-280 objects.

Generates a "dense squares" dataset (256 x 256 images, each with 150-280 non-overlapping squares of 8-12 px on a
noisy background, one class, like trees on an aerial tile), trains a small CenterNet on it with
``model.max_detections: 300`` through ``centernet fit``, then evaluates the best checkpoint with
``centernet validate``, which keeps the checkpoint's 300 detections per image and reports COCO's numbers (the best
100 detections of each image, comparable with published results) beside the same numbers over all 300.

Usage:

    python benchmarks/dense.py                      # 64 training / 16 validation images, 30 epochs
    python benchmarks/dense.py --epochs 5 --train 16 --val 4
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from centernet.cli.main import main


def _image(rng: np.random.Generator, size: int = 256, cell: int = 14) -> tuple[np.ndarray, list[list[float]]]:
    """One image and its boxes (COCO x, y, w, h): squares placed in distinct cells of a grid, so none overlap."""
    image = rng.integers(20, 90, (size, size, 3), dtype=np.uint8)
    cells = (size // cell) ** 2
    count = int(rng.integers(150, 281))
    boxes = []
    for index in rng.choice(cells, size=count, replace=False):
        row, column = divmod(int(index), size // cell)
        side = int(rng.integers(8, 13))
        x = column * cell + int(rng.integers(0, cell - side + 1))
        y = row * cell + int(rng.integers(0, cell - side + 1))
        colour = tuple(int(v) for v in rng.integers(140, 256, 3))
        cv2.rectangle(image, (x, y), (x + side - 1, y + side - 1), colour, thickness=-1)
        boxes.append([float(x), float(y), float(side), float(side)])
    return image, boxes


def write_split(root: Path, name: str, images: int, seed: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True)
    entries, annotations = [], []
    for image_id in range(1, images + 1):
        image, boxes = _image(rng)
        cv2.imwrite(str(folder / f"{image_id:04d}.png"), image)
        entries.append({"id": image_id, "file_name": f"{image_id:04d}.png", "width": 256, "height": 256})
        for box in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "bbox": box,
                                "area": box[2] * box[3], "iscrowd": 0})  # fmt: skip
    path = root / f"{name}.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": [{"id": 1, "name": "square"}]}))  # fmt: skip
    return folder, path


def main_benchmark() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=64)
    parser.add_argument("--val", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--output", default=None, help="folder for the data and the run (default: a temporary one)")
    args = parser.parse_args()
    root = Path(args.output or tempfile.mkdtemp(prefix="centernet-dense-"))
    train_images, train_json = write_split(root, "train", args.train, seed=0)
    val_images, val_json = write_split(root, "val", args.val, seed=1)
    start = time.perf_counter()
    main(["fit", "--config", "demo",
          "--model.max_detections=300", "--model.optimizer.warmup_steps=50",
          "--data.dataset=coco", f"--data.train_images={train_images}", f"--data.train_annotations={train_json}",
          f"--data.val_images={val_images}", f"--data.val_annotations={val_json}", "--data.image_size=256",
          "--data.batch_size=8", f"--trainer.max_epochs={args.epochs}", "--trainer.check_val_every_n_epoch=5",
          f"--trainer.default_root_dir={root / 'runs'}", "--trainer.enable_progress_bar=false"])  # fmt: skip
    trained = time.perf_counter() - start
    checkpoints = root / "runs" / "version_0" / "checkpoints"
    best = ([*sorted(checkpoints.glob("best-*.ckpt")), checkpoints / "last.ckpt"])[0]
    metrics = main(["validate", "--checkpoint", str(best), "--images", str(val_images), "--annotations",
                    str(val_json), "--output", str(root / "validate")])  # fmt: skip
    objects = json.loads(val_json.read_text())["annotations"]
    print(f"\n{args.train} training / {args.val} validation images of 256 px with 150-280 squares each "
          f"({len(objects) / args.val:.0f} per validation image on average); trained {args.epochs} epochs in "
          f"{trained:.0f} s; {best.name}, {metrics['max_detections']} detections per image\n")  # fmt: skip
    print("| detections scored per image | AP | AP50 | AR |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| the best 100 (COCO's maxDets) | {metrics['map']:.3f} | {metrics['map_50']:.3f} | {metrics['mar_100']:.3f} |"
    )
    print(f"| all {metrics['max_detections']} | {metrics['map_all_dets']:.3f} | {metrics['map_50_all_dets']:.3f} "
          f"| {metrics['mar_all_dets']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main_benchmark()
