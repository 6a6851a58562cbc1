"""Choosing queries: filters by a task's attributes, and examples that show a task's range."""
from __future__ import annotations

import numpy as np


def filter_queries(data, attribute: str | None = None, value=None) -> list[int]:
    """Indices of the images whose ``meta[attribute] == value`` (all when either is None)."""
    if attribute is None or value is None or attribute not in data.meta:
        return list(range(len(data)))
    return [i for i, v in enumerate(data.meta[attribute]) if str(v) == str(value)]


def attribute_values(data, attribute: str) -> list[str]:
    """Distinct values of a meta attribute, sorted (numbers numerically)."""
    values = {str(v) for v in data.meta.get(attribute, [])}
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


MAX_CATEGORIES = 24  # text attributes with more values than this are not offered as filters


MAX_INT_CATEGORIES = 8  # integer attributes (counts, views) beyond this are ids or measurements


def attribute_is_categorical(values, codes: bool = False) -> bool:
    """Text with a few values, or integers with very few (counts, view ids); never floats.

    codes: the integers are category codes (``Task.categorical``), so they count as text.
    """
    values = list(values)
    if not values or any(isinstance(v, float) for v in values):
        return False
    distinct = len(set(map(str, values)))
    if not codes and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return distinct <= MAX_INT_CATEGORIES
    return distinct <= MAX_CATEGORIES


def task_attribute_is_categorical(task, data, attribute: str) -> bool:
    return attribute_is_categorical(data.meta[attribute], codes=attribute in getattr(task, "categorical", ()))


def categorical_attributes(task, data) -> list[str]:
    """The task's attributes that make good query filters (categorical, more than one value)."""
    return [a for a in task.attributes
            if a in data.meta and task_attribute_is_categorical(task, data, a) and len(set(map(str, data.meta[a]))) > 1]


def example_attribute(task, data) -> str | None:
    """The attribute that names what an image shows (activity, room, category): the task's
    first categorical one with text values, else its first categorical one."""
    categorical = categorical_attributes(task, data)
    return next((a for a in categorical if isinstance(data.meta[a][0], str)), categorical[0] if categorical else None)


def example_indices(task, data, n: int = 6) -> list[int]:
    """``n`` images that show a task's range: the first image of each value of
    ``example_attribute`` in turn, then the following images."""
    attribute = example_attribute(task, data)
    first_of_value: dict[str, int] = {}
    for index, value in enumerate(data.meta[attribute] if attribute else []):
        first_of_value.setdefault(str(value), index)
    picks = list(first_of_value.values())[:n]
    return picks + [i for i in range(len(data)) if i not in picks][: n - len(picks)]
