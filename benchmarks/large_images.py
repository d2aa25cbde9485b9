"""Large images: native-resolution crops + sliced inference against the fitted way, on the built-in scenes.

Both runs train the model of ``configs/tiles.yaml`` from scratch on the scenes' train split (4 x 2,048 px, ~460
objects of 10-36 px each) and score the val split (2 scenes) with COCO AP50 over all detections (up to
``max_detections``, 1000):

- **native**: ``native_resolution: true``: 256 px crops at the scenes' own scale, validated sliced in 256 px tiles
  (what ``centernet demo --task tiles`` runs);
- **fitted**: ``native_resolution: false``: every scene fitted to 256 px (objects shrink 8x, to 1-4 px), validated
  fitted the same way, for as many optimiser steps as the native run (each step holds the 4 scenes, as the
  training split has 4 images).

Prints the training time and AP50 of each and their ratio (``--mode both``, one after the other), or of one run
(``--mode native`` / ``--mode fitted``, e.g. the two side by side on a machine with the cores for it). Usage:

    python benchmarks/large_images.py                   # 4 epochs of native crops, then the fitted run
    python benchmarks/large_images.py --mode fitted --epochs 4
"""

from __future__ import annotations

import argparse
import json
import time

from timing import machine_header  # benchmarks/timing.py (on sys.path)

from centernet.cli.config import read_config
from centernet.configs import config_path
from centernet.data.crops import NativeCrops
from centernet.data.scenes import ensure_scenes_dataset
from centernet.training.cli import CenterNetCLI


def _run(mode: str, root: str, extra: list[str]) -> tuple[dict[str, float], float, int, int]:
    paths = ensure_scenes_dataset()
    data = [f"--data.{split}_{kind}={getattr(paths, f'{split}_{kind}')}" for split in ("train", "val")
            for kind in ("images", "annotations")]  # fmt: skip
    args = ["fit", "--config", str(config_path("tiles")), *data, f"--trainer.default_root_dir={root}/{mode}",
            "--trainer.enable_progress_bar=false", "--seed_everything=0", *extra]  # fmt: skip
    start = time.perf_counter()
    cli = CenterNetCLI(args=args)
    seconds = time.perf_counter() - start
    results = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)[0]
    samples = cli.trainer.global_step * cli.datamodule.batch_size
    if mode == "fitted":
        samples = cli.trainer.global_step * min(cli.datamodule.batch_size, len(cli.datamodule.train_dataset))
    return results, seconds, cli.trainer.global_step, samples


def _native_samples(epochs: int) -> int:
    """Crops the native run trains on: ``epochs`` x the full batches of the scenes' crops per epoch."""
    data = read_config([str(config_path("tiles"))])["data"]
    crops = NativeCrops(data["image_size"], data["scale_range"])
    images = json.loads(ensure_scenes_dataset().train_annotations.read_text())["images"]
    per_epoch = sum(crops.count(image["height"], image["width"]) for image in images)
    return epochs * (per_epoch // data["batch_size"]) * data["batch_size"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4, help="epochs of native crops")
    parser.add_argument("--mode", choices=("both", "native", "fitted"), default="both")
    parser.add_argument("--root", default="runs/large_images")
    args = parser.parse_args()
    print(machine_header())
    runs = {}
    if args.mode in ("both", "native"):
        runs["native crops + sliced"] = _run("native", args.root, [f"--trainer.max_epochs={args.epochs}"])
    if args.mode in ("both", "fitted"):
        batch = read_config([str(config_path("tiles"))])["data"]["batch_size"]
        fitted_steps = _native_samples(args.epochs) // batch  # as many optimiser steps as the native run
        extra = ["--data.native_resolution=false", f"--trainer.max_steps={fitted_steps}", "--trainer.max_epochs=-1",
                 "--trainer.check_val_every_n_epoch=1000000"]  # fmt: skip
        runs["fitted"] = _run("fitted", args.root, extra)
    ap50s = {}
    for name, (results, seconds, steps, images) in runs.items():
        ap50s[name] = results.get("val/map_50_all_dets", results["val/map_50"])
        ap = results.get("val/map_all_dets", results["val/map"])
        print(f"{name}: AP50 {ap50s[name]:.3f}, AP {ap:.3f} (all detections); {steps} steps, {images} samples, "
              f"training {seconds / 60:.1f} min")  # fmt: skip
    if len(ap50s) == 2:
        native_ap50, fitted_ap50 = ap50s.values()
        print(f"AP50 native / fitted: {native_ap50 / max(fitted_ap50, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
