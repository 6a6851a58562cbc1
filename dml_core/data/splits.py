"""Profiles and the generated data splits (train / gallery / query) of every task.

A split is generated in fixed-size chunks, each from its own seed, so the bytes depend only
on (task, split, profile) and never on how many worker processes produced them, nor on the
order the chunks finish in (the caption task's sentence embeddings do not depend on which
sentences a process embedded before; ``core.text``).
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import numpy as np

from dml_core.core.images import downsample
from dml_core.core.store import ArtifactStore, CorruptArtifact
from dml_core.data.tasks import DEFAULT_IMAGE_SIZE, TaskData, get_task

SPLITS = ("train", "gallery", "query")
#: Extra training images for models trained end to end on images (``methods`` embedder
#: "cnn"), stored at ``learn.cnn.CNN_IMAGE_SIZE``; their training set is train + extra.
EXTRA_SPLIT = "extra"
CHUNK = 250
_SPLIT_SEED = {"train": 1, "gallery": 2, "query": 3, EXTRA_SPLIT: 4}


def _chunk_seed(split: str, chunk: int) -> int:
    return _SPLIT_SEED[split] * 100_003 + chunk


def _generate_chunk(task_name: str, split: str, chunk: int, n: int, size: int, reduce_to: int | None = None) -> TaskData:
    # One thread for any native library a generator loads in a worker. torch is not imported
    # here: only the caption task's text model needs it (2 s per worker otherwise), and that
    # runs on one thread by itself (``core.text``).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data = get_task(task_name).generate(n, seed=_chunk_seed(split, chunk), size=size)
    if reduce_to is not None:  # in the worker: less to send back and to store
        data = TaskData(downsample(data.images, reduce_to), data.labels, data.meta, data.arrays)
    return data


def concat(parts: list[TaskData]) -> TaskData:
    return TaskData(
        images=np.concatenate([p.images for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        meta={key: [v for p in parts for v in p.meta[key]] for key in parts[0].meta},
        arrays={key: np.concatenate([p.arrays[key] for p in parts]) for key in parts[0].arrays},
    )


def generate_split(
    task_name: str,
    split: str,
    n: int,
    size: int = DEFAULT_IMAGE_SIZE,
    workers: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    pool: ProcessPoolExecutor | None = None,
    reduce_to: int | None = None,
) -> TaskData:
    """Generate ``n`` images of ``split`` in chunks of ``CHUNK``, in parallel processes;
    ``reduce_to``: store them box-downsampled to that size (``core.images.downsample``)."""
    jobs = [(task_name, split, c, min(CHUNK, n - c * CHUNK), size, reduce_to) for c in range((n + CHUNK - 1) // CHUNK)]
    workers = workers if workers is not None else min(len(jobs), os.cpu_count() or 1)
    if pool is None and workers <= 1:
        parts = []
        for job in jobs:
            parts.append(_generate_chunk(*job))
            if on_chunk:
                on_chunk(job[3])
        return concat(parts)
    own_pool = pool is None
    if own_pool:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(_generate_chunk, *job) for job in jobs]
        parts = []
        for future, job in zip(futures, jobs):
            parts.append(future.result())
            if on_chunk:
                on_chunk(job[3])
        return concat(parts)
    finally:
        if own_pool:
            pool.shutdown()


def split_key(task_name: str, split: str, kind: str = "data") -> tuple[str, ...]:
    """Where a split is stored; ``kind="source"`` holds an imported task's full splits."""
    return (task_name, kind, split)


#: File-name prefix of a split's ``TaskData.arrays`` in the store.
ARRAY_PREFIX = "array-"


def save_split(store: ArtifactStore, task_name: str, split: str, data: TaskData, meta: dict, kind: str = "data") -> None:
    with store.writer(*split_key(task_name, split, kind), meta=meta) as tmp:
        np.save(tmp / "images.npy", data.images, allow_pickle=False)
        np.save(tmp / "labels.npy", data.labels, allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps(data.meta))
        for name, array in data.arrays.items():
            np.save(tmp / f"{ARRAY_PREFIX}{name}.npy", array, allow_pickle=False)


def load_split(store: ArtifactStore, task_name: str, split: str, mmap: bool = True, kind: str = "data") -> TaskData:
    """A stored split; images are memory-mapped unless ``mmap=False``."""
    key = split_key(task_name, split, kind)
    files = store.verify(*key).get("files", {})
    meta = store.load_json(*key, name="meta.json")
    if not isinstance(meta, dict):
        raise CorruptArtifact(f"artifact {'/'.join(key)}: meta.json is not an object")
    arrays = {name.removeprefix(ARRAY_PREFIX).removesuffix(".npy"): store.load_array(*key, name=name, mmap=mmap)
              for name in files if name.startswith(ARRAY_PREFIX) and name.endswith(".npy")}
    return TaskData(
        images=store.load_array(*key, name="images.npy", mmap=mmap),
        labels=store.load_array(*key, name="labels.npy"),
        meta=meta,
        arrays=arrays,
    )
