"""Imported data sets as tasks: a person's own images with a continuous label (``folder``), or
a real benchmark (``mpii``, ``lsun``, ``coco``) read by the built-in tasks' loaders.

``python -m dml_core import`` (``dml_core.data.importer``) stores an imported task NAME in the
artifact store (``DML_HOME``)::

    NAME/task/                          the descriptor: its manifest's meta says how to compare
                                        labels (format, label columns and their standardisation,
                                        distance), the title, description, attributes and split
                                        sizes; skipped.json lists what the import left out and why
    NAME/source/{train,gallery,query}/  every usable image, split once at import time
                                        (``data.splits.save_split``'s format)

``build --tasks NAME`` copies each source split, cut to the profile's size, to
``NAME/data/<split>`` (``data.importer.build_imported_data``) and then runs the same stages as for a
built-in task. An imported task has no procedural generator: ``generate`` raises
:class:`NoGenerator`.

Label distance of a ``folder`` task: every label column c is standardised with the training
split's mean and standard deviation, z_c = (y_c − mean_c) / std_c (std 0 counts as 1), and

    euclidean  d(a, b) = ‖z_a − z_b‖₂
    l1         d(a, b) = Σ_c |z_ac − z_bc|
    cosine     d(a, b) = 1 − ⟨z_a, z_b⟩ / (‖z_a‖ ‖z_b‖), in [0, 2]; 0 for equal labels, 1 when a
               label sits exactly at the mean (its direction is undefined)

``mpii`` / ``lsun`` / ``coco`` tasks use the pose / layout / caption task's label distance.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from dml_core.core.store import MANIFEST, ArtifactStore, CorruptArtifact, MissingArtifact
from dml_core.data.tasks.base import DEFAULT_IMAGE_SIZE, Task, TaskData

#: Artifact names inside an imported task's folder.
DESCRIPTOR = "task"
SOURCE = "source"
KIND = "imported"
FORMATS = ("folder", "mpii", "lsun", "coco")
#: The built-in task whose loader, label distance and drawing a real-data format uses.
FORMAT_BASE = {"mpii": "pose", "lsun": "layout", "coco": "caption"}
DISTANCES = ("euclidean", "cosine", "l1")
#: A name is a folder, a widget key and a CLI word: lower-case, starting with a letter.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,39}")


class NoGenerator(ValueError):
    """An imported task has stored images only; there is nothing to generate."""


def validate_name(name: str) -> str:
    """``name`` if it can name an imported task, else ValueError (one line)."""
    from dml_core.data.tasks import TASK_NAMES

    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"task name {name!r} is not usable: use 1-40 lower-case letters, digits, '_' or '-', "
                         "starting with a letter")
    if name in TASK_NAMES:
        raise ValueError(f"task name {name!r} clashes with the built-in task {name!r}; choose another name")
    return name


def _root(home) -> Path:
    return ArtifactStore(home).root


def is_imported_folder(root: Path, name: str) -> bool:
    """Whether ``root/name`` holds an imported task's descriptor (cheap: one stat)."""
    return bool(NAME_PATTERN.fullmatch(name)) and (root / name / DESCRIPTOR / MANIFEST).is_file()


def imported_task_names(home=None) -> tuple[str, ...]:
    """Names of the tasks imported into ``home`` (default ``DML_HOME``), sorted."""
    from dml_core.data.tasks import TASK_NAMES

    root = _root(home)
    try:
        children = sorted(os.listdir(root))
    except OSError:
        return ()
    return tuple(name for name in children if name not in TASK_NAMES and is_imported_folder(root, name))


#: (root, name) -> (descriptor manifest mtime, task): the app resolves tasks on every rerun.
_LOADED: dict[tuple[str, str], tuple[int, "ImportedTask"]] = {}


def load_imported_task(name: str, home=None) -> "ImportedTask":
    """The imported task ``name`` of ``home``; LookupError when there is none by that name,
    CorruptArtifact when its descriptor is damaged."""
    store = ArtifactStore(home)
    if not NAME_PATTERN.fullmatch(str(name)):
        raise LookupError(name)
    path = store.path(name, DESCRIPTOR, MANIFEST)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        raise LookupError(name) from None
    cached = _LOADED.get((str(store.root), name))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        meta = store.manifest(name, DESCRIPTOR)["meta"]
    except MissingArtifact:
        raise LookupError(name) from None
    if not isinstance(meta, dict) or meta.get("kind") != KIND or meta.get("format") not in FORMATS:
        raise CorruptArtifact(f"artifact {name}/{DESCRIPTOR}: not an imported task's descriptor")
    task = ImportedTask(name, meta)
    _LOADED[(str(store.root), name)] = (stamp, task)
    return task


def standardised_distance(labels_a, labels_b, mean, scale, kind: str) -> np.ndarray:
    """The folder task's label distance (module docstring), float32 (len(a), len(b))."""
    from scipy.spatial.distance import cdist

    za = (np.atleast_2d(np.asarray(labels_a, dtype=np.float64)) - mean) / scale
    zb = (np.atleast_2d(np.asarray(labels_b, dtype=np.float64)) - mean) / scale
    if kind == "euclidean":
        distance = cdist(za, zb, "euclidean")
    elif kind == "l1":
        distance = cdist(za, zb, "cityblock")
    elif kind == "cosine":
        na, nb = np.linalg.norm(za, axis=1), np.linalg.norm(zb, axis=1)
        ua = np.divide(za, na[:, None], out=np.zeros_like(za), where=na[:, None] > 0)
        ub = np.divide(zb, nb[:, None], out=np.zeros_like(zb), where=nb[:, None] > 0)
        distance = np.clip(1.0 - ua @ ub.T, 0.0, 2.0)
        distance[cdist(za, zb, "sqeuclidean") == 0] = 0.0
    else:
        raise ValueError(f"unknown label distance {kind!r}; choose from {', '.join(DISTANCES)}")
    return distance.astype(np.float32)


class ImportedTask(Task):
    """A data set imported with ``python -m dml_core import``: stored images, no generator."""

    has_generator = False

    def __init__(self, name: str, descriptor: dict):
        self.name = name
        self.descriptor = descriptor
        self.format = descriptor["format"]
        self.title = descriptor.get("title") or name
        self.description = descriptor.get("description", "")
        self.attributes = tuple(descriptor.get("attributes", ()))
        self.label_drawn_on_image = self.format != "folder"
        self.has_captions = self.format == "coco"
        if self.format == "folder":
            self.label_columns = tuple(descriptor["label_columns"])
            self.distance = descriptor["distance"]
            self._mean = np.asarray(descriptor["label_mean"], dtype=np.float64)
            self._scale = np.asarray(descriptor["label_scale"], dtype=np.float64)
        else:
            from dml_core.data.tasks import get_task

            self.base = get_task(FORMAT_BASE[self.format])

    def generate(self, n: int, seed: int, size: int = DEFAULT_IMAGE_SIZE) -> TaskData:
        raise NoGenerator(f"{self.name} is an imported data set ({self.format}): it has no procedural generator, "
                          "only the images stored by the import")

    def label_distance(self, labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
        if self.format == "folder":
            return standardised_distance(labels_a, labels_b, self._mean, self._scale, self.distance)
        return self.base.label_distance(labels_a, labels_b)

    def label_text(self, label: np.ndarray) -> str:
        """A folder task's label as text: ``radius 12.5 · hue 0.31``."""
        return " · ".join(f"{column} {float(value):.4g}" for column, value in zip(self.label_columns, label))

    def draw_label(self, image: Image.Image, label: np.ndarray, meta: dict | None = None, width: int = 256) -> Image.Image:
        """Real-data formats draw as their built-in task does (skeleton, layout edges, caption);
        a folder task's label is numbers, so they are written in a band under the image."""
        if self.format != "folder":
            return self.base.draw_label(image, label, meta or {}, width=width)
        from dml_core.data.tasks.caption import TASK as CAPTION  # its band of wrapped text under the image

        return CAPTION.draw_label(image, None, {"captions": [self.label_text(label)]}, width=width)


def source_counts(task: ImportedTask) -> dict[str, int]:
    return {split: int(n) for split, n in task.descriptor["counts"].items()}
