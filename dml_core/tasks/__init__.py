"""Retrieval tasks with continuous labels: ``get_task("pose" | "layout" | "caption")``."""
from __future__ import annotations

import importlib

from .base import DEFAULT_IMAGE_SIZE, DataFormatError, Task, TaskData

TASK_NAMES = ("pose", "layout", "caption")


def get_task(name: str) -> Task:
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASK_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}").TASK


__all__ = ["DEFAULT_IMAGE_SIZE", "DataFormatError", "TASK_NAMES", "Task", "TaskData", "get_task"]
