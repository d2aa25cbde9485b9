"""The options of the pose task beyond the shared centre head (``model.head``) and its loss (``model.loss``).

``centernet fit`` reads them from ``model.task_options`` (see ``configs/base.yaml``); the Python API takes the
same dataclass or a mapping of its fields. What the data decides (the joints, the skeleton, the left/right pairs,
the OKS sigmas) is not an option: it comes from the dataset as :class:`~centernet.tasks.pose.skeleton.Skeleton`.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PoseConfig"]


@dataclass(frozen=True)
class PoseConfig:
    """Pose losses and decoding (Zhou et al. 2019, Sec. 4 "Human pose estimation", and its ``multi_pose`` code).

    Attributes:
        joint_weight: Weight of the L1 loss on the 2K joint offsets regressed at the person's centre (1 in the paper).
        joint_heatmap_weight: Weight of the focal loss on the K joint heatmaps (1).
        joint_offset_weight: Weight of the L1 loss on the joint heatmaps' sub-cell offset (1).
        snap: Move each regressed joint to the nearest joint-heatmap peak (the paper's rule); False keeps the
            regressed joints as they are.
        joint_threshold: A joint-heatmap peak is a snapping candidate only above this probability (0.1).
        snap_distance: ... and only when it lies within this fraction of the person box's longer side of the
            regressed joint (0.3, the original code's rule), so that a far-away person's joint is never taken.
    """

    joint_weight: float = 1.0
    joint_heatmap_weight: float = 1.0
    joint_offset_weight: float = 1.0
    snap: bool = True
    joint_threshold: float = 0.1
    snap_distance: float = 0.3

    def __post_init__(self) -> None:
        for name in ("joint_weight", "joint_heatmap_weight", "joint_offset_weight", "snap_distance"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.joint_threshold < 1:
            raise ValueError(f"joint_threshold must be in [0, 1), got {self.joint_threshold}")
