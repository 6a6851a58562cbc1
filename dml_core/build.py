"""``python -m dml_core build``: data → features → models → indexes → projections.

Each stage writes artifacts through the store and skips what is already valid, so a rerun
with nothing to do takes seconds and a killed run resumes where it stopped (training resumes
from its last checkpoint under ``<task>/runs``).

Artifacts per task::

    <task>/data/{train,gallery,query}/     images.npy labels.npy meta.json, array-<name>.npy
                                           (caption: the per-caption sentence embeddings)
    <task>/features/                       backbone feature cache (dml_core.embedders.features)
    <task>/label_dist/                     query × gallery label distances
    <task>/tuning/                         validation nDCG@10 of every tuning-grid setting and
                                           the setting each method then trains with
    <task>/models/<model_id>/              head weights, gallery/query embeddings, FAISS index,
                                           UMAP projection, metrics.json
    <task>/search/<backend>/<model_id>/    FAISS HNSW / IVF-PQ copies of a gallery (``--index``);
                                           Milvus copies live in Milvus (``dml_core.index``)
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from tqdm.auto import tqdm

from .methods import CNN_METHODS, COMPARED
from .data import EXTRA_SPLIT, SPLITS, Profile, generate_split, get_profile, load_split, save_split, split_key
from .store import ArtifactStore, atomic_write_json
from .tasks import TASK_NAMES, get_task

BACKBONE = "efficientnet_lite0"
#: Features the heads train on: the 2x2-pooled last feature map keeps coarse spatial layout,
#: which pose and room layout need (DESIGN.md §3); the ImageNet baseline uses its global mean.
TRAIN_MODE = "spatial2x2"
BASELINE = "imagenet"
#: Every compared method trains at the profile's dimension for every seed.
METHODS_AT_FULL_DIM = COMPARED
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
    plan += [ModelSpec(m, profile.dim, seed) for seed in profile.seeds for m in METHODS_AT_FULL_DIM]
    plan += [ModelSpec(m, d, profile.seeds[0]) for m in ABLATION_METHODS for d in profile.ablation_dims]
    if task in profile.cnn_tasks:
        plan += [ModelSpec(m, profile.dim, seed) for seed in profile.cnn_seeds for m in CNN_METHODS]
    if task is not None and get_task(task).has_captions:
        plan.append(ModelSpec(CROSS_MODAL, profile.dim, profile.seeds[0]))
    return plan


# ----------------------------------------------------------------------------- data
def _data_splits(profile: Profile, task: str) -> list[str]:
    """The splits a task's build needs: train, gallery, query, and extra for the CNN track."""
    return [split for split in (*SPLITS, EXTRA_SPLIT) if profile.split_size(task, split) > 0]


def _stored_size(split: str, profile: Profile) -> int:
    from .cnn import CNN_IMAGE_SIZE

    return CNN_IMAGE_SIZE if split == EXTRA_SPLIT else profile.image_size


def build_data(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, workers: int | None = None) -> dict:
    """Generate the missing data splits of ``tasks`` (imported tasks: copy them from the import,
    ``tasks.imported.build_imported_data``); returns seconds and images/s per task."""
    from .tasks.imported import build_imported_data

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


def stored_profile(store: ArtifactStore, task: str) -> Profile:
    """The profile the task's stored data was built with."""
    return get_profile(store.manifest(*split_key(task, "gallery"))["meta"]["profile"])


def _split_is_current(store: ArtifactStore, task: str, split: str, profile: Profile) -> bool:
    if not store.is_valid(*split_key(task, split)):
        return False
    meta = store.manifest(*split_key(task, split))["meta"]
    return meta.get("n") == profile.split_size(task, split) and meta.get("size") == _stored_size(split, profile)


# ------------------------------------------------------------------------- features
_BACKBONES: dict = {}


def shared_backbone(name: str = BACKBONE):
    """One frozen backbone per process (it holds no per-request state)."""
    if name not in _BACKBONES:
        from .embedders import create_backbone

        _BACKBONES[name] = create_backbone(name)
    return _BACKBONES[name]


#: Images per feature job of the worker pool (a few seconds of work each).
FEATURE_CHUNK = 512


def _feature_chunk(root: str, task: str, split: str, start: int, stop: int, mode: str) -> np.ndarray:
    from .embedders.features import compute_features

    images = np.asarray(load_split(ArtifactStore(root), task, split).images[start:stop])
    return compute_features(shared_backbone(), images, mode=mode, progress=False)


def split_features(store: ArtifactStore, task: str, split: str, mode: str = TRAIN_MODE, progress: bool = True,
                   pool=None) -> np.ndarray:
    """Backbone features of a stored split, from the feature cache when present; on a miss they
    are computed in ``pool``'s single-threaded workers when given (``dml_core.workers``), else
    here on one thread."""
    from .embedders.features import extract_features
    from .workers import run_jobs, torch_threads

    images = load_split(store, task, split).images

    def compute(images: np.ndarray) -> np.ndarray:
        jobs = [(str(store.root), task, split, start, min(start + FEATURE_CHUNK, len(images)), mode)
                for start in range(0, len(images), FEATURE_CHUNK)]
        with tqdm(total=len(images), desc=f"features {task}/{split}", unit="img", disable=not progress, leave=False) as bar:
            return np.concatenate(run_jobs(_feature_chunk, jobs, 1, on_done=lambda job, r: bar.update(len(r)), pool=pool))

    with torch_threads(1):
        return extract_features(shared_backbone(), images, mode=mode, cache_dir=store.path(task, "features"),
                                progress=progress, compute=compute if pool is not None else None)


def pooled_from_spatial(features: np.ndarray) -> np.ndarray:
    """Global-average features from 2x2 ones (channel-major (C, 2, 2)): the quadrants' mean."""
    return features.reshape(len(features), -1, 4).mean(axis=2)


def build_features(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, device: str = "cpu", workers: int = 1) -> dict:
    """Fill the feature cache; returns seconds and images/s for the tasks that needed the backbone.
    On the CPU with ``workers`` > 1, chunks of images go to single-threaded worker processes.

    A small ``<task>/features_done`` marker records that the cache holds this profile's
    features, so a rerun does not even hash the images again.
    """
    from .workers import worker_pool

    timings = {}
    todo = []
    for task in tasks:
        key = (task, "features_done")
        marker = {"profile": profile.name, "backbone": BACKBONE, "mode": TRAIN_MODE}
        if not (store.is_valid(*key) and store.manifest(*key)["meta"] == marker):
            todo.append((task, key, marker))
    if not todo:
        return timings
    if device != "cpu":
        shared_backbone().to(device)
    parallel = device == "cpu" and workers > 1
    with worker_pool(workers) if parallel else contextlib.nullcontext() as pool:
        for task, key, marker in todo:
            start = time.perf_counter()
            n = sum(len(split_features(store, task, split, pool=pool)) for split in SPLITS)
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
#: Training sets up to this size keep their (N, N) label-distance matrix in memory (400 MB at
#: 10,000), so no batch recomputes a label distance (the caption task's is the costly one).
KEEP_LABEL_MATRIX_MAX = 10_000


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

            self._neighbours = LabelNeighbours(self.train.labels, get_task(self.task).label_distance, k=30,
                                               keep_matrix_max=KEEP_LABEL_MATRIX_MAX)
        return self._neighbours

    @cached_property
    def cnn_train(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) the CNN embedder trains on: the train split reduced to
        ``CNN_IMAGE_SIZE`` plus the extra split (when the profile renders one)."""
        from .cnn import downsample

        images, labels = [downsample(self.train.images)], [self.train.labels]
        if self.store.is_valid(*split_key(self.task, EXTRA_SPLIT)):
            extra = load_split(self.store, self.task, EXTRA_SPLIT, mmap=False)
            images.append(extra.images)
            labels.append(extra.labels)
        return np.concatenate(images), np.concatenate(labels)

    @cached_property
    def cnn_neighbours(self):
        """Label neighbours of ``cnn_train``, stored in ``<task>/neighbours/cnn``: at 30,000 images
        they take minutes, so the build computes them once, before its workers need them."""
        from .mining import LabelNeighbours

        labels, distance = self.cnn_train[1], get_task(self.task).label_distance
        key = (self.task, "neighbours", "cnn")
        splits = [split_key(self.task, s) for s in ("train", EXTRA_SPLIT) if self.store.is_valid(*split_key(self.task, s))]
        source = [self.store.manifest(*split)["created"] for split in splits]  # the data they were computed from
        meta = {"n": len(labels), "source": source}
        if self.store.is_valid(*key) and all(self.store.manifest(*key)["meta"].get(k) == v for k, v in meta.items()):
            return LabelNeighbours.from_arrays(labels, distance, self.store.load_array(*key, name="indices.npy"),
                                               self.store.load_array(*key, name="distances.npy"))
        neighbours = LabelNeighbours(labels, distance, k=30, keep_matrix_max=KEEP_LABEL_MATRIX_MAX)
        with self.store.writer(*key, meta={**meta, "k": neighbours.k}) as tmp:
            np.save(tmp / "indices.npy", neighbours.indices)
            np.save(tmp / "distances.npy", neighbours.distances)
        return neighbours

    def cnn_images(self, split: str) -> np.ndarray:
        """A stored split's images at ``CNN_IMAGE_SIZE``, what the CNN embedder embeds."""
        from .cnn import downsample

        return downsample(load_split(self.store, self.task, split).images)

    def caption_embeddings(self) -> np.ndarray:
        """(N, captions, D) sentence embeddings of the training captions: the ones the data stage
        made for the labels when it kept them (``CAPTION_VECTORS``), else embedded once and
        cached in the store. Images with fewer captions than the most (COCO has 5 to 7) repeat
        theirs in turn, so a caption drawn at random is still one of their own."""
        from .tasks.caption import CAPTION_VECTORS
        from .text import embedding_dim, embed_sentences, text_backend

        kept = self.train.arrays.get(CAPTION_VECTORS)
        if kept is not None and kept.shape[-1] == embedding_dim():
            return kept
        key = (self.task, "text", "train")
        if not self.store.is_valid(*key):
            captions = self.train.meta["captions"]
            per_image = max(len(caps) for caps in captions)
            cycled = [[caps[j % len(caps)] for j in range(per_image)] for caps in captions]
            flat = embed_sentences([c for caps in cycled for c in caps], progress=True)
            with self.store.writer(*key, meta={"backend": text_backend()}) as tmp:
                np.save(tmp / "captions.npy", flat.reshape(len(captions), per_image, -1))
        return self.store.load_array(*key, name="captions.npy")


# --------------------------------------------------------------------------- tuning
#: Share of the training split held out to choose each method's setting; a fifth of it
#: queries the rest.
VALIDATION_FRACTION = 0.2


class Validation:
    """The tuning split of a task's training features: fit on the first 80 %, query a fifth of
    the rest against the others."""

    def __init__(self, data: "TaskFeatures"):
        from .mining import LabelNeighbours

        self.label_distance = get_task(data.task).label_distance
        features, labels = data.features["train"], data.train.labels
        n_val = int(len(features) * VALIDATION_FRACTION)
        n_fit = len(features) - n_val
        n_val_query = max(1, n_val // 5)
        self.fit_x, self.fit_y = features[:n_fit], labels[:n_fit]
        self.query, self.gallery = features[n_fit:n_fit + n_val_query], features[n_fit + n_val_query:]
        self.label_dist = self.label_distance(labels[n_fit:n_fit + n_val_query], labels[n_fit + n_val_query:])
        self.neighbours = LabelNeighbours(self.fit_y, self.label_distance, k=min(30, n_fit - 1),
                                          keep_matrix_max=KEEP_LABEL_MATRIX_MAX)

    def score(self, config, profile: Profile) -> float:
        """Validation nDCG@10 of ``config`` trained with the profile's budget and first seed."""
        from .metrics import evaluate
        from .train import embed, fit

        model, _ = fit(self.fit_x, self.fit_y, self.label_distance, method=config, dim=profile.dim, steps=profile.steps,
                       seed=profile.seeds[0], neighbours=self.neighbours, progress=False)
        metric = "cosine" if model.normalize else "l2"
        return float(evaluate(embed(model, self.query), embed(model, self.gallery), self.label_dist, ks=(10,),
                              metric=metric)["ndcg@10"])


#: Per process: what a worker has loaded, so its next job on the same task reuses it.
_LOADED: dict[tuple, object] = {}


def _loaded(kind: str, root: str, task: str):
    key = (kind, root, task)
    if key not in _LOADED:
        data = _LOADED.get(("data", root, task)) or TaskFeatures(ArtifactStore(root), task, progress=False)
        _LOADED[("data", root, task)] = data
        if kind == "validation":
            _LOADED[key] = Validation(data)
    return _LOADED[key]


def _tuning_job(root: str, task: str, profile: Profile, method: str, index: int) -> float:
    from .methods import tuning_configs

    return _loaded("validation", root, task).score(tuning_configs(method)[index], profile)


def tune_task(store: ArtifactStore, task: str, profile: Profile, progress: bool = True, workers: int = 1) -> dict:
    """Run the tuning grid of every compared method on a validation split of the task's training
    split (same grid size, steps, seed and dimension for every method) and pick, per method, the
    setting with the best validation nDCG@10. Settings train in ``workers`` processes.

    Returns ``{method: {"chosen": index, "settings": overrides, "scores": [nDCG@10 per setting]}}``.
    The query and gallery splits are never looked at.
    """
    from .methods import TUNING_GRIDS
    from .workers import run_jobs

    jobs = [(str(store.root), task, profile, method, index)
            for method in METHODS_AT_FULL_DIM for index in range(len(TUNING_GRIDS[method]))]
    with tqdm(total=len(jobs), desc=f"tuning {task}", unit="setting", disable=not progress) as bar:
        try:
            scores = run_jobs(_tuning_job, jobs, workers, on_done=lambda job, score: bar.update(1))
        finally:
            _LOADED.clear()
    result = {}
    for method in METHODS_AT_FULL_DIM:
        method_scores = [score for job, score in zip(jobs, scores) if job[3] == method]
        best = int(np.argmax(method_scores))
        result[method] = {"chosen": best, "settings": TUNING_GRIDS[method][best],
                          "scores": [round(float(v), 5) for v in method_scores]}
    return result


def build_tuning(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, progress: bool = True, workers: int = 1) -> list[str]:
    """Tune the compared methods of every task whose profile asks for it (``Profile.tune``)."""
    built = []
    if not profile.tune:
        return built
    for task in tasks:
        key = (task, "tuning")
        if store.is_valid(*key) and _tuning_matches(store.manifest(*key)["meta"], profile):
            continue
        result = tune_task(store, task, profile, progress, workers)
        with store.writer(*key, meta={"profile": profile.name, "steps": profile.steps, "methods": result,
                                      "grids": _grids()}):
            pass
        built.append(task)
    return built


def _grids() -> dict:
    from .methods import TUNING_GRIDS

    return {method: TUNING_GRIDS[method] for method in METHODS_AT_FULL_DIM}


def _tuning_matches(meta: dict, profile: Profile) -> bool:
    """A stored tuning result is current for this profile, these methods and their grids."""
    return meta.get("profile") == profile.name and meta.get("steps") == profile.steps and meta.get("grids") == _grids()


def tuned_settings(store: ArtifactStore, task: str, profile: Profile, method: str) -> dict:
    """The overrides ``method`` trains with on ``task``: the tuning stage's choice, or {} (the
    method's defaults) when the profile is not tuned or the method has no tuning grid (the
    fine-tuned ``*_ft`` variants: see ``methods.CNN_METHODS``)."""
    key = (task, "tuning")
    if not profile.tune or method not in METHODS_AT_FULL_DIM or not store.is_valid(*key):
        return {}
    meta = store.manifest(*key)["meta"]
    return meta["methods"][method]["settings"] if _tuning_matches(meta, profile) else {}


def is_cnn(method: str) -> bool:
    """Whether the method trains the compact CNN on images (``methods`` embedder "cnn")."""
    from .methods import METHODS

    return method in METHODS and METHODS[method].embedder == "cnn"


def planned_steps(spec: ModelSpec, profile: Profile) -> int:
    if spec.method == BASELINE:
        return 0
    return profile.cnn_steps if is_cnn(spec.method) else profile.steps


def _relative_cost(spec: ModelSpec, profile: Profile) -> float:
    """Rough single-thread cost of training ``spec``, to start the slowest jobs first: measured
    (full profile, 2 cores) a CNN step costs ~20 head steps."""
    return planned_steps(spec, profile) * (20 if is_cnn(spec.method) else 1)


def feature_mode(method: str) -> str:
    """What a model embeds: pooled or 2x2 backbone features, or images at the CNN's size."""
    from .cnn import CNN_IMAGE_SIZE

    if method == BASELINE:
        return "pooled"
    return f"images{CNN_IMAGE_SIZE}" if is_cnn(method) else TRAIN_MODE


#: Seconds of training between two checkpoints of a model in the build or the lab. By time, not
#: steps: a head's 600 steps take ~20 s on one core, and a checkpoint of its 5,120-d input
#: layer (weights and Adam moments, checksummed) ~0.4 s; an interruption loses at most this.
CHECKPOINT_EVERY_S = 60.0


def train_model(
    data: TaskFeatures, spec: ModelSpec, profile: Profile, steps: int | None = None, origin: str = "build",
    progress: bool = True, on_step=None, device: str = "cpu", **method_overrides,
) -> str:
    """Train (or resume) ``spec`` on cached features (or, for the CNN embedder, on images), then
    store it with embeddings, index, projection and metrics; returns the model id.
    ``on_step(step, loss)`` returning False stops training early (the model is then stored as
    trained so far). Without ``method_overrides`` the method trains with the setting the tuning
    stage chose (``tuned_settings``)."""
    from .train import CheckpointError, embed, fit

    store, task = data.store, data.task
    steps = steps or planned_steps(spec, profile)
    method_overrides = method_overrides or tuned_settings(store, task, profile, spec.method)
    if spec.method == BASELINE:
        gallery, query = (pooled_from_spatial(data.features[s]) for s in ("gallery", "query"))
        save_model(store, task, spec, profile, gallery, query, None, "cosine", steps=0, origin=origin)
        return spec.id
    run_dir = store.path(task, "runs", spec.id)
    cross_modal, cnn = spec.method == CROSS_MODAL, is_cnn(spec.method)
    if cnn:
        (inputs, labels), neighbours = data.cnn_train, data.cnn_neighbours
        gallery_inputs, query_inputs = data.cnn_images("gallery"), data.cnn_images("query")
    else:
        inputs, labels, neighbours = data.features["train"], data.train.labels, None if cross_modal else data.neighbours
        gallery_inputs, query_inputs = data.features["gallery"], data.features["query"]

    def train(resume: bool):
        return fit(
            inputs, labels, get_task(task).label_distance, method=spec.method,
            dim=spec.dim, steps=steps, seed=spec.seed, checkpoint_dir=run_dir, resume=resume,
            checkpoint_every_s=CHECKPOINT_EVERY_S,
            neighbours=neighbours, text_inputs=data.caption_embeddings() if cross_modal else None,
            progress=progress, on_step=on_step, device=device, **method_overrides,
        )

    try:
        model, history = train(resume=True)
    except CheckpointError as exc:  # a damaged or foreign checkpoint is never loaded: start afresh
        warnings.warn(f"{task}/{spec.id}: {exc}; training from scratch", stacklevel=2)
        shutil.rmtree(run_dir, ignore_errors=True)
        model, history = train(resume=False)
    from .distributed import is_main_process

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
    train_model(_loaded("data", root, task), spec, profile, progress=False, device=device)
    return spec.id, round(time.perf_counter() - start, 2)


def build_models(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, progress: bool = True,
                 workers: int = 1, device: str = "cpu") -> dict:
    """Train, embed, index and project every model of the plan that is not already stored, in
    ``workers`` single-threaded processes (the slowest models first, so the pool ends together)."""
    from .workers import run_jobs

    jobs = [(str(store.root), task, spec, profile, device) for task in tasks for spec in model_plan(profile, task)
            if not _model_is_current(store, task, spec, profile)]
    if not jobs:
        return {}
    jobs.sort(key=lambda job: -_relative_cost(job[2], profile))
    for task in dict.fromkeys(job[1] for job in jobs if is_cnn(job[2].method)):
        TaskFeatures(store, task, progress).cnn_neighbours  # once, here, before the workers need them
    timings: dict = {}
    with tqdm(total=len(jobs), desc="models", unit="model", disable=not progress) as bar:
        def done(job, result):
            timings.setdefault(job[1], {})[result[0]] = result[1]
            bar.set_postfix_str(f"{job[1]}/{result[0]} {result[1]:.0f} s", refresh=False)
            bar.update(1)

        try:
            run_jobs(_model_job, jobs, 1 if device != "cpu" else workers, on_done=done)
        finally:
            _LOADED.clear()
    return {task: timings[task] for task in tasks if task in timings}


def trained_config(method: str, settings: dict) -> dict | None:
    """The full method configuration a model trains with (None for the untrained baseline):
    stored with the model, so a change of a method's defaults retrains it."""
    from .methods import METHODS, get_method

    return get_method(method, **settings).to_dict() if method in METHODS else None


def _model_is_current(store: ArtifactStore, task: str, spec: ModelSpec, profile: Profile) -> bool:
    key = (task, "models", spec.id)
    if not store.is_valid(*key, full=True):  # a model's files are small: checksum them all
        return False
    meta = store.manifest(*key)["meta"]
    settings = tuned_settings(store, task, profile, spec.method)
    return (meta.get("profile") == profile.name and meta.get("steps") == planned_steps(spec, profile)
            and meta.get("feature_mode") == feature_mode(spec.method) and meta.get("settings", {}) == settings
            and meta.get("config") == trained_config(spec.method, settings))


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
        "metric": metric, "backbone": BACKBONE, "feature_mode": feature_mode(spec.method),
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
            from .projection import fit_projection, save_projection

            save_projection(fit_projection(gallery, metric=metric, seed=0), tmp / "projection.npz")


# ---------------------------------------------------------------------------- build
def run_build(profile_name: str = "quick", tasks=TASK_NAMES, store: ArtifactStore | None = None, progress: bool = True,
              workers: int | None = None, device: str = "cpu", backend=None) -> dict:
    """Run every stage for ``tasks``; returns the report (stage seconds and what each built),
    also written to ``DML_HOME/build.json`` when something was built.

    workers: processes for tuning and training (default: one per core, each single-threaded;
    see ``dml_core.workers``). device: "cpu", "cuda" or "auto" (a GPU when torch sees one)
    for features and training; on a GPU models train one at a time in this process.
    backend: the ``dml_core.index.Backend`` the galleries are searched with (default: from
    ``DML_INDEX`` / ``DML_MILVUS_URI``); its stage writes them there (nothing for FAISS flat).
    """
    from .index import backend_from_env, check_backend, sync_gallery_indexes
    from .workers import default_workers

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
        ("label_distances", lambda: build_label_distances(store, profile, tasks)),
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
        atomic_write_json(store.root / "build.json", report)
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


def last_build_report(store: ArtifactStore) -> dict | None:
    """Timings of the last build run that did work (``build.json``), or None."""
    try:
        return json.loads((store.root / "build.json").read_text())
    except (OSError, ValueError):
        return None
