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

import contextlib
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
from dml_core.pipeline.models import build_models, model_is_current
from dml_core.pipeline.plan import WAVES, build_queue
from dml_core.pipeline.profiles import Profile, get_profile
from dml_core.pipeline.status import BuildLock, BuildStatus
from dml_core.pipeline.tuning import build_tuning

#: The report of the last build run that built something, under ``DML_HOME``.
BUILD_REPORT = "build.json"
#: The build's stages, in the order each wave runs them.
STAGES = ("data", "features", "label_distances", "tuning", "models", "search")


# ----------------------------------------------------------------------------- data
def _data_splits(profile: Profile, task: str) -> list[str]:
    """The splits a task's build needs: train, gallery, query, and extra for the CNN track."""
    return [split for split in (*SPLITS, EXTRA_SPLIT) if profile.split_size(task, split) > 0]


def _stored_size(split: str, profile: Profile) -> int:
    from dml_core.learn.cnn import CNN_IMAGE_SIZE

    return CNN_IMAGE_SIZE if split == EXTRA_SPLIT else profile.image_size


def build_data(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, workers: int | None = None, pool=None) -> dict:
    """Generate the missing data splits of ``tasks`` (imported tasks: copy them from the import,
    ``data.importer.build_imported_data``) in ``pool`` (default: one of ``workers`` processes);
    returns seconds and images/s per task."""
    from dml_core.data.importer import build_imported_data

    imported = [task for task in tasks if task not in TASK_NAMES]
    timings = build_imported_data(store, profile, imported)
    tasks = [task for task in tasks if task in TASK_NAMES]
    todo = [(task, split) for task in tasks for split in _data_splits(profile, task)
            if not _split_is_current(store, task, split, profile)]
    for task in tasks:  # kept splits of a profile of the same sizes now belong to this one (models match it)
        for split in _data_splits(profile, task):
            if (task, split) not in todo and store.manifest(*split_key(task, split))["meta"].get("profile") != profile.name:
                store.update_meta(*split_key(task, split), profile=profile.name)
    if not todo:
        return timings
    workers = workers or os.cpu_count() or 1
    with contextlib.nullcontext(pool) if pool is not None else \
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
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
              workers: int | None = None, device: str = "cpu", backend=None, log: str | None = None) -> dict:
    """Run every stage for ``tasks``, wave by wave (``plan.WAVES``: the first task's headline pair
    first, with only the data, features and label distances it needs before it); returns the
    report (stage seconds summed over the waves, each wave's seconds, what each stage built),
    also written to ``DML_HOME/build.json`` when something was built.

    One build runs per ``DML_HOME`` (``status.BuildLock``; ``BuildRunning`` otherwise); its
    progress is in ``DML_HOME/build-status.json`` (``status.BuildStatus``), where the app reads it.
    workers: processes for tuning and training (default: one per core, each single-threaded;
    see ``dml_core.core.workers``). device: "cpu", "cuda" or "auto" (a GPU when torch sees one)
    for features and training; on a GPU models train one at a time in this process.
    backend: the ``dml_core.search.backends.Backend`` the galleries are searched with (default: from
    ``DML_INDEX`` / ``DML_MILVUS_URI``); its stage writes them there (nothing for FAISS flat).
    log: where this build's output goes, for the status (default: ``DML_BUILD_LOG``, which ``app`` sets).
    """
    from dml_core.core.workers import default_workers, stoppable_pool
    from dml_core.search.backends import backend_from_env
    from dml_core.search.gallery import check_backend, sync_gallery_indexes

    profile = get_profile(profile_name)
    store = store or ArtifactStore()
    device = resolve_device(device)
    workers = workers or default_workers()
    store.root.mkdir(parents=True, exist_ok=True)
    backend = backend or backend_from_env()
    check_backend(backend, store)  # before hours of training, not after
    with BuildLock(store.root):
        store.sweep()  # under the lock: another build's temp files are never swept
        queue = build_queue(profile, tasks)
        done = [(e.task, e.spec.id) for e in queue if model_is_current(store, e.task, e.spec, profile)]
        status = BuildStatus(store.root, profile.name, queue, done, workers, WAVES, log or os.environ.get("DML_BUILD_LOG"))
        try:
            # One pool of single-threaded workers for every wave: a worker's start (torch, UMAP's
            # compiled code, the task's features) costs seconds, paid once instead of per wave.
            with stoppable_pool(workers) if device == "cpu" and workers > 1 else contextlib.nullcontext() as pool:
                report = _run_waves(store, profile, list(tasks), queue, status, progress, workers, device, pool,
                                    lambda: sync_gallery_indexes(store, tasks, backend, progress))
        except KeyboardInterrupt:
            status.finish("stopped")
            raise
        except BaseException as exc:
            status.finish("failed", f"{type(exc).__name__}: {exc}")
            raise
        report.update(workers=workers, device=device, index=backend.name)
        if any(stage["detail"] for stage in report["stages"].values()):  # keep the timings of the last run that built something
            atomic_write_json(store.root / BUILD_REPORT, report)
        status.finish("done")
    return report


def _run_waves(store, profile, tasks, queue, status, progress, workers, device, pool, search) -> dict:
    """Each wave: the data, features, label distances and tuning its tasks still need, then its
    models; the search backend's copies last."""
    stages: dict = {name: {"seconds": 0.0, "detail": {}} for name in STAGES}
    waves, start = [], time.perf_counter()

    def run(name, wave, wave_tasks, work):
        status.stage(name, wave_tasks, wave)
        stage_start = time.perf_counter()
        detail = work()
        seconds = time.perf_counter() - stage_start
        stages[name]["seconds"] = round(stages[name]["seconds"] + seconds, 2)
        if isinstance(detail, dict):  # {task: ...}; the models stage's {task: {model: s}} merge per task
            for key, value in detail.items():
                kept = stages[name]["detail"].get(key)
                stages[name]["detail"][key] = {**kept, **value} if isinstance(kept, dict) and isinstance(value, dict) else value
        elif detail:
            stages[name]["detail"] = [*(stages[name]["detail"] or []), *detail]
        if detail:
            print(f"build: {name} ({', '.join(wave_tasks)}) done in {seconds:.1f} s", flush=True)

    for wave in sorted({entry.wave for entry in queue}):
        entries = [entry for entry in queue if entry.wave == wave]
        wave_tasks = list(dict.fromkeys(entry.task for entry in entries))
        wave_start = time.perf_counter()
        run("data", wave, wave_tasks, lambda: build_data(store, profile, wave_tasks, pool=pool))
        run("features", wave, wave_tasks, lambda: build_features(store, profile, wave_tasks, device, workers, pool))
        run("label_distances", wave, wave_tasks, lambda: build_label_distances(store, profile.name, wave_tasks))
        run("tuning", wave, wave_tasks, lambda: build_tuning(store, profile, wave_tasks, progress,
                                                             workers if device == "cpu" else 1, pool))
        run("models", wave, wave_tasks, lambda: build_models(store, profile, wave_tasks, progress, workers, device,
                                                             queue=entries, on_model_done=status.model_done, pool=pool))
        waves.append({"wave": WAVES[wave], "tasks": wave_tasks, "models": len(entries),
                      "seconds": round(time.perf_counter() - wave_start, 2)})
    run("search", None, tasks, search)
    for name, stage in stages.items():
        print(f"build: {name} done in {stage['seconds']:.1f} s", flush=True)
    return {"profile": profile.name, "tasks": tasks, "stages": stages, "waves": waves,
            "build_s": round(time.perf_counter() - start, 2)}


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
