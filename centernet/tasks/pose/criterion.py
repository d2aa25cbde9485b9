"""The pose criterion: detection's losses for the people, plus the joints' (Zhou et al. 2019, Sec. 4)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from centernet.distributed import global_mean_count
from centernet.losses import focal_loss_with_logits, masked_l1_loss
from centernet.tasks.detection.config import DetectionLossConfig
from centernet.tasks.detection.criterion import CenterNetCriterion
from centernet.tasks.pose.config import PoseConfig
from centernet.tasks.pose.targets import render_pose_targets

__all__ = ["PoseCriterion"]


def _gather(maps: Tensor, indices: Tensor) -> Tensor:
    """(N, C, Ho, Wo) maps read at (N, M) flattened cells -> (N, M, C)."""
    num_images, channels = maps.shape[:2]
    flat = maps.reshape(num_images, channels, -1)  # (N, C, Ho * Wo)
    return flat.gather(2, indices.unsqueeze(1).expand(-1, channels, -1)).transpose(1, 2)  # (N, M, C)


class PoseCriterion(nn.Module):
    """Losses of ``multi_pose``: focal loss on the person heatmap, L1 on size and offset (detection's
    :class:`~centernet.tasks.detection.criterion.CenterNetCriterion`); L1 on the joint offsets from the centre,
    masked where a joint is not labelled; focal loss on the joint heatmaps; L1 on the joints' sub-cell offset.

    The joint L1 losses are normalised per labelled joint coordinate, the joint focal loss by the number of
    labelled joints, so a batch without labelled joints trains the people only.

    Args:
        num_classes: Person heatmap channels C.
        num_joints: Joints per person K.
        stride: Output stride R.
        loss: The people's heatmap kernel and loss weights (``size_weight`` 0.1, the others 1, as the paper).
        options: The joints' loss weights (1 each, as the paper).
    """

    def __init__(
        self,
        num_classes: int,
        num_joints: int,
        stride: int = 4,
        loss: DetectionLossConfig | None = None,
        options: PoseConfig | None = None,
    ) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.people = CenterNetCriterion(num_classes, stride, loss)
        self.options = options or PoseConfig()
        self.weights = {
            "joints": self.options.joint_weight,
            "joint_heatmap": self.options.joint_heatmap_weight,
            "joint_offset": self.options.joint_offset_weight,
        }

    def forward(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Compute the losses.

        Args:
            outputs: :class:`~centernet.tasks.pose.heads.PoseHead`'s maps.
            batch: The batch contract plus ``keypoints`` (N, D, K, 3): x, y relative to the image, visibility.

        Returns:
            Dict of float32 scalars: unweighted ``heatmap``, ``size``, ``offset``, ``joints``, ``joint_heatmap``
            and ``joint_offset`` losses, and ``total``, their weighted sum.
        """
        losses = self.people(outputs, batch)
        joint_heatmap = outputs["joint_heatmap"]
        _, channels, out_h, out_w = joint_heatmap.shape
        if channels != self.num_joints:
            raise ValueError(f"joint heatmap has {channels} channels but the criterion expects {self.num_joints}")
        keypoints = batch["keypoints"]
        if keypoints.shape[-2] != self.num_joints:
            raise ValueError(f"the batch has {keypoints.shape[-2]} joints per person, the model {self.num_joints}")
        with torch.no_grad():
            targets = render_pose_targets(
                batch["bboxes"],
                keypoints,
                batch["mask"],
                (out_h, out_w),
                min_overlap=self.people.options.min_overlap,
                channels_last=joint_heatmap.is_contiguous(memory_format=torch.channels_last)
                and not joint_heatmap.is_contiguous(),
            )
        num_images, num_rows = targets.centre_indices.shape
        regressed = _gather(outputs["joints"], targets.centre_indices)  # (N, D, 2K)
        regressed = regressed.reshape(num_images, num_rows * self.num_joints, 2)  # (N, D * K, 2)
        joint_mask = targets.joint_mask.reshape(num_images, num_rows * self.num_joints)  # (N, D * K)
        losses["joints"] = masked_l1_loss(regressed, targets.joints.flatten(1, 2), joint_mask)
        losses["joint_heatmap"] = focal_loss_with_logits(
            joint_heatmap, targets.joint_heatmap, global_mean_count(joint_mask.sum())
        )
        losses["joint_offset"] = masked_l1_loss(
            _gather(outputs["joint_offset"], targets.joint_indices), targets.joint_offset, joint_mask
        )
        losses["total"] = losses["total"] + sum(self.weights[name] * losses[name] for name in self.weights)
        return losses
