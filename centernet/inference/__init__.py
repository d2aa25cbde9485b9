"""Inference: :class:`Detector` (a trained model on images, batched, boxes in original pixels), :class:`Tracker`
(a tracking model over videos, frame by frame), its backends
(eager PyTorch, ONNX Runtime, TorchScript), test-time augmentation, BatchNorm folding and export.

Nothing here imports Lightning: a checkpoint is read by :mod:`centernet.model.checkpoint`.
"""

from centernet.inference.detector import Detector, Prediction
from centernet.inference.tracker import Tracker

__all__ = ["Detector", "Prediction", "Tracker"]
