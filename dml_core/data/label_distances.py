"""The query × gallery label distances of a task's stored splits (``<task>/label_dist``): what every metric ranks against."""
from __future__ import annotations

import numpy as np

from dml_core.core.store import ArtifactStore
from dml_core.data.splits import load_split
from dml_core.data.tasks import TASK_NAMES, get_task


def build_label_distances(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES) -> list[str]:
    """Compute and store the matrix of every task whose stored one is missing or of another profile."""
    built = []
    for task in tasks:
        key = (task, "label_dist")
        if store.is_valid(*key, full=True) and store.manifest(*key)["meta"].get("profile") == profile_name:
            continue
        query, gallery = load_split(store, task, "query"), load_split(store, task, "gallery")
        matrix = get_task(task).label_distance(query.labels, gallery.labels).astype(np.float32)
        with store.writer(*key, meta={"shape": list(matrix.shape), "profile": profile_name}) as tmp:
            np.save(tmp / "query_gallery.npy", matrix)
        built.append(task)
    return built


def query_gallery_label_distance(store: ArtifactStore, task: str) -> np.ndarray:
    return store.load_array(task, "label_dist", name="query_gallery.npy")
