"""The options of the detection task: its head and its loss, declared once (typed and documented here).

``centernet fit`` reads them from the ``model.head`` and ``model.loss`` sections of the config (see
``configs/base.yaml``); the Python API takes the same dataclasses (or a head type name, for short).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DetectionHeadConfig", "DetectionLossConfig"]


@dataclass(frozen=True)
class DetectionHeadConfig:
    """The prediction head on the stride-4 features.

    Attributes:
        type: "size" (CenterNet: box size and centre offset at each centre, L1 losses) or "ltrb" (TTFNet:
            distances to the four box sides at every cell of the centre region, GIoU loss).
        channels: Hidden channels of each branch's 3x3 convolution (64 for ResNets, 256 for DLA-34 in the paper).
    """

    type: Literal["size", "ltrb"] = "size"
    channels: int = 64

    def __post_init__(self) -> None:
        if self.type not in ("size", "ltrb"):
            raise ValueError(f"head type must be 'size' or 'ltrb', got {self.type!r}")
        if self.channels < 1:
            raise ValueError(f"head channels must be >= 1, got {self.channels}")


@dataclass(frozen=True)
class DetectionLossConfig:
    """Ground-truth heatmaps and the weights of the losses.

    Attributes:
        gaussian: Ground-truth heatmap peaks: "ttfnet" (elliptical, follows the box's aspect ratio) or "cornernet"
            (the original CenterNet's circular Gaussian from the CornerNet radius rule).
        gaussian_extent: TTFNet Gaussian radius as a fraction of half the box side (TTFNet's alpha, 0.54).
        min_overlap: CornerNet radius rule: the IoU a box whose corners move by the radius must keep.
        heatmap_weight: Weight of the focal loss on the heatmap.
        size_weight: Weight of the L1 loss on box width and height (size head; 0.1 in the paper).
        offset_weight: Weight of the L1 loss on the sub-cell centre offset (size head).
        box_weight: Weight of the GIoU loss (ltrb head; 5 in TTFNet).
        box_sampling: Cells that regress a box (ltrb head): "gaussian" (the object's Gaussian centre region,
            log-area weighted) or "center3x3" (the 3x3 cells around its centre).
    """

    gaussian: Literal["ttfnet", "cornernet"] = "ttfnet"
    gaussian_extent: float = 0.54
    min_overlap: float = 0.7
    heatmap_weight: float = 1.0
    size_weight: float = 0.1
    offset_weight: float = 1.0
    box_weight: float = 5.0
    box_sampling: Literal["gaussian", "center3x3"] = "gaussian"

    def __post_init__(self) -> None:
        if self.gaussian not in ("ttfnet", "cornernet"):
            raise ValueError(f"gaussian must be 'ttfnet' or 'cornernet', got {self.gaussian!r}")
        if self.box_sampling not in ("gaussian", "center3x3"):
            raise ValueError(f"box_sampling must be 'gaussian' or 'center3x3', got {self.box_sampling!r}")
        if not self.gaussian_extent > 0:
            raise ValueError(f"gaussian_extent must be > 0, got {self.gaussian_extent}")
        if not 0 < self.min_overlap < 1:
            raise ValueError(f"min_overlap must be in (0, 1), got {self.min_overlap}")
