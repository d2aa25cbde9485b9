"""``centernet demo``: train on the built-in shapes dataset, evaluate, draw predictions, all on the CPU.

Any extra ``--key=value`` arguments override ``configs/demo.yaml`` (e.g. ``--trainer.max_epochs=2``).
``centernet demo --task track`` trains a tracker on moving-shapes videos instead (:mod:`centernet.cli.track_demo`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import cv2
from rich.console import Console

from centernet.configs import config_path
from centernet.evaluation import COCO_METRIC_NAMES, format_coco_table, write_metrics_json
from centernet.inference import Detector
from centernet.inference.inputs import list_images, read_rgb
from centernet.training.cli import CenterNetCLI
from centernet.viz import draw_detections

__all__ = ["run_demo"]

_NUM_DRAWN = 8


def run_demo(argv: Sequence[str] = ()) -> Path:
    """Run the demo and return its run directory (also printed)."""
    if "--task=track" in argv or any(a == "--task" and b == "track" for a, b in zip(argv, argv[1:], strict=False)):
        from centernet.cli.track_demo import run_track_demo

        return run_track_demo(argv)
    console = Console()
    if any(arg in ("-h", "--help") for arg in argv):
        console.print(__doc__)
        console.print("Options are those of `centernet fit --help`; the demo config is " + str(config_path("demo")))
        return Path()
    start = time.perf_counter()
    cli = CenterNetCLI(args=["fit", "--config", str(config_path("demo")), *argv])
    trainer, datamodule = cli.trainer, cli.datamodule
    run_dir = Path(trainer.log_dir)
    best = trainer.checkpoint_callback.best_model_path or None
    results = trainer.validate(cli.model, datamodule=datamodule, ckpt_path=best or "last", verbose=False)[0]
    metrics = {name: float(results[f"val/{name}"]) for name in COCO_METRIC_NAMES}
    elapsed = time.perf_counter() - start
    write_metrics_json(run_dir / "metrics.json", metrics, {"checkpoint": best, "seconds": round(elapsed, 1)})

    console.print(format_coco_table(metrics, title="COCO box metrics on the shapes validation split"))
    drawn = _draw_predictions(best or str(run_dir / "checkpoints" / "last.ckpt"), datamodule.val_images, run_dir)
    console.print(f"AP {metrics['map']:.3f}  AP50 {metrics['map_50']:.3f}  in {elapsed:.0f} s")
    console.print(f"annotated predictions: {drawn}")
    console.print(f"run directory: {run_dir}")
    return run_dir


def _draw_predictions(checkpoint: str, image_dir: str | Path, run_dir: Path) -> Path:
    """Draw the best checkpoint's detections on the first validation images into ``<run_dir>/predictions``."""
    detector = Detector.from_checkpoint(checkpoint)
    out_dir = run_dir / "predictions"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = list_images(image_dir)[:_NUM_DRAWN]
    for path, prediction in zip(paths, detector.predict(paths, score_threshold=0.3), strict=True):
        drawing = draw_detections(
            read_rgb(path), prediction.boxes, prediction.labels, prediction.scores, detector.class_names
        )
        cv2.imwrite(str(out_dir / f"{path.stem}.png"), cv2.cvtColor(drawing, cv2.COLOR_RGB2BGR))
    return out_dir
