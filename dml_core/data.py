"""Profiles and the generated data splits (train / gallery / query) of every task.

A split is generated in fixed-size chunks, each from its own seed, so the bytes depend only
on (task, split, profile) and never on how many worker processes produced them.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .store import ArtifactStore, CorruptArtifact
from .tasks import DEFAULT_IMAGE_SIZE, TaskData, get_task

SPLITS = ("train", "gallery", "query")
#: Extra training images for models trained end to end on images (``methods`` embedder
#: "cnn"), stored at ``cnn.CNN_IMAGE_SIZE``; their training set is train + extra.
EXTRA_SPLIT = "extra"
CHUNK = 250
_SPLIT_SEED = {"train": 1, "gallery": 2, "query": 3, EXTRA_SPLIT: 4}


@dataclass(frozen=True)
class Profile:
    """How much to build. Every method gets the same features, steps and budget."""

    name: str
    sizes: dict  # split -> number of images
    seeds: tuple[int, ...]  # training seeds (the benchmark reports the spread over them)
    steps: int  # optimiser steps per trained model, identical for every method
    image_size: int = DEFAULT_IMAGE_SIZE
    dim: int = 128
    #: The dimension ablation: ``ABLATION_METHODS`` also train at these widths, first seed only;
    #: all seeds cost the full build 12 more heads, ~2 minutes.
    ablation_dims: tuple[int, ...] = (16, 32, 64)
    #: Run every compared method's tuning grid on a validation split carved from the training
    #: split before training (build's "tuning" stage); otherwise the methods' defaults are used.
    tune: bool = False
    #: The end-to-end track: on these tasks, ``CNN_METHODS`` train a compact CNN on
    #: ``cnn_train`` images (the train split plus generated extra ones) for ``cnn_steps`` steps,
    #: at ``dim`` for ``cnn_seeds``.
    cnn_tasks: tuple[str, ...] = ()
    cnn_train: int = 0
    cnn_steps: int = 1500
    cnn_seeds: tuple[int, ...] = (0,)

    def split_size(self, task: str, split: str) -> int:
        if split == EXTRA_SPLIT:
            return max(0, self.cnn_train - self.sizes["train"]) if task in self.cnn_tasks else 0
        return self.sizes[split]


PROFILES = {
    # "tiny" exists for tests and smoke runs: every stage, in seconds.
    "tiny": Profile("tiny", {"train": 160, "gallery": 60, "query": 12}, seeds=(0,), steps=20, ablation_dims=(16,)),
    "quick": Profile("quick", {"train": 1500, "gallery": 500, "query": 100}, seeds=(0,), steps=200),
    # The end-to-end track runs on layout only: on pose the compact CNN scored below the frozen
    # head at 9x its cost (BENCHMARKS.md, "Ceiling", embedder rows), so it bought nothing there.
    # Nor does it train at d=16: it scored there what it scores at d=128 (0.976 against 0.975),
    # and those two trainings cost ~4 minutes of a full build that ran 1 minute past its target.
    "full": Profile("full", {"train": 10000, "gallery": 2000, "query": 500}, seeds=(0, 1, 2), steps=600, tune=True,
                    ablation_dims=(16,), cnn_tasks=("layout",), cnn_train=30000, cnn_steps=1500,
                    cnn_seeds=(0, 1)),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def _chunk_seed(split: str, chunk: int) -> int:
    return _SPLIT_SEED[split] * 100_003 + chunk


def _generate_chunk(task_name: str, split: str, chunk: int, n: int, size: int, reduce_to: int | None = None) -> TaskData:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    data = get_task(task_name).generate(n, seed=_chunk_seed(split, chunk), size=size)
    if reduce_to is not None:  # in the worker: less to send back and to store
        from .cnn import downsample

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
    ``reduce_to``: store them box-downsampled to that size (``cnn.downsample``)."""
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
