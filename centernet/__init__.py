"""centernet: CenterNet ("Objects as Points") object detection with PyTorch Lightning."""

__version__ = "0.1.0"
