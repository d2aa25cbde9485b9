"""Lightning callbacks of the training run: writing the COCO numbers next to the checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from .evaluation import COCO_METRIC_NAMES, write_metrics_json

__all__ = ["CocoMetricsWriter"]


class CocoMetricsWriter(L.Callback):
    """Writes the latest validation's 12 COCO numbers to ``<run dir>/metrics.json``.

    Args:
        filename: File name inside the run directory (``trainer.log_dir``).
    """

    def __init__(self, filename: str = "metrics.json") -> None:
        self.filename = filename

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.log_dir is None:
            return
        logged = trainer.callback_metrics
        if f"val/{COCO_METRIC_NAMES[0]}" not in logged:
            return
        metrics = {name: float(logged[f"val/{name}"]) for name in COCO_METRIC_NAMES}
        extra: dict[str, object] = {"epoch": trainer.current_epoch, "global_step": trainer.global_step}
        if trainer.ckpt_path:
            extra["checkpoint"] = str(trainer.ckpt_path)
        write_metrics_json(Path(trainer.log_dir) / self.filename, metrics, extra)
