"""Paired benchmark timing: the interleaving order and the ratio statistics, checked with a fake clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from timing import RatioStats, abba_order, machine_header, median_ms, paired_times, ratio_stats  # noqa: E402


class _FakeClock:
    """A clock that advances only when a timed call says so, logging every call."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def call(self, name: str, seconds: float):
        def run() -> None:
            self.calls.append(name)
            self.now += seconds

        return run


def test_abba_order_alternates_direction():
    assert abba_order(["A", "B", "C"], 4) == [["A", "B", "C"], ["C", "B", "A"], ["A", "B", "C"], ["C", "B", "A"]]
    assert abba_order(["A"], 2) == [["A"], ["A"]]
    assert abba_order(["A", "B"], 0) == []


def test_paired_times_interleaves_warmup_then_repetitions_in_abba_order():
    clock = _FakeClock()
    fns = {"A": clock.call("A", 1.0), "B": clock.call("B", 2.0), "C": clock.call("C", 4.0)}
    times = paired_times(fns, repeats=3, warmup=2, clock=clock)
    warmup, timed = clock.calls[:6], clock.calls[6:]
    assert warmup == ["A", "B", "C", "C", "B", "A"]
    assert timed == ["A", "B", "C", "C", "B", "A", "A", "B", "C"]
    assert times == {"A": [1.0, 1.0, 1.0], "B": [2.0, 2.0, 2.0], "C": [4.0, 4.0, 4.0]}


def test_paired_times_keeps_repetition_index_under_drift():
    """A machine slowing down linearly: every call of repetition i is slowed alike, the ratio stays exact."""
    clock = _FakeClock()
    durations = {"A": 1.0, "B": 3.0}
    repetition = {"A": 0, "B": 0}

    def make(name: str):
        def run() -> None:
            clock.now += durations[name] * (1 + repetition[name])  # each repetition 1x slower than the last
            repetition[name] += 1

        return run

    times = paired_times({"A": make("A"), "B": make("B")}, repeats=4, warmup=0, clock=clock)
    assert times["A"] == [1.0, 2.0, 3.0, 4.0]
    assert [b / a for a, b in zip(times["A"], times["B"], strict=True)] == [3.0] * 4
    assert ratio_stats(times["B"], times["A"]) == RatioStats(3.0, 3.0, 3.0)


def test_ratio_stats_median_and_interquartile_range_are_exact():
    denominator = [1.0, 1.0, 1.0, 1.0, 1.0]
    assert ratio_stats([5.0, 1.0, 4.0, 2.0, 3.0], denominator) == RatioStats(3.0, 2.0, 4.0)
    # Per-repetition ratios 2, 4, 1, 3 (pairing matters: the ratio of medians would be 2.5 / 1.75).
    stats = ratio_stats([2.0, 4.0, 3.0, 3.0], [1.0, 1.0, 3.0, 1.0])
    assert stats.median == pytest.approx(2.5)
    assert (stats.q1, stats.q3) == (pytest.approx(1.75), pytest.approx(3.25))
    assert ratio_stats([3.0], [2.0]) == RatioStats(1.5, 1.5, 1.5)
    assert str(RatioStats(2.5, 1.75, 3.25)) == "2.50x (IQR 1.75-3.25)"


def test_ratio_stats_rejects_unpaired_times():
    with pytest.raises(ValueError, match="paired"):
        ratio_stats([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="paired"):
        ratio_stats([], [])


def test_median_ms_counts_each_call_once_after_warmup():
    calls = []
    assert median_ms(lambda: calls.append(1), repeats=3, warmup=2) >= 0.0
    assert len(calls) == 5


def test_machine_header_names_threads_and_versions():
    import torch

    header = machine_header("cpu")
    assert f"{torch.get_num_threads()} torch threads" in header
    assert f"torch {torch.__version__}" in header and "python " in header
