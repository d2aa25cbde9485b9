"""``centernet demo``: train on a built-in dataset, evaluate, draw predictions, all on the CPU.

``--task shapes`` (default): the shapes dataset with ``configs/demo.yaml``. ``--task tiles``: large images, the
built-in scenes (2,048 px, hundreds of objects of 10-36 px) with ``configs/tiles.yaml``: training on native-
resolution crops and evaluating with sliced inference. Any extra ``--key=value`` arguments override the config
(e.g. ``--trainer.max_epochs=2``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
from rich.console import Console

from centernet.configs import config_path
from centernet.data.scenes import ensure_scenes_dataset
from centernet.evaluation import COCO_METRIC_NAMES, DENSE_METRIC_NAMES, format_coco_table, write_metrics_json
from centernet.inference import Detector
from centernet.inference.inputs import list_images, read_rgb
from centernet.training.cli import CenterNetCLI
from centernet.viz import draw_detections

__all__ = ["run_demo"]

_NUM_DRAWN = 8
_TASKS = ("shapes", "tiles")


def run_demo(argv: Sequence[str] = ()) -> Path:
    """Run the demo and return its run directory (also printed)."""
    console = Console()
    if any(arg in ("-h", "--help") for arg in argv):
        console.print(__doc__)
        console.print("Options are those of `centernet fit --help`; the demo config is " + str(config_path("demo")))
        return Path()
    argv, task = _pop_task(list(argv))
    start = time.perf_counter()
    if task == "tiles":
        paths = ensure_scenes_dataset()
        data = [f"--data.{split}_{kind}={getattr(paths, f'{split}_{kind}')}" for split in ("train", "val")
                for kind in ("images", "annotations")]  # fmt: skip
        cli = CenterNetCLI(args=["fit", "--config", str(config_path("tiles")), *data, *argv])
    else:
        cli = CenterNetCLI(args=["fit", "--config", str(config_path("demo")), *argv])
    trainer, datamodule = cli.trainer, cli.datamodule
    run_dir = Path(trainer.log_dir)
    best = trainer.checkpoint_callback.best_model_path or None
    results = trainer.validate(cli.model, datamodule=datamodule, ckpt_path=best or "last", verbose=False)[0]
    names = [*COCO_METRIC_NAMES, *(n for n in DENSE_METRIC_NAMES if f"val/{n}" in results)]
    metrics = {name: float(results[f"val/{name}"]) for name in names}
    elapsed = time.perf_counter() - start
    write_metrics_json(run_dir / "metrics.json", metrics, {"checkpoint": best, "seconds": round(elapsed, 1)})

    split = "scenes validation split, sliced inference" if task == "tiles" else "shapes validation split"
    limit = cli.model.hparams.max_detections
    console.print(format_coco_table(metrics, title=f"COCO box metrics on the {split}", max_detections=limit))
    checkpoint = best or str(run_dir / "checkpoints" / "last.ckpt")
    tile = datamodule.val_tile
    drawn = _draw_predictions(checkpoint, datamodule.val_images, run_dir, tile, 1 if tile else _NUM_DRAWN)
    ap50 = metrics.get("map_50_all_dets", metrics["map_50"])
    console.print(f"AP {metrics['map']:.3f}  AP50 {ap50:.3f}  in {elapsed:.0f} s")
    console.print(f"annotated predictions: {drawn}")
    console.print(f"run directory: {run_dir}")
    return run_dir


def _pop_task(argv: list[str]) -> tuple[list[str], str]:
    """``--task NAME`` / ``--task=NAME`` out of the arguments (the rest go to ``fit``); ``shapes`` by default."""
    task = "shapes"
    for i, arg in enumerate(argv):
        if arg == "--task" and i + 1 < len(argv):
            task = argv[i + 1]
            argv = argv[:i] + argv[i + 2 :]
            break
        if arg.startswith("--task="):
            task = arg.split("=", 1)[1]
            argv = argv[:i] + argv[i + 1 :]
            break
    if task not in _TASKS:
        raise ValueError(f"centernet demo: --task must be one of {', '.join(_TASKS)}, got {task!r}")
    return argv, task


def _draw_predictions(
    checkpoint: str, image_dir: str | Path, run_dir: Path, tile: int | None = None, count: int = _NUM_DRAWN
) -> Path:
    """Draw the best checkpoint's detections on the first validation images into ``<run_dir>/predictions``
    (sliced in tiles of ``tile`` px when given)."""
    detector = Detector.from_checkpoint(checkpoint)
    out_dir = run_dir / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list_images(image_dir)[:count]
    for path, prediction in zip(paths, detector.predict(paths, score_threshold=0.3, tile=tile), strict=True):
        drawing = draw_detections(
            read_rgb(path), prediction.boxes, prediction.labels, prediction.scores, detector.class_names
        )
        cv2.imwrite(str(out_dir / f"{path.stem}.png"), cv2.cvtColor(drawing, cv2.COLOR_RGB2BGR))
    return out_dir
