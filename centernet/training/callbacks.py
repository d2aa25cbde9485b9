"""Lightning callbacks of the training run: the COCO numbers next to the checkpoints, and the resume checkpoint."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

from centernet.evaluation import COCO_METRIC_NAMES, DENSE_METRIC_NAMES, KEYPOINT_METRIC_NAMES, write_metrics_json

__all__ = ["CocoMetricsWriter", "LastCheckpoint"]


class CocoMetricsWriter(L.Callback):
    """Writes the latest validation's 12 COCO numbers (and a pose model's 10 keypoint numbers) to
    ``<run dir>/metrics.json``.

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
        optional = (*DENSE_METRIC_NAMES, *KEYPOINT_METRIC_NAMES)
        names = [*COCO_METRIC_NAMES, *(name for name in optional if f"val/{name}" in logged)]
        metrics = {name: float(logged[f"val/{name}"]) for name in names}
        extra: dict[str, object] = {"epoch": trainer.current_epoch, "global_step": trainer.global_step}
        if trainer.ckpt_path:
            extra["checkpoint"] = str(trainer.ckpt_path)
        write_metrics_json(Path(trainer.log_dir) / self.filename, metrics, extra)


class LastCheckpoint(Checkpoint):
    """Writes ``<run dir>/checkpoints/last.ckpt`` at the end of every training epoch, for resuming.

    ``ModelCheckpoint(save_last=True)`` only writes when it evaluates its monitored metric, i.e. at validation
    epochs; a run killed between two validations would lose every epoch since the last one. Resume with
    ``centernet fit --config ... --ckpt_path last``.

    Args:
        dirpath: Folder of the file; ``None`` uses ``<trainer.log_dir>/checkpoints`` (beside ``ModelCheckpoint``'s).
        filename: File name.
        every_n_train_steps: Also write it every this many optimiser steps (0: only at epoch ends). Resuming
            from such a mid-epoch checkpoint restores the weights, optimiser and counters, but the data loader
            starts that epoch's order again: not bitwise equal to an uninterrupted run, unlike epoch-end resumes.
    """

    def __init__(self, dirpath: str | None = None, filename: str = "last.ckpt", every_n_train_steps: int = 0) -> None:
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.dirpath = dirpath
        self.filename = filename
        self.every_n_train_steps = every_n_train_steps

    def path(self, trainer: L.Trainer) -> Path:
        """Where the checkpoint goes."""
        if self.dirpath is not None:
            return Path(self.dirpath) / self.filename
        root = trainer.log_dir if trainer.log_dir is not None else trainer.default_root_dir
        return Path(root) / "checkpoints" / self.filename

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if (
            self.every_n_train_steps
            and step > 0
            and step % self.every_n_train_steps == 0
            and not trainer.sanity_checking
        ):
            trainer.save_checkpoint(self.path(trainer))  # the full training state (not only the weights)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path(trainer))  # the full training state (not only the weights)
