"""``python -m dml_core build``: data → features → models → indexes → projections.

Each stage writes artifacts through the store and skips what is already valid, so a rerun
with nothing to do takes seconds and a killed run resumes where it stopped (training resumes
from its last checkpoint under ``<task>/runs``).

Artifacts per task::

    <task>/data/{train,gallery,query}/     images.npy labels.npy meta.json, array-<name>.npy
                                           (caption: the per-caption sentence embeddings)
    <task>/features/                       backbone feature cache (dml_core.features.cache)
    <task>/label_dist/                     query × gallery label distances
    <task>/tuning/                         validation nDCG@10 of every tuning-grid setting and
                                           the setting each method then trains with
    <task>/models/<model_id>/              head weights, gallery/query embeddings, FAISS index,
                                           UMAP projection, metrics.json
    <task>/search/<backend>/<model_id>/    FAISS HNSW / IVF-PQ copies of a gallery (``--index``);
                                           Milvus copies live in Milvus (``dml_core.search``)
"""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from tqdm.auto import tqdm

from dml_core.core.store import ArtifactStore, atomic_write_json
from dml_core.data.label_distances import build_label_distances
from dml_core.data.splits import EXTRA_SPLIT, SPLITS, generate_split, save_split, split_key
from dml_core.data.tasks import TASK_NAMES
from dml_core.pipeline.features import build_features
from dml_core.pipeline.models import build_models
from dml_core.pipeline.profiles import Profile, get_profile
from dml_core.pipeline.tuning import build_tuning

#: The report of the last build run that built something, under ``DML_HOME``.
BUILD_REPORT = "build.json"


# ----------------------------------------------------------------------------- data
def _data_splits(profile: Profile, task: str) -> list[str]:
    """The splits a task's build needs: train, gallery, query, and extra for the CNN track."""
    return [split for split in (*SPLITS, EXTRA_SPLIT) if profile.split_size(task, split) > 0]


def _stored_size(split: str, profile: Profile) -> int:
    from dml_core.learn.cnn import CNN_IMAGE_SIZE

    return CNN_IMAGE_SIZE if split == EXTRA_SPLIT else profile.image_size


def build_data(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, workers: int | None = None) -> dict:
    """Generate the missing data splits of ``tasks`` (imported tasks: copy them from the import,
    ``data.importer.build_imported_data``); returns seconds and images/s per task."""
    from dml_core.data.importer import build_imported_data

    imported = [task for task in tasks if task not in TASK_NAMES]
    timings = build_imported_data(store, profile, imported)
    tasks = [task for task in tasks if task in TASK_NAMES]
    todo = [(task, split) for task in tasks for split in _data_splits(profile, task)
            if not _split_is_current(store, task, split, profile)]
    if not todo:
        return timings
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for task in tasks:
            splits = [s for t, s in todo if t == task]
            if not splits:
                continue
            total = sum(profile.split_size(task, s) for s in splits)
            start = time.perf_counter()
            with tqdm(total=total, desc=f"data {task}", unit="img") as bar:
                for split in splits:
                    n, size = profile.split_size(task, split), _stored_size(split, profile)
                    data = generate_split(task, split, n, profile.image_size, on_chunk=bar.update, pool=pool,
                                          reduce_to=size if size != profile.image_size else None)
                    save_split(store, task, split, data, meta={"profile": profile.name, "n": len(data), "size": size})
            seconds = time.perf_counter() - start
            timings[task] = {"seconds": round(seconds, 2), "images_per_s": round(total / seconds, 1)}
    return timings


def _split_is_current(store: ArtifactStore, task: str, split: str, profile: Profile) -> bool:
    if not store.is_valid(*split_key(task, split)):
        return False
    meta = store.manifest(*split_key(task, split))["meta"]
    return meta.get("n") == profile.split_size(task, split) and meta.get("size") == _stored_size(split, profile)


# ---------------------------------------------------------------------------- build
def run_build(profile_name: str = "quick", tasks=TASK_NAMES, store: ArtifactStore | None = None, progress: bool = True,
              workers: int | None = None, device: str = "cpu", backend=None) -> dict:
    """Run every stage for ``tasks``; returns the report (stage seconds and what each built),
    also written to ``DML_HOME/build.json`` when something was built.

    workers: processes for tuning and training (default: one per core, each single-threaded;
    see ``dml_core.core.workers``). device: "cpu", "cuda" or "auto" (a GPU when torch sees one)
    for features and training; on a GPU models train one at a time in this process.
    backend: the ``dml_core.search.backends.Backend`` the galleries are searched with (default: from
    ``DML_INDEX`` / ``DML_MILVUS_URI``); its stage writes them there (nothing for FAISS flat).
    """
    from dml_core.core.workers import default_workers
    from dml_core.search.backends import backend_from_env
    from dml_core.search.gallery import check_backend, sync_gallery_indexes

    profile = get_profile(profile_name)
    store = store or ArtifactStore()
    device = resolve_device(device)
    workers = workers or default_workers()
    store.root.mkdir(parents=True, exist_ok=True)
    backend = backend or backend_from_env()
    check_backend(backend, store)  # before hours of training, not after
    store.sweep()
    stages = {}
    start = time.perf_counter()
    for name, stage in [
        ("data", lambda: build_data(store, profile, tasks)),
        ("features", lambda: build_features(store, profile, tasks, device=device, workers=workers)),
        ("label_distances", lambda: build_label_distances(store, profile.name, tasks)),
        ("tuning", lambda: build_tuning(store, profile, tasks, progress, workers if device == "cpu" else 1)),
        ("models", lambda: build_models(store, profile, tasks, progress, workers, device)),
        ("search", lambda: sync_gallery_indexes(store, tasks, backend, progress)),
    ]:
        stage_start = time.perf_counter()
        detail = stage()
        stages[name] = {"seconds": round(time.perf_counter() - stage_start, 2), "detail": detail}
        print(f"build: {name} done in {stages[name]['seconds']:.1f} s", flush=True)
    report = {"profile": profile.name, "tasks": list(tasks), "stages": stages, "build_s": round(time.perf_counter() - start, 2),
              "workers": workers, "device": device, "index": backend.name}
    if any(stage["detail"] for stage in stages.values()):  # keep the timings of the last run that built something
        atomic_write_json(store.root / BUILD_REPORT, report)
    return report


def resolve_device(name: str = "auto") -> str:
    """"cpu" or "cuda" for a --device choice; "auto" picks the GPU when torch sees one."""
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if name == "cuda":
        raise ValueError("--device cuda: torch sees no CUDA GPU on this machine")
    return "cpu"
