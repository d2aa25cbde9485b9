"""Training with PyTorch Lightning: the LightningModule, the LightningCLI, callbacks, EMA, checkpoint IO and the
optimiser. Names are imported on first use (``--trainer.callbacks+=centernet.training.EMA`` works)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AtomicCheckpointIO": "checkpoint_io",
    "CenterNetCLI": "cli",
    "CenterNetModule": "module",
    "CocoMetricsWriter": "callbacks",
    "EMA": "ema",
    "LastCheckpoint": "callbacks",
    "OptimizerConfig": "optim",
    "TrackingEvaluation": "tracking_eval",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"centernet.training.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'centernet.training' has no attribute {name!r}")
