"""Timing shared by the benchmark scripts: paired, interleaved repetitions and ratios with their spread.

On a shared machine the speed drifts several-fold within minutes, so timing model A for a minute and then
model B measures the drift as much as the models. Here every repetition runs each compared call once, in ABBA
order (A B C, then C B A, ...), so a slow or fast spell lands on all of them alike and a linear drift cancels
over each pair of rounds; a ratio is then the median of the per-repetition ratios, reported with its
interquartile range.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch

__all__ = ["RatioStats", "abba_order", "machine_header", "median_ms", "paired_times", "ratio_stats"]


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 2) -> float:
    """Median milliseconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls (one call, no pairing)."""
    return 1000 * statistics.median(paired_times({"fn": fn}, repeats, warmup)["fn"])


def abba_order(names: Sequence[str], repeats: int) -> list[list[str]]:
    """The calls of each repetition: ``names`` forward in even repetitions, backward in odd ones.

    ``abba_order(["A", "B"], 4)`` is ``[[A, B], [B, A], [A, B], [B, A]]``: over any two consecutive repetitions
    each name sits at the mean position, so a drift linear in time adds the same to every name.
    """
    forward, backward = list(names), list(reversed(names))
    return [forward if index % 2 == 0 else backward for index in range(repeats)]


def paired_times(
    fns: Mapping[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds of each call per repetition, the calls interleaved in ABBA order (:func:`abba_order`).

    Args:
        fns: Name -> call to time; a call must finish its work before it returns (synchronise a GPU inside it).
        repeats: Timed repetitions; each runs every call once.
        warmup: Untimed repetitions first, in the same order (allocator, oneDNN kernels, caches).
        clock: Seconds as a float; ``time.perf_counter`` unless a test substitutes it.

    Returns:
        Name -> ``repeats`` durations in seconds, index i from repetition i, so ``times[a][i] / times[b][i]``
        is the ratio of one repetition.
    """
    names = list(fns)
    for order in abba_order(names, warmup):
        for name in order:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for order in abba_order(names, repeats):
        for name in order:
            start = clock()
            fns[name]()
            times[name].append(clock() - start)
    return times


class RatioStats(NamedTuple):
    """The median of per-repetition ratios and its quartiles (the interquartile range is ``q1 .. q3``)."""

    median: float
    q1: float
    q3: float

    def __str__(self) -> str:
        return f"{self.median:.2f}x (IQR {self.q1:.2f}-{self.q3:.2f})"


def ratio_stats(numerator: Sequence[float], denominator: Sequence[float]) -> RatioStats:
    """Median and quartiles of ``numerator[i] / denominator[i]`` over paired repetitions i.

    Quartiles interpolate between the sorted ratios (``statistics.quantiles``, inclusive method): for the
    ratios 1, 2, 3, 4, 5 they are 2 and 4; a single repetition gives its ratio three times.
    """
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"need paired repetitions, got {len(numerator)} and {len(denominator)} times")
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    if len(ratios) == 1:
        return RatioStats(ratios[0], ratios[0], ratios[0])
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return RatioStats(median, q1, q3)


def _cpu_name() -> str:
    """The processor's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_header(device: torch.device | str = "cpu") -> str:
    """One line naming the machine, the threads and the versions that every printed number depends on."""
    device = torch.device(device)
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}), host {_cpu_name()}"
    else:
        where = f"{_cpu_name()}, {os.cpu_count()} cores"
    versions = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    for package in ("torchvision", "lightning", "onnxruntime"):
        try:
            versions.append(f"{package} {__import__(package).__version__}")
        except ImportError:
            continue
    return f"{where}, {torch.get_num_threads()} torch threads; " + ", ".join(versions)
