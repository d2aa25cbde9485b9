"""``centernet demo --task track``: train a tracker on the built-in moving-shapes videos on the CPU, track the
validation videos and print HOTA / MOTA / IDF1 (and the same detections associated by nearest centre, for
comparison).

Options: ``--epochs N`` (default 10), ``--out DIR`` (default ``runs/demo_track``), ``--workers N``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import lightning as L
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from centernet.data.tracking_datamodule import TrackingDataModule
from centernet.data.video_records import VideoSequence
from centernet.inference.inputs import read_rgb
from centernet.inference.tracker import Tracker
from centernet.model import BackboneConfig, NeckConfig
from centernet.tasks.detection.config import DetectionHeadConfig
from centernet.tasks.tracking.association import GreedyAssociator
from centernet.tasks.tracking.metrics import evaluate_tracking
from centernet.tasks.tracking.online import associate_recorded
from centernet.training.cli import quiet_lightning
from centernet.training.module import CenterNetModule
from centernet.training.optim import OptimizerConfig
from centernet.viz import draw_detections

__all__ = ["run_track_demo"]

_SHOWN = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN")


def _frame_strip(tracker: Tracker, sequence: VideoSequence, path: Path, count: int = 6, step: int = 8) -> Path:
    """Every ``step``-th frame of the first ``count * step`` with its tracks (colour and number = id), side by side."""
    frames = [read_rgb(frame.path) for frame in sequence.frames[: count * step]]
    drawn = []
    for index, tracks in enumerate(tracker.track(frames)):
        if index % step == 0:
            drawn.append(draw_detections(frames[index], tracks.boxes, tracks.track_ids))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(drawn, axis=1), cv2.COLOR_RGB2BGR))
    return path


def run_track_demo(argv: Sequence[str] = ()) -> Path:
    """Run the demo and return its run directory."""
    parser = argparse.ArgumentParser(prog="centernet demo --task track", description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", default="runs/demo_track")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args([a for a in argv if a not in ("--task", "track", "--task=track")])
    quiet_lightning()
    console = Console()
    start = time.perf_counter()
    L.seed_everything(args.seed, workers=True, verbose=False)
    data = TrackingDataModule("moving_shapes", image_size=128, batch_size=16, num_workers=args.workers)
    module = CenterNetModule(
        num_classes=data.num_classes, class_names=data.class_names, category_ids=data.category_ids, image_size=128,
        task="tracking", backbone=BackboneConfig(name="resnet18", pretrained=False),
        neck=NeckConfig(name="lateral", channels=(128, 64, 64)), head=DetectionHeadConfig(channels=64),
        optimizer=OptimizerConfig(lr=0.004, warmup_steps=100), channels_last=True,
    )  # fmt: skip
    run_dir = Path(args.out)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=args.epochs, limit_val_batches=0, default_root_dir=run_dir,
        logger=False, enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=10,
    )  # fmt: skip
    torch.set_num_threads(max(1, torch.get_num_threads()))
    trainer.fit(module, datamodule=data)
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    trainer.save_checkpoint(checkpoint, weights_only=True)
    trained = time.perf_counter() - start

    tracker = Tracker.from_checkpoint(checkpoint)
    tracked, nearest = {}, {}
    for sequence in data.val_source.sequences:
        detections, frames = [], []
        for tracks in tracker.track(read_rgb(frame.path) for frame in sequence.frames):
            detections.append(tracker.online.last_detections)
            frames.append((tracks.track_ids, tracks.boxes))
        ground_truth = [(frame.track_ids, frame.boxes) for frame in sequence.frames]
        tracked[sequence.name] = (ground_truth, frames)
        # The same detections associated by their current centres only (no displacement): the baseline.
        associator = GreedyAssociator(max_age=tracker.online.associator.max_age)
        nearest[sequence.name] = (ground_truth, associate_recorded(detections, associator, use_displacement=False))
    metrics, baseline = evaluate_tracking(tracked), evaluate_tracking(nearest)
    elapsed = time.perf_counter() - start
    payload = {**metrics, "baseline_nearest_centre": baseline, "checkpoint": str(checkpoint),
               "train_seconds": round(trained, 1), "seconds": round(elapsed, 1)}  # fmt: skip
    (run_dir / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    strip = _frame_strip(tracker, data.val_source.sequences[0], run_dir / "tracks.png")

    table = Table(title=f"tracking on {len(data.val_source.sequences)} moving-shapes validation videos")
    table.add_column("association")
    for name in _SHOWN:
        table.add_column(name, justify="right")
    for row, values in (("CenterTrack (displacement)", metrics), ("nearest centre, same detections", baseline)):
        table.add_row(row, *(f"{values[n]:.3f}" if n in _SHOWN[:5] else f"{values[n]:.0f}" for n in _SHOWN))
    console.print(table)
    console.print(
        f"HOTA {metrics['HOTA']:.3f}  MOTA {metrics['MOTA']:.3f}  IDF1 {metrics['IDF1']:.3f}  in {elapsed:.0f} s "
        f"(training {trained:.0f} s)"
    )
    console.print(f"frame strip: {strip}")
    console.print(f"run directory: {run_dir}")
    return run_dir
