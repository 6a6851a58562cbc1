"""The models stage: train (or resume) each planned model, then store it with embeddings, index, map and metrics."""
from __future__ import annotations

import json
import shutil
import time
import warnings

import numpy as np
from tqdm.auto import tqdm

from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import BASELINE
from dml_core.data.label_distances import query_gallery_label_distance
from dml_core.data.tasks import TASK_NAMES, get_task
from dml_core.features.backbone import TRAIN_MODE, pooled_from_spatial
from dml_core.features.factory import DEFAULT_BACKBONE
from dml_core.pipeline.features import TaskFeatures, forget_loaded, worker_task_features
from dml_core.pipeline.plan import (
    CROSS_MODAL,
    ModelSpec,
    embedder,
    feature_mode,
    model_plan,
    planned_steps,
    relative_cost,
    trained_config,
)
from dml_core.pipeline.profiles import Profile
from dml_core.pipeline.tuning import tuned_settings

#: Seconds of training between two checkpoints of a model in the build or the lab. By time, not
#: steps: a head's 600 steps take ~20 s on one core, and a checkpoint of its 5,120-d input
#: layer (weights and Adam moments, checksummed) ~0.4 s; an interruption loses at most this.
CHECKPOINT_EVERY_S = 60.0


def train_model(
    data: TaskFeatures, spec: ModelSpec, profile: Profile, steps: int | None = None, origin: str = "build",
    progress: bool = True, on_step=None, device: str = "cpu", **method_overrides,
) -> str:
    """Train (or resume) ``spec`` on cached features (the top blocks on cached activations, the CNN
    embedder on images), then
    store it with embeddings, index, projection and metrics; returns the model id.
    ``on_step(step, loss)`` returning False stops training early (the model is then stored as
    trained so far). Without ``method_overrides`` the method trains with the setting the tuning
    stage chose (``tuned_settings``)."""
    from dml_core.learn.checkpoints import CheckpointError, Checkpointing
    from dml_core.learn.model import embed
    from dml_core.learn.train import fit

    store, task = data.store, data.task
    steps = steps or planned_steps(spec, task, profile)
    method_overrides = method_overrides or tuned_settings(store, task, profile, spec.method)
    if spec.method == BASELINE:
        gallery, query = (pooled_from_spatial(data.features[s]) for s in ("gallery", "query"))
        save_model(store, task, spec, profile, gallery, query, None, "cosine", steps=0, origin=origin)
        return spec.id
    run_dir = store.path(task, "runs", spec.id)
    cross_modal, mode = spec.method == CROSS_MODAL, feature_mode(spec.method, method_overrides)
    if mode.startswith("images"):
        (inputs, labels), neighbours = data.cnn_train, data.cnn_neighbours
        gallery_inputs, query_inputs = data.cnn_images("gallery"), data.cnn_images("query")
    elif mode != TRAIN_MODE:  # the top blocks train on the activations below them
        inputs, labels, neighbours = data.activations(mode, "train"), data.train.labels, data.neighbours
        gallery_inputs, query_inputs = data.activations(mode, "gallery"), data.activations(mode, "query")
    else:
        inputs, labels, neighbours = data.features["train"], data.train.labels, None if cross_modal else data.neighbours
        gallery_inputs, query_inputs = data.features["gallery"], data.features["query"]

    def train(resume: bool):
        return fit(
            inputs, labels, get_task(task).label_distance, method=spec.method,
            dim=spec.dim, steps=steps, seed=spec.seed,
            checkpoint=Checkpointing(run_dir, every_s=CHECKPOINT_EVERY_S, resume=resume),
            neighbours=neighbours, text_inputs=data.caption_embeddings() if cross_modal else None,
            progress=progress, on_step=on_step, device=device, **method_overrides,
        )

    try:
        model, history = train(resume=True)
    except CheckpointError as exc:  # a damaged or foreign checkpoint is never loaded: start afresh
        warnings.warn(f"{task}/{spec.id}: {exc}; training from scratch", stacklevel=2)
        shutil.rmtree(run_dir, ignore_errors=True)
        model, history = train(resume=False)
    from dml_core.learn.distributed import is_main_process

    if not is_main_process():  # under torchrun rank 0 alone stores the (identical) model
        return spec.id
    metric = "cosine" if model.normalize else "l2"
    save_model(
        store, task, spec, profile, embed(model, gallery_inputs), embed(model, query_inputs),
        run_dir, metric, steps=steps, origin=origin, loss=history["loss"], settings=method_overrides,
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return spec.id


def _model_job(root: str, task: str, spec: ModelSpec, profile: Profile, device: str) -> tuple[str, float]:
    start = time.perf_counter()
    train_model(worker_task_features(root, task), spec, profile, progress=False, device=device)
    return spec.id, round(time.perf_counter() - start, 2)


def build_models(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, progress: bool = True,
                 workers: int = 1, device: str = "cpu", queue=None, on_model_done=None, pool=None) -> dict:
    """Train, embed, index and project every model of the plan that is not already stored, in
    ``workers`` single-threaded processes (the slowest models first, so the pool ends together).
    queue: the ``plan.QueuedModel`` entries to build instead of ``tasks``' whole plan (one wave);
    on_model_done(task, model_id, seconds) is called as each model lands; pool: the build's
    shared workers (CPU only)."""
    from dml_core.core.workers import run_jobs

    planned = [(entry.task, entry.spec) for entry in queue] if queue is not None else \
        [(task, spec) for task in tasks for spec in model_plan(profile, task)]
    jobs = [(str(store.root), task, spec, profile, device) for task, spec in planned
            if not model_is_current(store, task, spec, profile)]
    if not jobs:
        return {}
    jobs.sort(key=lambda job: -relative_cost(job[2], job[1], profile))
    # Once, here, before the workers need them (the top blocks' activations come from the features stage).
    for task in dict.fromkeys(job[1] for job in jobs if embedder(job[1], job[2].method, profile) == "cnn"):
        TaskFeatures(store, task, progress).cnn_neighbours
    timings: dict = {}
    with tqdm(total=len(jobs), desc="models", unit="model", disable=not progress) as bar:
        def done(job, result):
            timings.setdefault(job[1], {})[result[0]] = result[1]
            bar.set_postfix_str(f"{job[1]}/{result[0]} {result[1]:.0f} s", refresh=False)
            bar.update(1)
            if on_model_done is not None:
                on_model_done(job[1], result[0], result[1])

        try:
            run_jobs(_model_job, jobs, 1 if device != "cpu" else workers, on_done=done,
                     pool=pool if device == "cpu" else None)
        finally:
            forget_loaded()
    return {task: timings[task] for task in dict.fromkeys(job[1] for job in jobs) if task in timings}


def model_is_current(store: ArtifactStore, task: str, spec: ModelSpec, profile: Profile) -> bool:
    key = (task, "models", spec.id)
    if not store.is_valid(*key, full=True):  # a model's files are small: checksum them all
        return False
    meta = store.manifest(*key)["meta"]
    settings = tuned_settings(store, task, profile, spec.method)
    return (meta.get("profile") == profile.name and meta.get("steps") == planned_steps(spec, task, profile)
            and meta.get("feature_mode") == feature_mode(spec.method, settings) and meta.get("settings", {}) == settings
            and meta.get("config") == trained_config(spec.method, settings))


def save_model(
    store, task, spec: ModelSpec, profile: Profile, gallery: np.ndarray, query: np.ndarray, run_dir, metric: str,
    steps: int, origin: str, loss: list[float] | None = None, settings: dict | None = None,
) -> None:
    from dml_core.evaluate.metrics import evaluate
    from dml_core.search.faiss_index import build_index, save_index

    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    query = np.ascontiguousarray(query, dtype=np.float32)
    result = evaluate(query, gallery, query_gallery_label_distance(store, task), metric=metric)
    summary = {k: float(v) for k, v in result.items() if "@" in k or k == "spearman"}
    meta = {
        "task": task, "model_id": spec.id, "method": spec.method, "dim": int(gallery.shape[1]), "seed": spec.seed,
        "metric": metric, "backbone": DEFAULT_BACKBONE, "feature_mode": feature_mode(spec.method, settings),
        "profile": profile.name, "steps": steps, "origin": origin, "settings": settings or {}, "metrics": summary,
        "config": trained_config(spec.method, settings or {}),
    }
    with store.writer(task, "models", spec.id, meta=meta) as tmp:
        if run_dir is not None:
            config = json.loads((run_dir / "config.json").read_text())
            shutil.copy(run_dir / config["files"]["model"]["name"], tmp / config["files"]["model"]["name"])
            config["files"] = {"model": config["files"]["model"]}
            (tmp / "config.json").write_text(json.dumps(config))
        np.save(tmp / "gallery.npy", gallery)
        np.save(tmp / "query.npy", query)
        np.save(tmp / "per_query_ndcg10.npy", np.asarray(result["per_query"]["ndcg@10"], dtype=np.float32))
        if loss is not None:
            np.save(tmp / "loss.npy", np.asarray(loss, dtype=np.float32))
        save_index(build_index(gallery, metric=metric), tmp / "index.faiss")
        if spec.projected:
            from dml_core.search.projection import fit_projection, save_projection

            save_projection(fit_projection(gallery, metric=metric, seed=0), tmp / "projection.npz")
