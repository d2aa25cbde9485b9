"""Ground truth of the joints: the regression from each person's centre cell and the joint heatmaps.

Conventions (those of :mod:`centernet.tasks.detection.targets`): a point at relative (x, y) on an input image of
(H, W) = (Ho R, Wo R) lies at ``(x Wo, y Ho)`` in output cells; its cell is the floor, clamped to the map, and its
sub-cell offset the remainder (in [0, 1], 1 only on the right / bottom border). A person's joint offsets are
``joint - centre cell`` in output cells, read at the centre cell (the cell's point is its top-left corner).

A joint with visibility 0 is not labelled: it has no regression target, no heatmap peak and no offset target.
Joint Gaussians are sized like the person's (the original ``multi_pose`` rule): the circular CornerNet radius of
the person's box, so that a large person's joints tolerate a larger error than a small one's.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from centernet.tasks.detection.targets import render_targets

__all__ = ["PoseTargets", "render_pose_targets"]


class PoseTargets(NamedTuple):
    """Joint targets at the output resolution (Ho, Wo); D people rows, K joints.

    Attributes:
        centre_indices: (N, D) int64 flattened centre cell ``y * Wo + x`` of each person; 0 for padding.
        joints: (N, D, K, 2) float32 joint - centre cell, in output cells; 0 where not labelled.
        joint_mask: (N, D, K) float32, 1 for a labelled joint of a real person.
        joint_heatmap: (N, K, Ho, Wo) float32 in [0, 1], exactly 1 at each labelled joint's cell.
        joint_indices: (N, D * K) int64 flattened cell of each joint (person-major); 0 where not labelled.
        joint_offset: (N, D * K, 2) float32 sub-cell offset of each joint; 0 where not labelled.
    """

    centre_indices: Tensor
    joints: Tensor
    joint_mask: Tensor
    joint_heatmap: Tensor
    joint_indices: Tensor
    joint_offset: Tensor


def render_pose_targets(
    bboxes: Tensor,
    keypoints: Tensor,
    mask: Tensor,
    output_size: tuple[int, int],
    min_overlap: float = 0.7,
    channels_last: bool = False,
) -> PoseTargets:
    """Render the joint targets of a padded batch (vectorised over images, people and joints).

    Args:
        bboxes: (N, D, 4) person boxes cx, cy, w, h relative to the input image.
        keypoints: (N, D, K, 3) joints x, y relative to the input image and visibility (0: not labelled).
        mask: (N, D) 1 for a real person, 0 for a padding row.
        output_size: (Ho, Wo).
        min_overlap: CornerNet radius rule of the joint Gaussians (the person box's radius).
        channels_last: Render the joint heatmap in channels-last memory (see ``render_targets``).

    Returns:
        :class:`PoseTargets`.
    """
    num_images, num_rows, num_joints, _ = keypoints.shape
    out_h, out_w = output_size
    valid = mask > 0  # (N, D)
    labelled = valid.unsqueeze(-1) & (keypoints[..., 2] > 0)  # (N, D, K)
    boxes = torch.where(valid.unsqueeze(-1), bboxes.float(), 0.0)
    cell_x = (boxes[..., 0] * out_w).floor().clamp(0, out_w - 1)  # (N, D)
    cell_y = (boxes[..., 1] * out_h).floor().clamp(0, out_h - 1)
    centre_indices = torch.where(valid, (cell_y * out_w + cell_x).long(), 0)

    points = torch.where(labelled.unsqueeze(-1), keypoints[..., :2].float(), 0.0)  # (N, D, K, 2) relative
    cells = points * torch.tensor([out_w, out_h], dtype=torch.float32, device=points.device)  # output cells
    centre = torch.stack([cell_x, cell_y], dim=-1).unsqueeze(2)  # (N, D, 1, 2)
    joints = torch.where(labelled.unsqueeze(-1), cells - centre, 0.0)  # (N, D, K, 2)

    # Each joint as a "box" of its person's size centred on the joint, in the joint's channel: render_targets then
    # draws the person-sized Gaussian, and gives the joint's cell and sub-cell offset.
    joint_boxes = torch.cat(
        [points, boxes[..., 2:].unsqueeze(2).expand(-1, -1, num_joints, -1)], dim=-1
    )  # (N, D, K, 4)
    joint_labels = torch.arange(num_joints, device=keypoints.device).expand(num_images, num_rows, -1)  # (N, D, K)
    rendered = render_targets(
        joint_boxes.reshape(num_images, num_rows * num_joints, 4),
        joint_labels.reshape(num_images, num_rows * num_joints),
        labelled.reshape(num_images, num_rows * num_joints).float(),
        num_joints,
        output_size,
        gaussian="cornernet",
        min_overlap=min_overlap,
        channels_last=channels_last,
    )
    return PoseTargets(
        centre_indices=centre_indices,
        joints=joints,
        joint_mask=labelled.float(),
        joint_heatmap=rendered.heatmap,
        joint_indices=rendered.indices,
        joint_offset=rendered.offset,
    )
