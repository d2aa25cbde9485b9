"""centernet: CenterNet ("Objects as Points") object detection with PyTorch Lightning.

The public surface: the detector (:class:`CenterNet`), its Lightning training adapter (:class:`CenterNetModule`),
the data module (:class:`CenterNetDataModule`) and the inference API (:class:`Detector`).
"""

from centernet.data import CenterNetDataModule
from centernet.inference import Detector, Prediction
from centernet.model import CenterNet
from centernet.training.module import CenterNetModule

__version__ = "0.1.0"

__all__ = ["CenterNet", "CenterNetDataModule", "CenterNetModule", "Detector", "Prediction", "__version__"]
