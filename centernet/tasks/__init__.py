"""Tasks: what the network predicts and how it is trained, decoded, evaluated and drawn (see
:mod:`centernet.tasks.base`). A task is registered here by name; the model config selects it with
``model.task``."""

from __future__ import annotations

from typing import Any

from centernet.tasks.base import Evaluator, Task
from centernet.tasks.detection.task import DetectionTask
from centernet.tasks.tracking.task import TrackingTask

__all__ = ["TASKS", "Evaluator", "Task", "build_task"]

TASKS: dict[str, type[Task]] = {"detection": DetectionTask, "tracking": TrackingTask}


def build_task(name: str, **options: Any) -> Task:
    """The task registered as ``name``, built from its options (e.g. ``head=`` and ``loss=`` for detection)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    return TASKS[name](**options)
