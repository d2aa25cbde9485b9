"""Tracking metrics: HOTA (Luiten et al. 2021), CLEAR MOT (MOTA, MOTP, ...) and the identity metrics (IDF1, ...),
computed by TrackEval, the benchmark's reference implementation (``pip install trackeval``).

The ground truth and the tracker's output of each sequence are given per frame as ``(track ids (n,), xyxy boxes
(n, 4))`` in the same pixels; similarity is box IoU (MOTChallenge's). TrackEval's MOTChallenge loader also removes
the ground truth whose "consider" flag is 0 and the detections matched to distractor classes; our readers leave
the former out already (:mod:`centernet.data.mot`) and the built-in data have no distractors, so on such data the
numbers are the benchmark's (a test compares them with TrackEval's own MOTChallenge pipeline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["TRACKING_METRIC_NAMES", "FrameTracks", "evaluate_tracking"]

#: (track ids (n,), xyxy boxes (n, 4)) of one frame.
FrameTracks = tuple[np.ndarray, np.ndarray]

#: The reported metrics: HOTA and its components (averaged over IoU thresholds 0.05..0.95), CLEAR MOT, identity.
TRACKING_METRIC_NAMES = (
    "HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr",
    "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN", "Frag", "MT", "PT", "ML",
)  # fmt: skip
_CLEAR_NAMES = {"MOTA": "MOTA", "MOTP": "MOTP", "IDSW": "IDSW", "FP": "CLR_FP", "FN": "CLR_FN", "Frag": "Frag",
                "MT": "MT", "PT": "PT", "ML": "ML"}  # fmt: skip


def _iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """(n, 4) x (m, 4) xyxy -> (n, m) IoU."""
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(boxes_a[:, 2:] - boxes_a[:, :2], axis=1)
    area_b = np.prod(boxes_b[:, 2:] - boxes_b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _sequence_data(ground_truth: Sequence[FrameTracks], tracks: Sequence[FrameTracks]) -> dict:
    """TrackEval's per-sequence input: ids remapped to 0..n-1 and the IoU of every frame."""
    if len(ground_truth) != len(tracks):
        raise ValueError(f"{len(ground_truth)} ground-truth frames but {len(tracks)} tracked frames")
    gt_ids = {int(i): k for k, i in enumerate(sorted({int(i) for ids, _ in ground_truth for i in ids}))}
    tr_ids = {int(i): k for k, i in enumerate(sorted({int(i) for ids, _ in tracks for i in ids}))}
    data: dict = {"num_timesteps": len(ground_truth), "num_gt_ids": len(gt_ids), "num_tracker_ids": len(tr_ids),
                  "gt_ids": [], "tracker_ids": [], "similarity_scores": []}  # fmt: skip
    for (g_ids, g_boxes), (t_ids, t_boxes) in zip(ground_truth, tracks, strict=True):
        data["gt_ids"].append(np.array([gt_ids[int(i)] for i in g_ids], dtype=int))
        data["tracker_ids"].append(np.array([tr_ids[int(i)] for i in t_ids], dtype=int))
        data["similarity_scores"].append(
            _iou(np.asarray(g_boxes, float).reshape(-1, 4), np.asarray(t_boxes, float).reshape(-1, 4))
        )
    data["num_gt_dets"] = sum(len(ids) for ids in data["gt_ids"])
    data["num_tracker_dets"] = sum(len(ids) for ids in data["tracker_ids"])
    return data


def evaluate_tracking(
    sequences: Mapping[str, tuple[Sequence[FrameTracks], Sequence[FrameTracks]]],
) -> dict[str, float]:
    """HOTA, CLEAR MOT and identity metrics over sequences (combined as the benchmark does, not averaged).

    Args:
        sequences: name -> (ground truth per frame, tracker output per frame), frames aligned.

    Returns:
        :data:`TRACKING_METRIC_NAMES` -> value: fractions in [0, 1] (MOTA may be negative), counts for IDSW, FP,
        FN, Frag, MT, PT, ML.
    """
    try:
        from trackeval.metrics import CLEAR, HOTA, Identity
    except ImportError as error:  # an optional dependency: only tracking evaluation needs it
        raise ImportError("tracking metrics need TrackEval: pip install 'centernet[tracking]'") from error

    config = {"PRINT_CONFIG": False, "THRESHOLD": 0.5}
    metrics = {"hota": HOTA(config), "clear": CLEAR(config), "identity": Identity(config)}
    per_sequence: dict[str, dict] = {name: {} for name in metrics}
    for sequence, (ground_truth, tracks) in sequences.items():
        data = _sequence_data(ground_truth, tracks)
        for name, metric in metrics.items():
            per_sequence[name][sequence] = metric.eval_sequence(data)
    combined = {name: metric.combine_sequences(per_sequence[name]) for name, metric in metrics.items()}
    out = {name: float(np.mean(combined["hota"][name])) for name in TRACKING_METRIC_NAMES[:8]}
    out.update({name: float(combined["clear"][key]) for name, key in _CLEAR_NAMES.items()})
    out.update({name: float(combined["identity"][name]) for name in ("IDF1", "IDP", "IDR")})
    return {name: out[name] for name in TRACKING_METRIC_NAMES}
