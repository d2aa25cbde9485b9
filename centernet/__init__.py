"""centernet: CenterNet ("Objects as Points") object detection with PyTorch Lightning.

The public surface: the network (:class:`CenterNet`), its Lightning training adapter (:class:`CenterNetModule`),
the data module (:class:`CenterNetDataModule`) and the inference API (:class:`Detector`, :class:`Prediction`,
:class:`Tracker`).
They are imported on first use, so ``import centernet`` (and ``centernet.inference``, ``centernet.model``) does
not load Lightning, torchmetrics or albumentations.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# No network call the user did not ask for: albumentations would ask a package index for a newer version on every
# import (a warning on every offline run). Set NO_ALBUMENTATIONS_UPDATE=0 to let it check.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.2.0"

_EXPORTS = {
    "CenterNet": "centernet.model",
    "CenterNetDataModule": "centernet.data.datamodule",
    "CenterNetModule": "centernet.training.module",
    "Detector": "centernet.inference",
    "Prediction": "centernet.inference",
    "Tracker": "centernet.inference",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'centernet' has no attribute {name!r}")
