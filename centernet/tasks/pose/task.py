"""Multi-person pose as a task: people found as detection finds objects, each with K joints (``multi_pose``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from centernet.boxes import Letterbox
from centernet.configs import as_options
from centernet.tasks.detection.config import DetectionHeadConfig, DetectionLossConfig
from centernet.tasks.detection.task import DetectionTask
from centernet.tasks.pose.config import PoseConfig
from centernet.tasks.pose.criterion import PoseCriterion
from centernet.tasks.pose.decode import decode_poses
from centernet.tasks.pose.evaluator import PoseEvaluator
from centernet.tasks.pose.flip import merge_flipped_pose_maps
from centernet.tasks.pose.heads import PoseHead
from centernet.tasks.pose.results import PosePrediction
from centernet.tasks.pose.skeleton import Skeleton

__all__ = ["PoseTask"]


class PoseTask(DetectionTask):
    """People (boxes, scores, labels) with their joints; see :mod:`centernet.tasks.base` for the interface.

    Boxes, scores and labels are selected, mapped back and suppressed exactly as detection's (this class extends
    :class:`~centernet.tasks.detection.task.DetectionTask`); ``keypoints`` (P, K, 3) follow their people.

    Args:
        head: The branches' width (the ``size`` head type: pose regresses the people's size and offset).
        loss: The people's heatmap kernel and loss weights (as detection's).
        options: The joints' loss weights and decoding (:class:`~centernet.tasks.pose.config.PoseConfig`).
        data: The dataset's :class:`~centernet.tasks.pose.skeleton.Skeleton` (or its dict): the joints.
    """

    name: ClassVar[str] = "pose"
    output_names: ClassVar[tuple[str, ...]] = ("boxes", "scores", "labels", "keypoints")

    def __init__(
        self,
        head: DetectionHeadConfig | str | None = None,
        loss: DetectionLossConfig | None = None,
        options: PoseConfig | Mapping[str, Any] | None = None,
        data: Skeleton | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(head, loss)
        if self.head.type != "size":
            raise ValueError(f"the pose task needs the size head (head.type: size), got {self.head.type!r}")
        if data is None:
            raise ValueError("the pose task needs the dataset's joints (task_data: the skeleton of a keypoint dataset)")
        self.options = as_options(options, PoseConfig)
        self.skeleton = Skeleton.from_dict(data)

    @property
    def num_joints(self) -> int:
        return self.skeleton.num_joints

    def build_head(self, in_channels: int, num_classes: int) -> nn.Module:
        return PoseHead(in_channels, num_classes, self.num_joints, self.head.channels)

    def build_criterion(self, num_classes: int, stride: int) -> nn.Module:
        return PoseCriterion(num_classes, self.num_joints, stride, self.loss, self.options)

    def decode(self, maps: Mapping[str, Tensor], stride: int, max_detections: int) -> dict[str, Tensor]:
        """``boxes`` (N, P, 4) xyxy, ``scores`` (N, P), ``labels`` (N, P) and ``keypoints`` (N, P, K, 3) x, y in
        input pixels and score."""
        return decode_poses(dict(maps), stride, max_detections, self.options)

    def merge_flipped(self, maps: Mapping[str, Tensor], num_images: int) -> dict[str, Tensor]:
        return merge_flipped_pose_maps(maps, num_images, self.skeleton.flip_permutation())

    def to_original(self, detections: Mapping[str, Tensor], letterbox: Letterbox) -> dict[str, Tensor]:
        """Boxes as detection's; (P, K, 3) joints to original pixels, clipped to the image, scores as they are."""
        out = super().to_original(detections, letterbox)
        keypoints = detections["keypoints"].float()  # (P, K, 3)
        xy = keypoints[..., :2]
        points = letterbox.to_original(torch.cat([xy, xy], dim=-1))[..., :2]  # the letterbox maps xyxy boxes
        out["keypoints"] = torch.cat([points, keypoints[..., 2:]], dim=-1)
        return out

    def result(
        self,
        detections: Mapping[str, Tensor],
        class_names: Sequence[str],
        category_ids: Sequence[int],
        image_size: tuple[int, int],
    ) -> PosePrediction:
        base = super().result(detections, class_names, category_ids, image_size)
        keypoints = detections["keypoints"].cpu().numpy().astype(np.float32).reshape(-1, self.num_joints, 3)
        return PosePrediction(**vars(base), keypoints=keypoints, edges=self.skeleton.edges)

    def evaluator(self, class_names: Sequence[str], category_ids: Sequence[int], max_detections: int) -> PoseEvaluator:
        return PoseEvaluator(class_names, category_ids, self.skeleton.sigmas, max_detections)
