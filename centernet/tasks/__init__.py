"""Tasks: what the network predicts and how it is trained, decoded, evaluated and drawn (see
:mod:`centernet.tasks.base`). A task is registered here by name; the model config selects it with
``model.task``."""

from __future__ import annotations

import inspect
from typing import Any

from centernet.tasks.base import Evaluator, Task
from centernet.tasks.detection.task import DetectionTask
from centernet.tasks.pose.task import PoseTask
from centernet.tasks.tracking.task import TrackingTask

__all__ = ["TASKS", "Evaluator", "Task", "build_task"]

TASKS: dict[str, type[Task]] = {"detection": DetectionTask, "pose": PoseTask, "tracking": TrackingTask}


def build_task(name: str, **options: Any) -> Task:
    """The task registered as ``name``, built from its options: ``head=`` and ``loss=`` (every task), and where a
    task has them, ``options=`` (its own options, ``model.task_options``) and ``data=`` (what it needs to know about
    the dataset, ``model.task_data``: pose's skeleton). ``None`` values are left out."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available: {sorted(TASKS)}")
    given = {key: value for key, value in options.items() if value is not None}
    for key in ("options", "data"):
        if given.get(key) == {}:
            del given[key]
    unknown = sorted(set(given) - set(inspect.signature(TASKS[name]).parameters))
    if unknown:
        raise ValueError(f"the {name} task does not take {unknown}")
    return TASKS[name](**given)
