"""Inference: :class:`Detector` (a trained model on images, batched, boxes in original pixels), its backends
(eager PyTorch, ONNX Runtime, TorchScript), test-time augmentation, BatchNorm folding and export.

Nothing here imports Lightning: a checkpoint is read by :mod:`centernet.model.checkpoint`.
"""

from centernet.inference.detector import Detector, Prediction

__all__ = ["Detector", "Prediction"]
