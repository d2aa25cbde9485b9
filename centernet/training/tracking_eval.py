"""Tracking metrics at the end of ``fit``: the trained network tracks the validation videos frame by frame (the
loop of :mod:`centernet.tasks.tracking.online`, the one ``Tracker`` runs) and HOTA / MOTA / IDF1 are added to
``<run dir>/metrics.json`` (beside the per-frame COCO numbers that ``CocoMetricsWriter`` writes there) and logged
under ``val/``. ``base.yaml`` lists the callback; it does nothing for the other tasks."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import torch

from centernet.boxes import Letterbox
from centernet.data.imagefile import decode_rgb
from centernet.tasks.tracking.association import GreedyAssociator
from centernet.tasks.tracking.metrics import evaluate_tracking
from centernet.tasks.tracking.online import OnlineTracking
from centernet.training.callbacks import CocoMetricsWriter

__all__ = ["TrackingEvaluation"]


class TrackingEvaluation(L.Callback):
    """Track the datamodule's ``val_source`` videos when the fit ends (tracking task only).

    Args:
        max_age: Frames a lost track is kept.
        filename: File in the run directory; the metrics are added to what it holds (the last validation's COCO
            numbers), with ``tracking`` saying what was tracked (videos, frames, at which step).
    """

    def __init__(self, max_age: int = 10, filename: str = "metrics.json") -> None:
        self.max_age = max_age
        self.filename = filename
        self.metrics: dict[str, float] = {}

    @torch.no_grad()
    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        source = getattr(trainer.datamodule, "val_source", None)
        if model.task.name != "tracking" or source is None or not trainer.is_global_zero:
            return
        was_training = model.training
        model.eval()
        side = int(pl_module.hparams.image_size)
        # Lightning has already moved the module back to the CPU when on_fit_end runs; track on the fit's device.
        device, moved_from = trainer.strategy.root_device, pl_module.device
        model.to(device)

        def runner(image: torch.Tensor, prev_image: torch.Tensor, prev_heatmap: torch.Tensor) -> dict:
            extras = {"prev_image": prev_image.to(device), "prev_heatmap": prev_heatmap.to(device)}
            decoded = model.decode(model(image.to(device), extras))
            return {key: value.cpu() for key, value in decoded.items()}

        online = OnlineTracking(model.task, GreedyAssociator(max_age=self.max_age), model.max_detections)
        sequences = {}
        for sequence in source.sequences:
            online.reset()
            letterbox = Letterbox.fit((sequence.height, sequence.width), side)
            frames = []
            for frame in sequence.frames:
                canvas = letterbox.apply(decode_rgb(frame.path))
                image = torch.from_numpy(np.ascontiguousarray(canvas)).permute(2, 0, 1)[None].float() / 255
                tracks = online.step(image, letterbox, runner)
                frames.append((tracks.track_ids, tracks.boxes))
            sequences[sequence.name] = ([(f.track_ids, f.boxes) for f in sequence.frames], frames)
        model.to(moved_from)
        model.train(was_training)
        self.metrics = evaluate_tracking(sequences)
        path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.loads(path.read_text()) if path.is_file() and self._shares_file(trainer) else {}
        frames = sum(len(sequence.frames) for sequence in source.sequences)
        tracked = {"videos": len(source.sequences), "frames": frames, "global_step": trainer.global_step}
        payload.update({**self.metrics, "tracking": tracked})
        path.write_text(json.dumps(payload, indent=2) + "\n")
        for logger in trainer.loggers:
            logger.log_metrics({f"val/{name}": value for name, value in self.metrics.items()}, step=trainer.global_step)

    def _shares_file(self, trainer: L.Trainer) -> bool:
        """Whether this fit's ``CocoMetricsWriter`` writes the same file (keep its numbers; anything else there is
        an older run's)."""
        return any(
            isinstance(callback, CocoMetricsWriter) and callback.filename == self.filename
            for callback in trainer.callbacks
        )
