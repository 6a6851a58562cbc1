"""The features stage and a task's training inputs: cached backbone features, label neighbours, CNN images, captions."""
from __future__ import annotations

import contextlib
import time
from functools import cached_property

import numpy as np
from tqdm.auto import tqdm

from dml_core.core.images import downsample
from dml_core.core.store import ArtifactStore
from dml_core.data.splits import EXTRA_SPLIT, SPLITS, load_split, split_key
from dml_core.data.tasks import TASK_NAMES, get_task
from dml_core.features.backbone import TRAIN_MODE, shared_backbone
from dml_core.features.factory import DEFAULT_BACKBONE
from dml_core.learn.cnn import CNN_IMAGE_SIZE
from dml_core.pipeline.profiles import Profile

#: Images per feature job of the worker pool (a few seconds of work each).
FEATURE_CHUNK = 512


def _feature_chunk(root: str, task: str, split: str, start: int, stop: int, modes: tuple[str, ...]) -> dict:
    from dml_core.features.cache import compute_feature_modes

    images = np.asarray(load_split(ArtifactStore(root), task, split).images[start:stop])
    return compute_feature_modes(shared_backbone(), images, modes, progress=False)


def split_features(store: ArtifactStore, task: str, split: str, mode: str = TRAIN_MODE, progress: bool = True,
                   pool=None) -> np.ndarray:
    """Backbone features of a stored split, from the feature cache when present; on a miss they
    are computed in ``pool``'s single-threaded workers when given (``dml_core.core.workers``), else
    here on one thread."""
    return split_feature_modes(store, task, split, (mode,), progress, pool)[mode]


def split_feature_modes(store: ArtifactStore, task: str, split: str, modes: tuple[str, ...], progress: bool = True,
                        pool=None) -> dict[str, np.ndarray]:
    """``split_features`` for several modes, the missing ones computed in one pass over the images."""
    from dml_core.core.workers import run_jobs, torch_threads
    from dml_core.features.cache import extract_feature_modes

    images = load_split(store, task, split).images

    def compute(images: np.ndarray, missing: tuple[str, ...]) -> dict[str, np.ndarray]:
        jobs = [(str(store.root), task, split, start, min(start + FEATURE_CHUNK, len(images)), missing)
                for start in range(0, len(images), FEATURE_CHUNK)]
        with tqdm(total=len(images), desc=f"features {task}/{split}", unit="img", disable=not progress, leave=False) as bar:
            chunks = run_jobs(_feature_chunk, jobs, 1, on_done=lambda job, r: bar.update(len(r[missing[0]])), pool=pool)
        return {mode: np.concatenate([chunk[mode] for chunk in chunks]) for mode in missing}

    with torch_threads(1):
        return extract_feature_modes(shared_backbone(), images, modes, cache_dir=store.path(task, "features"),
                                     progress=progress, compute=compute if pool is not None else None)


def build_features(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, device: str = "cpu", workers: int = 1,
                   pool=None) -> dict:
    """Fill the feature cache; returns seconds and images/s for the tasks that needed the backbone.
    On the CPU with ``workers`` > 1, chunks of images go to single-threaded worker processes
    (``pool``'s when given).

    The activations the task's fine-tuned pair trains on (``plan.activation_modes``) come from the
    same pass through the network. A small ``<task>/features_done`` marker records that the cache
    holds this profile's features, so a rerun does not even hash the images again.
    """
    from dml_core.core.workers import worker_pool
    from dml_core.pipeline.plan import activation_modes

    timings = {}
    todo = []
    for task in tasks:
        key = (task, "features_done")
        marker = {"profile": profile.name, "backbone": DEFAULT_BACKBONE, "mode": TRAIN_MODE,
                  "activations": list(activation_modes(task, profile))}
        if not (store.is_valid(*key) and store.manifest(*key)["meta"] == marker):
            todo.append((task, key, marker))
    if not todo:
        return timings
    if device != "cpu":
        shared_backbone().to(device)
    parallel = device == "cpu" and workers > 1
    with contextlib.nullcontext(pool) if pool is not None or not parallel else worker_pool(workers) as pool:
        for task, key, marker in todo:
            start = time.perf_counter()
            modes = (TRAIN_MODE, *marker["activations"])
            n = sum(len(split_feature_modes(store, task, split, modes, pool=pool)[TRAIN_MODE]) for split in SPLITS)
            seconds = time.perf_counter() - start
            timings[task] = {"seconds": round(seconds, 2), "images_per_s": round(n / seconds, 1)}
            with store.writer(*key, meta=marker):
                pass
    return timings


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
        self._activations: dict[tuple[str, str], np.ndarray] = {}

    @property
    def neighbours(self):
        """Label-space neighbours of the training split (k_pos = 30), shared by every method."""
        if self._neighbours is None:
            from dml_core.learn.mining import LabelNeighbours

            self._neighbours = LabelNeighbours(self.train.labels, get_task(self.task).label_distance, k=30,
                                               keep_matrix_max=KEEP_LABEL_MATRIX_MAX)
        return self._neighbours

    @cached_property
    def cnn_train(self) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) the CNN embedder trains on: the train split reduced to
        ``CNN_IMAGE_SIZE`` plus the extra split (when the profile renders one)."""
        images, labels = [downsample(self.train.images, CNN_IMAGE_SIZE)], [self.train.labels]
        if self.store.is_valid(*split_key(self.task, EXTRA_SPLIT)):
            extra = load_split(self.store, self.task, EXTRA_SPLIT, mmap=False)
            images.append(extra.images)
            labels.append(extra.labels)
        return np.concatenate(images), np.concatenate(labels)

    @cached_property
    def cnn_neighbours(self):
        """Label neighbours of ``cnn_train``, stored in ``<task>/neighbours/cnn``: at 30,000 images
        they take minutes, so the build computes them once, before its workers need them."""
        from dml_core.learn.mining import LabelNeighbours

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

    def activations(self, mode: str, split: str) -> np.ndarray:
        """The backbone's cached activations of a stored split in feature mode ``mode``
        (``"block<k>"``): what the top-blocks embedder trains on and embeds."""
        key = (mode, split)
        if key not in self._activations:
            self._activations[key] = split_features(self.store, self.task, split, mode=mode, progress=False)
        return self._activations[key]

    def cnn_images(self, split: str) -> np.ndarray:
        """A stored split's images at ``CNN_IMAGE_SIZE``, what the CNN embedder embeds."""
        return downsample(load_split(self.store, self.task, split).images, CNN_IMAGE_SIZE)

    def caption_embeddings(self) -> np.ndarray:
        """(N, captions, D) sentence embeddings of the training captions: the ones the data stage
        made for the labels when it kept them (``CAPTION_VECTORS``), else embedded once and
        cached in the store. Images with fewer captions than the most (COCO has 5 to 7) repeat
        theirs in turn, so a caption drawn at random is still one of their own."""
        from dml_core.core.text import embed_sentences, embedding_dim, text_backend
        from dml_core.data.tasks.caption import CAPTION_VECTORS

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


#: Per worker process: the task features it has loaded, so its next job on the task reuses them.
_LOADED: dict[tuple[str, str], TaskFeatures] = {}


def worker_task_features(root: str, task: str) -> TaskFeatures:
    """A worker's ``TaskFeatures`` of ``task`` under ``root``, loaded on its first job."""
    if (root, task) not in _LOADED:
        _LOADED[(root, task)] = TaskFeatures(ArtifactStore(root), task, progress=False)
    return _LOADED[(root, task)]


def forget_loaded() -> None:
    """Drop what this process loaded for jobs (when run in-process, the build's memory comes back)."""
    _LOADED.clear()
