"""``centernet demo``: train on a built-in dataset, evaluate, draw predictions, all on the CPU.

``--task detection`` (the default) trains boxes on the shapes dataset (``configs/demo.yaml``); ``--task pose``
trains people with their joints on the stick figures (``configs/demo_pose.yaml``); ``--task tiles`` trains on
native-resolution crops of the large-image scenes (2,048 px, hundreds of objects of 10-36 px) and evaluates with
sliced inference (``configs/tiles.yaml``); ``--task track`` trains a tracker on moving-shapes videos
(:mod:`centernet.cli.track_demo`). Any extra ``--key=value`` arguments override the demo's config (e.g.
``--trainer.max_epochs=2``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
from rich.console import Console

from centernet.configs import config_path
from centernet.data.scenes import ensure_scenes_dataset
from centernet.evaluation import (
    COCO_METRIC_NAMES,
    DENSE_METRIC_NAMES,
    KEYPOINT_METRIC_NAMES,
    format_coco_table,
    write_metrics_json,
)
from centernet.inference import Detector
from centernet.inference.inputs import list_images, read_rgb
from centernet.training.cli import CenterNetCLI

__all__ = ["run_demo"]

_NUM_DRAWN = 8
_DEMOS = {
    "detection": ("demo", "shapes"),
    "pose": ("demo_pose", "stick figures"),
    "tiles": ("tiles", "scenes (sliced inference)"),
}


def run_demo(argv: Sequence[str] = ()) -> Path:
    """Run the demo and return its run directory (also printed)."""
    task, rest = _task(list(argv))
    if task == "track":
        from centernet.cli.track_demo import run_track_demo

        return run_track_demo(rest)
    argv = rest
    console = Console()
    config, dataset = _DEMOS[task]
    if any(arg in ("-h", "--help") for arg in argv):
        console.print(__doc__)
        console.print("Options are those of `centernet fit --help`; the demo config is " + str(config_path(config)))
        return Path()
    start = time.perf_counter()
    data: list[str] = []
    if task == "tiles":
        paths = ensure_scenes_dataset()
        data = [f"--data.{split}_{kind}={getattr(paths, f'{split}_{kind}')}" for split in ("train", "val")
                for kind in ("images", "annotations")]  # fmt: skip
    cli = CenterNetCLI(args=["fit", "--config", str(config_path(config)), *data, *argv])
    trainer, datamodule = cli.trainer, cli.datamodule
    run_dir = Path(trainer.log_dir)
    best = trainer.checkpoint_callback.best_model_path or None
    results = trainer.validate(cli.model, datamodule=datamodule, ckpt_path=best or "last", verbose=False)[0]
    names = [
        *COCO_METRIC_NAMES,
        *(n for n in DENSE_METRIC_NAMES if f"val/{n}" in results),
        *(KEYPOINT_METRIC_NAMES if task == "pose" else ()),
    ]
    metrics = {name: float(results[f"val/{name}"]) for name in names}
    elapsed = time.perf_counter() - start
    write_metrics_json(run_dir / "metrics.json", metrics, {"checkpoint": best, "seconds": round(elapsed, 1)})

    limit = cli.model.hparams.max_detections
    title = f"COCO metrics on the {dataset} validation split"
    console.print(format_coco_table(metrics, title=title, max_detections=limit))
    checkpoint = best or str(run_dir / "checkpoints" / "last.ckpt")
    tile = datamodule.val_tile
    drawn = _draw_predictions(checkpoint, datamodule.val_images, run_dir, tile, 1 if tile else _NUM_DRAWN)
    summary = f"AP {metrics['map']:.3f}  AP50 {metrics['map_50']:.3f}"
    if "map_all_dets" in metrics:  # a model keeping more than COCO's 100 detections per image is scored on them too
        summary = f"AP {metrics['map_all_dets']:.3f}  AP50 {metrics['map_50_all_dets']:.3f} (up to {limit} per image)"
    if task == "pose":
        summary = f"keypoint AP {metrics['kp_map']:.3f}  AP50 {metrics['kp_map_50']:.3f}  box {summary}"
    console.print(f"{summary}  in {elapsed:.0f} s")
    console.print(f"annotated predictions: {drawn}")
    console.print(f"run directory: {run_dir}")
    return run_dir


def _task(argv: list[str]) -> tuple[str, list[str]]:
    """``--task NAME`` / ``--task=NAME`` taken out of ``argv`` (the demo's own option); ``detection`` by default."""
    task, rest, i = "detection", [], 0
    while i < len(argv):
        if argv[i] == "--task" and i + 1 < len(argv):
            task, i = argv[i + 1], i + 2
            continue
        if argv[i].startswith("--task="):
            task = argv[i].split("=", 1)[1]
        else:
            rest.append(argv[i])
        i += 1
    if task not in (*_DEMOS, "track"):
        raise ValueError(f"centernet demo --task must be one of {sorted((*_DEMOS, 'track'))}, got {task!r}")
    return task, rest


def _draw_predictions(
    checkpoint: str, image_dir: str | Path, run_dir: Path, tile: int | None = None, count: int = _NUM_DRAWN
) -> Path:
    """Draw the best checkpoint's results (boxes; skeletons for pose) on the first validation images into
    ``<run_dir>/predictions`` (sliced in tiles of ``tile`` px when given)."""
    detector = Detector.from_checkpoint(checkpoint)
    out_dir = run_dir / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list_images(image_dir)[:count]
    for path, prediction in zip(paths, detector.predict(paths, score_threshold=0.3, tile=tile), strict=True):
        drawing = prediction.draw(read_rgb(path))
        cv2.imwrite(str(out_dir / f"{path.stem}.png"), cv2.cvtColor(drawing, cv2.COLOR_RGB2BGR))
    return out_dir
