"""``python -m dml_core build``: data → features → models → indexes → projections.

Each stage writes artifacts through the store and skips what is already valid, so a rerun
with nothing to do takes seconds and a killed run resumes where it stopped.
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from tqdm.auto import tqdm

from .data import SPLITS, generate_split, get_profile, save_split, split_key
from .store import ArtifactStore
from .tasks import TASK_NAMES


def build_data(store: ArtifactStore, profile_name: str, tasks=TASK_NAMES, workers: int | None = None) -> dict:
    """Generate the missing data splits of ``tasks``; returns seconds and images/s per task."""
    profile = get_profile(profile_name)
    timings = {}
    todo = [
        (task, split)
        for task in tasks
        for split in SPLITS
        if not _split_is_current(store, task, split, profile)
    ]
    if not todo:
        return timings
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for task in tasks:
            splits = [s for t, s in todo if t == task]
            if not splits:
                continue
            total = sum(profile.sizes[s] for s in splits)
            start = time.perf_counter()
            with tqdm(total=total, desc=f"data {task}", unit="img") as bar:
                for split in splits:
                    data = generate_split(task, split, profile.sizes[split], profile.image_size, on_chunk=bar.update, pool=pool)
                    save_split(store, task, split, data, meta={"profile": profile.name, "n": len(data), "size": profile.image_size})
            seconds = time.perf_counter() - start
            timings[task] = {"seconds": round(seconds, 2), "images_per_s": round(total / seconds, 1)}
    return timings


def _split_is_current(store: ArtifactStore, task: str, split: str, profile) -> bool:
    if not store.is_valid(*split_key(task, split)):
        return False
    meta = store.manifest(*split_key(task, split))["meta"]
    return meta.get("n") == profile.sizes[split] and meta.get("size") == profile.image_size


def run_build(profile_name: str = "quick", tasks=TASK_NAMES, store: ArtifactStore | None = None) -> dict:
    store = store or ArtifactStore()
    store.root.mkdir(parents=True, exist_ok=True)
    store.sweep()
    report = {"profile": profile_name, "stages": {}}
    start = time.perf_counter()
    report["stages"]["data"] = build_data(store, profile_name, tasks)
    report["build_s"] = round(time.perf_counter() - start, 2)
    return report
