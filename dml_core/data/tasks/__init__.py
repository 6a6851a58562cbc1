"""Retrieval tasks with continuous labels: ``get_task("pose" | "layout" | "caption")``, or the
name of a data set imported into ``DML_HOME`` (``python -m dml_core import``, ``tasks.imported``)."""
from __future__ import annotations

import importlib

from dml_core.data.tasks.base import DEFAULT_IMAGE_SIZE, DataFormatError, Task, TaskData

#: The built-in tasks (procedural generators); ``task_names()`` adds the imported ones.
TASK_NAMES = ("pose", "layout", "caption")


def task_names(home=None) -> tuple[str, ...]:
    """Every task a command or page accepts: the built-in ones, then those imported into
    ``home`` (default ``DML_HOME``)."""
    from dml_core.data.tasks.imported import imported_task_names

    return TASK_NAMES + imported_task_names(home)


def get_task(name: str, home=None) -> Task:
    """A built-in task, or the task imported into ``home`` (default ``DML_HOME``) as ``name``."""
    if name in TASK_NAMES:
        return importlib.import_module(f"{__name__}.{name}").TASK
    from dml_core.data.tasks.imported import load_imported_task

    try:
        return load_imported_task(name, home)
    except LookupError:
        raise ValueError(f"unknown task {name!r}; choose from {', '.join(task_names(home))}") from None


__all__ = ["DEFAULT_IMAGE_SIZE", "DataFormatError", "TASK_NAMES", "Task", "TaskData", "get_task", "task_names"]
