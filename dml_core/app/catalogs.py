"""What the pages read from the artifact store, by ``DML_HOME`` path: a task's catalog with a
stamp that changes when a model lands, the tasks that are built, a build's profile and scale.

The pages cache catalogs per (task, root, stamp) with ``st.cache_resource``; the stamp is the
manifest times of the task's gallery, label distances and models, so a model trained in the
Training lab (or by the CLI) shows up on the next rerun without a restart, and a half-written
one (no manifest yet) never does.
"""
from __future__ import annotations

from dml_core.bench.run import reference_scores
from dml_core.core.store import ArtifactStore, dml_home
from dml_core.data.splits import load_split
from dml_core.data.tasks import TaskData, task_names
from dml_core.pipeline.profiles import Profile, stored_profile
from dml_core.serve.catalog import Catalog, load_catalog


def home() -> str:
    """The artifact root (``DML_HOME``) as a string: the cache key of everything loaded from it."""
    return str(dml_home())


def catalog_stamp(task: str, root: str) -> tuple:
    """Names and manifest times of the task's gallery, label distances and models."""
    store = ArtifactStore(root)
    stamp = [gallery_stamp(root, task), store.manifest_time(task, "label_dist")]
    stamp += [(model_id, store.manifest_time(task, "models", model_id))
              for model_id in store.list(task, "models", valid_only=False)]
    return tuple(stamp)


def open_catalog(task: str, root: str, previous: Catalog | None = None) -> Catalog:
    """The task's catalog; ``previous`` lends the models it loaded that have not changed since."""
    return load_catalog(task, ArtifactStore(root), previous=previous)


def built_tasks(root: str) -> list[str]:
    """Tasks (built-in and imported) whose data is built under ``root``."""
    return [task for task in task_names(root) if gallery_stamp(root, task) is not None]


def stored_gallery(root: str, task: str) -> TaskData:
    return load_split(ArtifactStore(root), task, "gallery")


def gallery_stamp(root: str, task: str) -> float | None:
    """When the task's gallery was stored (None: it is not): the cache key of its example tiles."""
    return ArtifactStore(root).manifest_time(task, "data", "gallery")


def task_profile(root: str, task: str) -> Profile:
    """The profile the task's stored data was built with (MissingArtifact when none is)."""
    return stored_profile(ArtifactStore(root), task)


def task_reference(root: str, task: str) -> dict:
    """What random retrieval and the oracle score on the task's queries: every score's scale."""
    return reference_scores(ArtifactStore(root), task)
