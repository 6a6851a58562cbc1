"""``python -m dml_core build``: data → features → models → indexes → projections.

Each stage writes artifacts through the store and skips what is already valid, so a rerun
with nothing to do takes seconds and a killed run resumes where it stopped (training resumes
from its last checkpoint under ``<task>/runs``).

Artifacts per task::

    <task>/data/{train,gallery,query}/     images.npy labels.npy meta.json
    <task>/features/                       backbone feature cache (dml_core.embedders.features)
    <task>/label_dist/                     query × gallery label distances
    <task>/tuning/                         validation nDCG@10 of every tuning-grid setting and
                                           the setting each method then trains with
    <task>/models/<model_id>/              head weights, gallery/query embeddings, FAISS index,
                                           UMAP projection, metrics.json
"""
from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .data import SPLITS, Profile, generate_split, get_profile, load_split, save_split, split_key
from .store import ArtifactStore, atomic_write_json
from .tasks import TASK_NAMES, get_task

BACKBONE = "efficientnet_lite0"
#: Features the heads train on: the 2x2-pooled last feature map keeps coarse spatial layout,
#: which pose and room layout need (DESIGN.md §3); the ImageNet baseline uses its global mean.
TRAIN_MODE = "spatial2x2"
BASELINE = "imagenet"
METHODS_AT_FULL_DIM = ("contrastive", "binary_triplet", "dense_triplet", "log_ratio")
ABLATION_METHODS = ("binary_triplet", "log_ratio")
#: Image and caption embeddings in one space: what answers text queries on the caption task.
CROSS_MODAL = "cross_modal"


@dataclass(frozen=True)
class ModelSpec:
    method: str
    dim: int | None = None
    seed: int = 0
    prefix: str = ""  # "lab-" for models trained in the Training lab, so they never clash with the build's

    @property
    def id(self) -> str:
        return self.method if self.method == BASELINE else f"{self.prefix}{self.method}-d{self.dim}-s{self.seed}"

    @property
    def projected(self) -> bool:
        """UMAP projections are made for the main models (full dimension, first seed)."""
        return self.method == BASELINE or (self.dim == 128 and self.seed == 0)


def model_plan(profile: Profile, task: str | None = None) -> list[ModelSpec]:
    plan = [ModelSpec(BASELINE)]
    for seed in profile.seeds:
        plan += [ModelSpec(m, profile.dim, seed) for m in METHODS_AT_FULL_DIM]
        plan += [ModelSpec(m, d, seed) for m in ABLATION_METHODS for d in profile.ablation_dims]
    if task == "caption":
        plan.append(ModelSpec(CROSS_MODAL, profile.dim, profile.seeds[0]))
    return plan


# ----------------------------------------------------------------------------- data
def build_data(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, workers: int | None = None) -> dict:
    """Generate the missing data splits of ``tasks``; returns seconds and images/s per task."""
    timings = {}
    todo = [(task, split) for task in tasks for split in SPLITS if not _split_is_current(store, task, split, profile)]
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


def stored_profile(store: ArtifactStore, task: str) -> Profile:
    """The profile the task's stored data was built with."""
    return get_profile(store.manifest(*split_key(task, "gallery"))["meta"]["profile"])


def _split_is_current(store: ArtifactStore, task: str, split: str, profile: Profile) -> bool:
    if not store.is_valid(*split_key(task, split)):
        return False
    meta = store.manifest(*split_key(task, split))["meta"]
    return meta.get("n") == profile.sizes[split] and meta.get("size") == profile.image_size


# ------------------------------------------------------------------------- features
_BACKBONES: dict = {}


def shared_backbone(name: str = BACKBONE):
    """One frozen backbone per process (it holds no per-request state)."""
    if name not in _BACKBONES:
        from .embedders import create_backbone

        _BACKBONES[name] = create_backbone(name)
    return _BACKBONES[name]


def split_features(store: ArtifactStore, task: str, split: str, mode: str = TRAIN_MODE, progress: bool = True) -> np.ndarray:
    """Backbone features of a stored split, from the feature cache when present."""
    from .embedders.features import extract_features

    images = load_split(store, task, split).images
    return extract_features(shared_backbone(), images, mode=mode, cache_dir=store.path(task, "features"), progress=progress)


def pooled_from_spatial(features: np.ndarray) -> np.ndarray:
    """Global-average features from 2x2 ones (channel-major (C, 2, 2)): the quadrants' mean."""
    return features.reshape(len(features), -1, 4).mean(axis=2)


def build_features(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES) -> dict:
    """Fill the feature cache; returns seconds and images/s for the tasks that needed the backbone.

    A small ``<task>/features_done`` marker records that the cache holds this profile's
    features, so a rerun does not even hash the images again.
    """
    timings = {}
    for task in tasks:
        key = (task, "features_done")
        marker = {"profile": profile.name, "backbone": BACKBONE, "mode": TRAIN_MODE}
        if store.is_valid(*key) and store.manifest(*key)["meta"] == marker:
            continue
        start = time.perf_counter()
        n = sum(len(split_features(store, task, split)) for split in SPLITS)
        seconds = time.perf_counter() - start
        timings[task] = {"seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1)}
        with store.writer(*key, meta=marker):
            pass
    return timings


# ------------------------------------------------------------------- label distances
def build_label_distances(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES) -> list[str]:
    built = []
    for task in tasks:
        key = (task, "label_dist")
        if store.is_valid(*key, full=True) and store.manifest(*key)["meta"].get("profile") == profile.name:
            continue
        query, gallery = load_split(store, task, "query"), load_split(store, task, "gallery")
        matrix = get_task(task).label_distance(query.labels, gallery.labels).astype(np.float32)
        with store.writer(*key, meta={"shape": list(matrix.shape), "profile": profile.name}) as tmp:
            np.save(tmp / "query_gallery.npy", matrix)
        built.append(task)
    return built


def query_gallery_label_distance(store: ArtifactStore, task: str) -> np.ndarray:
    return store.load_array(task, "label_dist", name="query_gallery.npy")


# --------------------------------------------------------------------------- models
class TaskFeatures:
    """A task's stored splits and cached backbone features, loaded once for many models."""

    def __init__(self, store: ArtifactStore, task: str, progress: bool = True):
        self.store, self.task = store, task
        self.train = load_split(store, task, "train")
        self.features = {split: split_features(store, task, split, progress=progress) for split in SPLITS}
        self._neighbours = None

    @property
    def neighbours(self):
        """Label-space neighbours of the training split (k_pos = 30), shared by every method."""
        if self._neighbours is None:
            from .mining import LabelNeighbours

            self._neighbours = LabelNeighbours(self.train.labels, get_task(self.task).label_distance, k=30)
        return self._neighbours

    def caption_embeddings(self) -> np.ndarray:
        """(N, captions, D) sentence embeddings of the training captions, cached in the store."""
        key = (self.task, "text", "train")
        if not self.store.is_valid(*key):
            from .text import embed_sentences, text_backend

            captions = self.train.meta["captions"]
            per_image = len(captions[0])
            flat = embed_sentences([c for caps in captions for c in caps], progress=True)
            with self.store.writer(*key, meta={"backend": text_backend()}) as tmp:
                np.save(tmp / "captions.npy", flat.reshape(len(captions), per_image, -1))
        return self.store.load_array(*key, name="captions.npy")


# --------------------------------------------------------------------------- tuning
#: Share of the training split held out to choose each method's setting; a fifth of it
#: queries the rest.
VALIDATION_FRACTION = 0.2


def tune_task(data: "TaskFeatures", profile: Profile, progress: bool = True) -> dict:
    """Run the tuning grid of every compared method on a validation split of ``data``'s training
    split (same grid size, steps, seed and dimension for every method) and pick, per method, the
    setting with the best validation nDCG@10.

    Returns ``{method: {"chosen": index, "settings": overrides, "scores": [nDCG@10 per setting]}}``.
    The query and gallery splits are never looked at.
    """
    from .methods import TUNING_GRIDS, tuning_configs
    from .metrics import evaluate
    from .mining import LabelNeighbours
    from .train import embed, fit

    label_distance = get_task(data.task).label_distance
    features, labels = data.features["train"], data.train.labels
    n_val = int(len(features) * VALIDATION_FRACTION)
    n_fit = len(features) - n_val
    n_val_query = max(1, n_val // 5)
    fit_x, fit_y = features[:n_fit], labels[:n_fit]
    val_query, val_gallery = slice(n_fit, n_fit + n_val_query), slice(n_fit + n_val_query, None)
    val_dist = label_distance(labels[val_query], labels[val_gallery])
    neighbours = LabelNeighbours(fit_y, label_distance, k=min(30, n_fit - 1))
    result = {}
    for method in METHODS_AT_FULL_DIM:
        scores = []
        for config in tuning_configs(method):
            model, _ = fit(fit_x, fit_y, label_distance, method=config, dim=profile.dim, steps=profile.steps,
                           seed=profile.seeds[0], neighbours=neighbours, progress=progress)
            metric = "cosine" if model.normalize else "l2"
            scores.append(evaluate(embed(model, features[val_query]), embed(model, features[val_gallery]),
                                   val_dist, ks=(10,), metric=metric)["ndcg@10"])
        best = int(np.argmax(scores))
        result[method] = {"chosen": best, "settings": TUNING_GRIDS[method][best], "scores": [round(float(s), 5) for s in scores]}
    return result


def build_tuning(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, progress: bool = True) -> list[str]:
    """Tune the compared methods of every task whose profile asks for it (``Profile.tune``)."""
    built = []
    if not profile.tune:
        return built
    for task in tasks:
        key = (task, "tuning")
        if store.is_valid(*key) and _tuning_matches(store.manifest(*key)["meta"], profile):
            continue
        result = tune_task(TaskFeatures(store, task, progress), profile, progress)
        with store.writer(*key, meta={"profile": profile.name, "steps": profile.steps, "methods": result}):
            pass
        built.append(task)
    return built


def _tuning_matches(meta: dict, profile: Profile) -> bool:
    return meta.get("profile") == profile.name and meta.get("steps") == profile.steps


def tuned_settings(store: ArtifactStore, task: str, profile: Profile, method: str) -> dict:
    """The overrides ``method`` trains with on ``task``: the tuning stage's choice, or {} (the
    method's defaults) when the profile is not tuned or the method has no tuning grid."""
    key = (task, "tuning")
    if not profile.tune or method not in METHODS_AT_FULL_DIM or not store.is_valid(*key):
        return {}
    meta = store.manifest(*key)["meta"]
    return meta["methods"][method]["settings"] if _tuning_matches(meta, profile) else {}


def train_model(
    data: TaskFeatures, spec: ModelSpec, profile: Profile, steps: int | None = None, origin: str = "build",
    progress: bool = True, on_step=None, **method_overrides,
) -> str:
    """Train (or resume) ``spec`` on cached features, then store it with embeddings, index,
    projection and metrics; returns the model id. ``on_step(step, loss)`` returning False stops
    training early (the model is then stored as trained so far). Without ``method_overrides``
    the method trains with the setting the tuning stage chose (``tuned_settings``)."""
    from .train import CheckpointError, embed, fit

    store, task = data.store, data.task
    steps = steps or profile.steps
    method_overrides = method_overrides or tuned_settings(store, task, profile, spec.method)
    if spec.method == BASELINE:
        gallery, query = (pooled_from_spatial(data.features[s]) for s in ("gallery", "query"))
        save_model(store, task, spec, profile, gallery, query, None, "cosine", steps=0, origin=origin)
        return spec.id
    run_dir = store.path(task, "runs", spec.id)
    cross_modal = spec.method == CROSS_MODAL

    def train(resume: bool):
        return fit(
            data.features["train"], data.train.labels, get_task(task).label_distance, method=spec.method,
            dim=spec.dim, steps=steps, seed=spec.seed, checkpoint_dir=run_dir, resume=resume,
            neighbours=None if cross_modal else data.neighbours, text_inputs=data.caption_embeddings() if cross_modal else None,
            progress=progress, on_step=on_step, **method_overrides,
        )

    try:
        model, history = train(resume=True)
    except CheckpointError as exc:  # a damaged or foreign checkpoint is never loaded: start afresh
        warnings.warn(f"{task}/{spec.id}: {exc}; training from scratch", stacklevel=2)
        shutil.rmtree(run_dir, ignore_errors=True)
        model, history = train(resume=False)
    metric = "cosine" if model.normalize else "l2"
    save_model(
        store, task, spec, profile, embed(model, data.features["gallery"]), embed(model, data.features["query"]),
        run_dir, metric, steps=steps, origin=origin, loss=history["loss"], settings=method_overrides,
    )
    shutil.rmtree(run_dir, ignore_errors=True)
    return spec.id


def build_models(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, progress: bool = True) -> dict:
    """Train, embed, index and project every model of the plan that is not already stored."""
    timings = {}
    for task in tasks:
        todo = [spec for spec in model_plan(profile, task) if not _model_is_current(store, task, spec, profile)]
        if not todo:
            continue
        timings[task] = {}
        data = TaskFeatures(store, task, progress)
        for spec in todo:
            start = time.perf_counter()
            train_model(data, spec, profile, progress=progress)
            timings[task][spec.id] = round(time.perf_counter() - start, 2)
    return timings


def _model_is_current(store: ArtifactStore, task: str, spec: ModelSpec, profile: Profile) -> bool:
    key = (task, "models", spec.id)
    if not store.is_valid(*key, full=True):  # a model's files are small: checksum them all
        return False
    meta = store.manifest(*key)["meta"]
    return (meta.get("profile") == profile.name and meta.get("steps") == (0 if spec.method == BASELINE else profile.steps)
            and meta.get("settings", {}) == tuned_settings(store, task, profile, spec.method))


def save_model(
    store, task, spec: ModelSpec, profile: Profile, gallery: np.ndarray, query: np.ndarray, run_dir, metric: str,
    steps: int, origin: str, loss: list[float] | None = None, settings: dict | None = None,
) -> None:
    from .index import build_index, save_index
    from .metrics import evaluate

    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    query = np.ascontiguousarray(query, dtype=np.float32)
    result = evaluate(query, gallery, query_gallery_label_distance(store, task), metric=metric)
    summary = {k: float(v) for k, v in result.items() if "@" in k or k == "spearman"}
    meta = {
        "task": task, "model_id": spec.id, "method": spec.method, "dim": int(gallery.shape[1]), "seed": spec.seed,
        "metric": metric, "backbone": BACKBONE, "feature_mode": "pooled" if spec.method == BASELINE else TRAIN_MODE,
        "profile": profile.name, "steps": steps, "origin": origin, "settings": settings or {}, "metrics": summary,
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
            from .projection import fit_projection, save_projection

            save_projection(fit_projection(gallery, metric=metric, seed=0), tmp / "projection.npz")


# ---------------------------------------------------------------------------- build
def run_build(profile_name: str = "quick", tasks=TASK_NAMES, store: ArtifactStore | None = None, progress: bool = True) -> dict:
    profile = get_profile(profile_name)
    store = store or ArtifactStore()
    store.root.mkdir(parents=True, exist_ok=True)
    store.sweep()
    stages = {}
    start = time.perf_counter()
    for name, stage in [
        ("data", lambda: build_data(store, profile, tasks)),
        ("features", lambda: build_features(store, profile, tasks)),
        ("label_distances", lambda: build_label_distances(store, profile, tasks)),
        ("tuning", lambda: build_tuning(store, profile, tasks, progress)),
        ("models", lambda: build_models(store, profile, tasks, progress)),
    ]:
        stage_start = time.perf_counter()
        detail = stage()
        stages[name] = {"seconds": round(time.perf_counter() - stage_start, 2), "detail": detail}
        print(f"build: {name} done in {stages[name]['seconds']:.1f} s", flush=True)
    report = {"profile": profile.name, "tasks": list(tasks), "stages": stages, "build_s": round(time.perf_counter() - start, 2)}
    if any(stage["detail"] for stage in stages.values()):  # keep the timings of the last run that built something
        atomic_write_json(store.root / "build.json", report)
    return report


def last_build_report(store: ArtifactStore) -> dict | None:
    """Timings of the last build run that did work (``build.json``), or None."""
    try:
        return json.loads((store.root / "build.json").read_text())
    except (OSError, ValueError):
        return None
