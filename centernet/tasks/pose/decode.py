"""Decoding of the pose maps: people at the centre heatmap's peaks, each with its K joints, batched.

Each joint starts as the person's centre cell plus its regressed offset (the ``joints`` map read at that cell).
With snapping (the paper's rule, Sec. 4), it then moves to the nearest peak of its joint heatmap that scores above
``joint_threshold``, lies inside the person's box and within ``snap_distance`` times the box's longer side; a
joint without such a peak keeps its regressed position. A joint's score is the joint heatmap's probability where
it ends: the peak's when snapped, else the cell under the regressed joint. All of it is tensor arithmetic over
(images, people, joints, candidates): no Python loop over people.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert

from centernet.tasks.detection.decode import _top_peaks
from centernet.tasks.pose.config import PoseConfig

__all__ = ["decode_poses", "joint_candidates"]


def _read(maps: Tensor, cells: Tensor) -> Tensor:
    """(N, C, Ho, Wo) maps at (N, M) flattened cells -> (N, M, C) float32."""
    num_images, channels = maps.shape[:2]
    flat = maps.float().reshape(num_images, channels, -1)  # (N, C, Ho * Wo)
    return flat.gather(2, cells.unsqueeze(1).expand(-1, channels, -1)).transpose(1, 2)


def joint_candidates(joint_heatmap: Tensor, joint_offset: Tensor, max_candidates: int) -> tuple[Tensor, Tensor]:
    """The best 3x3 peaks of each joint heatmap: where the bottom-up joints are.

    Args:
        joint_heatmap: (N, K, Ho, Wo) logits.
        joint_offset: (N, 2, Ho, Wo) sub-cell (dx, dy) of a joint in its cell, in output cells.
        max_candidates: M upper bound; M = min(max_candidates, Ho * Wo).

    Returns:
        ``points`` (N, K, M, 2) x, y in output cells and ``scores`` (N, K, M) probabilities (0 for non-peaks).
    """
    num_images, num_joints, out_h, out_w = joint_heatmap.shape
    logits = joint_heatmap.float()
    pooled = F.max_pool2d(logits, kernel_size=3, stride=1, padding=1)
    peaks = torch.where(pooled == logits, torch.sigmoid(logits), 0.0).reshape(num_images, num_joints, -1)
    scores, cells = peaks.topk(min(max_candidates, out_h * out_w), dim=2)  # (N, K, M)
    offset = _read(joint_offset, cells.flatten(1)).view(num_images, num_joints, -1, 2)  # (N, K, M, 2)
    grid = torch.stack([cells % out_w, cells // out_w], dim=-1).float()  # (N, K, M, 2)
    return grid + offset, scores


def decode_poses(
    maps: dict[str, Tensor], stride: int = 4, max_detections: int = 100, options: PoseConfig | None = None
) -> dict[str, Tensor]:
    """The top-K people of every image with their joints, in input pixels.

    Args:
        maps: :class:`~centernet.tasks.pose.heads.PoseHead`'s maps (``heatmap``, ``size``, ``offset``, ``joints``,
            ``joint_heatmap``, ``joint_offset``).
        stride: Output stride R.
        max_detections: K upper bound on people per image (and on the joint candidates per joint type).
        options: Snapping and its thresholds.

    Returns:
        ``boxes`` (N, P, 4) xyxy input pixels, ``scores`` (N, P) descending (0 as padding), ``labels`` (N, P)
        int64 and ``keypoints`` (N, P, K, 3): x, y in input pixels and the joint's score.
    """
    options = options or PoseConfig()
    heatmap = maps["heatmap"]
    num_images, _, out_h, out_w = heatmap.shape
    scores, labels, cells = _top_peaks(heatmap, max_detections)  # (N, P) each
    size = _read(maps["size"], cells).clamp(min=0)  # (N, P, 2) cells
    cell_xy = torch.stack([cells % out_w, cells // out_w], dim=-1).float()  # (N, P, 2)
    centre = cell_xy + _read(maps["offset"], cells)  # (N, P, 2)
    boxes = box_convert(torch.cat([centre, size], dim=-1), "cxcywh", "xyxy")  # (N, P, 4) cells

    num_joints = maps["joint_heatmap"].shape[1]
    regressed = cell_xy.unsqueeze(2) + _read(maps["joints"], cells).view(num_images, -1, num_joints, 2)  # (N,P,K,2)
    joint_probability = torch.sigmoid(maps["joint_heatmap"].float()).flatten(2)  # (N, K, Ho * Wo)
    if options.snap:
        points, peak_scores = joint_candidates(maps["joint_heatmap"], maps["joint_offset"], max_detections)
        delta = regressed.unsqueeze(3) - points.unsqueeze(1)  # (N, P, K, M, 2)
        distance = delta.square().sum(-1).sqrt()  # (N, P, K, M)
        x1, y1, x2, y2 = (boxes[..., i, None, None] for i in range(4))  # (N, P, 1, 1) each
        px, py = points[..., 0].unsqueeze(1), points[..., 1].unsqueeze(1)  # (N, 1, K, M)
        reach = options.snap_distance * size.amax(-1)[..., None, None]  # (N, P, 1, 1)
        inside = (px >= x1) & (px <= x2) & (py >= y1) & (py <= y2)  # (N, P, K, M)
        eligible = (peak_scores.unsqueeze(1) > options.joint_threshold) & inside & (distance <= reach)
        nearest_distance, nearest = torch.where(eligible, distance, float("inf")).min(dim=-1)  # (N, P, K)
        snapped = torch.isfinite(nearest_distance)
        chosen = points.unsqueeze(1).expand(-1, regressed.shape[1], -1, -1, -1)  # (N, P, K, M, 2)
        chosen = chosen.gather(3, nearest[..., None, None].expand(-1, -1, -1, 1, 2)).squeeze(3)  # (N, P, K, 2)
        chosen_score = peak_scores.unsqueeze(1).expand_as(distance).gather(3, nearest.unsqueeze(-1)).squeeze(-1)
        joints = torch.where(snapped.unsqueeze(-1), chosen, regressed)
    else:
        snapped = torch.zeros(regressed.shape[:3], dtype=torch.bool, device=regressed.device)
        chosen_score = torch.zeros(regressed.shape[:3], device=regressed.device)
        joints = regressed
    # The joint heatmap's probability under an unsnapped joint (its cell, clamped to the map).
    jx = joints[..., 0].floor().clamp(0, out_w - 1).long()
    jy = joints[..., 1].floor().clamp(0, out_h - 1).long()
    under = joint_probability.gather(2, (jy * out_w + jx).transpose(1, 2)).transpose(1, 2)  # (N, P, K)
    joint_scores = torch.where(snapped, chosen_score, under)
    keypoints = torch.cat([joints * stride, joint_scores.unsqueeze(-1)], dim=-1)  # (N, P, K, 3)
    return {"boxes": boxes * stride, "scores": scores, "labels": labels, "keypoints": keypoints}
