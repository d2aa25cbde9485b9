"""Tracking metrics: equal to TrackEval's own MOTChallenge pipeline on a committed pair, 1 for a perfect result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from centernet.data.mot import read_mot_results, read_seqinfo
from centernet.tasks.tracking.metrics import TRACKING_METRIC_NAMES, evaluate_tracking

FIXTURE = Path(__file__).parent / "fixtures" / "tracking"
SEQUENCES = ("seq-a", "seq-b")


def _frames(path: Path, length: int) -> list[tuple[np.ndarray, np.ndarray]]:
    read = read_mot_results(path)
    return [read.get(f, (np.zeros(0, np.int64), np.zeros((0, 4))))[:2] for f in range(1, length + 1)]


def _ours(tracker_file=lambda name: FIXTURE / "trackers" / "ours" / "data" / f"{name}.txt") -> dict[str, float]:
    sequences = {}
    for name in SEQUENCES:
        length = int(read_seqinfo(FIXTURE / "gt" / name)["seqLength"])
        sequences[name] = (
            _frames(FIXTURE / "gt" / name / "gt" / "gt.txt", length),
            _frames(tracker_file(name), length),
        )
    return evaluate_tracking(sequences)


def test_metrics_equal_trackeval_on_the_committed_pair(tmp_path: Path):
    trackeval = pytest.importorskip("trackeval")
    evaluator = trackeval.Evaluator(
        {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
         "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "DISPLAY_LESS_PROGRESS": True}
    )  # fmt: skip
    dataset = trackeval.datasets.MotChallenge2DBox(
        {"GT_FOLDER": str(FIXTURE / "gt"), "TRACKERS_FOLDER": str(FIXTURE / "trackers"),
         "OUTPUT_FOLDER": str(tmp_path), "SKIP_SPLIT_FOL": True, "PRINT_CONFIG": False,
         "SEQ_INFO": {name: 12 for name in SEQUENCES}, "TRACKERS_TO_EVAL": ["ours"]}
    )  # fmt: skip
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
    results, _ = evaluator.evaluate([dataset], metrics)
    reference = results["MotChallenge2DBox"]["ours"]["COMBINED_SEQ"]["pedestrian"]
    ours = _ours()
    expected = {name: float(np.mean(reference["HOTA"][name])) for name in TRACKING_METRIC_NAMES[:8]}
    clear = {"MOTA": "MOTA", "MOTP": "MOTP", "IDSW": "IDSW", "FP": "CLR_FP", "FN": "CLR_FN", "Frag": "Frag",
             "MT": "MT", "PT": "PT", "ML": "ML"}  # fmt: skip
    expected.update({name: float(reference["CLEAR"][key]) for name, key in clear.items()})
    expected.update({name: float(reference["Identity"][name]) for name in ("IDF1", "IDP", "IDR")})
    for name in TRACKING_METRIC_NAMES:
        assert ours[name] == pytest.approx(expected[name], abs=1e-9), name
    # The pair has what it was made to have: one swap of two ids (two switches), misses, false positives.
    assert ours["IDSW"] == 3 and ours["FP"] == 6 and ours["FN"] == 2
    assert 0.5 < ours["MOTA"] < 1 and 0.5 < ours["IDF1"] < 1 and 0.5 < ours["HOTA"] < 1


def test_a_perfect_result_scores_one():
    perfect = _ours(lambda name: FIXTURE / "gt" / name / "gt" / "gt.txt")
    for name in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR"):
        assert perfect[name] == pytest.approx(1.0), name
    assert perfect["IDSW"] == perfect["FP"] == perfect["FN"] == 0
