"""Query-time access to built artifacts: what the app and ``python -m dml_core query`` use.

``load_catalog(task)`` reads one task's gallery, queries and models once (memory-mapped
images, search indexes (FAISS or Milvus, see ``dml_core.search``), projections, heads); it is
shared by every page and session. A query image runs the backbone once, then every selected
model's head, then each model's index.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np

from dml_core.core.store import ArtifactError, ArtifactStore, CorruptArtifact, MissingArtifact
from dml_core.core.vocabulary import BASELINE, method_rank
from dml_core.data.label_distances import query_gallery_label_distance
from dml_core.data.splits import load_split
from dml_core.data.tasks import TaskData, get_task
from dml_core.features.backbone import TRAIN_MODE, pooled_from_spatial, shared_backbone
from dml_core.search.backends import Backend, backend_from_env
from dml_core.search.gallery import check_backend, open_gallery_index
from dml_core.search.interface import SearchIndex, search
from dml_core.search.projection import Projection, load_projection, place


@dataclass
class Model:
    """One built model of a task: its head (None for the ImageNet baseline) and gallery index."""

    id: str
    meta: dict
    gallery: np.ndarray
    query: np.ndarray
    index: SearchIndex  # FAISS or Milvus, as the catalog's backend says
    projection: Projection | None
    head: object = None

    @property
    def method(self) -> str:
        return self.meta["method"]

    @property
    def input_mode(self) -> str:
        """What the model embeds: backbone features (``TRAIN_MODE``; "pooled" for the ImageNet
        baseline), the backbone's activations below its trained top blocks ("block<k>"), or
        images at the CNN's size ("images<size>")."""
        return self.meta.get("feature_mode", TRAIN_MODE)

    @property
    def embeds_images(self) -> bool:
        """True for CNN models, which embed images (at ``learn.cnn.CNN_IMAGE_SIZE``), not backbone features."""
        return self.input_mode.startswith("images")

    def embed_features(self, features: np.ndarray) -> np.ndarray:
        """Embeddings of backbone features (``TRAIN_MODE``, or the model's ``input_mode`` for a
        model whose top blocks trained) for this model."""
        if self.embeds_images:
            raise ValueError(f"{self.id} embeds images, not backbone features")
        if self.head is None:
            return pooled_from_spatial(features).astype(np.float32)
        from dml_core.learn.model import embed

        return embed(self.head, features)

    def embed_images(self, images: np.ndarray, features: "Callable[..., np.ndarray]") -> np.ndarray:
        """Embeddings of uint8 images (N, S, S, 3) at the task's size; ``features(mode)`` gives their
        backbone features in a feature mode (computed once per mode, by the caller, for every
        model that needs them)."""
        if not self.embeds_images:
            mode = self.input_mode if self.input_mode.startswith("block") else TRAIN_MODE
            return self.embed_features(features(mode))
        from dml_core.core.images import downsample
        from dml_core.learn.cnn import CNN_IMAGE_SIZE
        from dml_core.learn.model import embed

        return embed(self.head, downsample(images, CNN_IMAGE_SIZE))


@dataclass
class Hit:
    gallery_index: int
    distance: float  # embedding distance (1 − cos or squared L2, see the model's metric)
    label_distance: float | None


@dataclass
class Catalog:
    """Everything built for one task."""

    task_name: str
    gallery: TaskData
    queries: TaskData
    label_dist: np.ndarray  # (n_query, n_gallery)
    models: dict[str, Model] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)  # model id -> why it was not loaded
    cache: dict = field(default_factory=dict, repr=False)  # derived per-catalog data (e.g. per-query scores)
    backend: Backend = field(default_factory=Backend)  # what every model's gallery is searched with
    #: Manifest times of the data the models were loaded against, and of each model (``load_catalog``'s reuse).
    data_stamp: tuple = ()
    model_stamps: dict[str, float | None] = field(default_factory=dict, repr=False)

    @cached_property
    def task(self):
        return get_task(self.task_name)

    def model_ids(self, main_only: bool = False) -> list[str]:
        """Models in display order; ``main_only`` keeps those with a projection (d=128, seed 0)."""
        ids = [m for m in self.models if not main_only or self.models[m].projection is not None]
        return sorted(ids, key=lambda m: (method_rank(self.models[m].method), self.models[m].meta.get("dim") or 0, m))

    # --------------------------------------------------------------- queries
    def query_features(self, images: np.ndarray, mode: str = TRAIN_MODE) -> np.ndarray:
        """Backbone features of uint8 images (N, H, W, 3) at the task's image size, in ``mode``."""
        from dml_core.features.cache import compute_features

        return compute_features(shared_backbone(), images, mode=mode, progress=False)

    def search(self, model_id: str, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return search(self.models[model_id].index, np.ascontiguousarray(embeddings, dtype=np.float32), min(k, len(self.gallery)))

    def hits_for_query(self, query_index: int, model_ids: list[str], k: int = 10) -> dict[str, list[Hit]]:
        """Top-``k`` gallery hits of stored query ``query_index`` for each model."""
        out = {}
        for model_id in model_ids:
            model = self.models[model_id]
            distances, ids = self.search(model_id, model.query[query_index : query_index + 1], k)
            out[model_id] = [Hit(int(i), float(d), float(self.label_dist[query_index, i])) for d, i in zip(distances[0], ids[0])]
        return out

    def oracle(self, query_index: int, k: int = 10) -> list[Hit]:
        """The gallery ranked by true label distance: the best any model could do."""
        order = np.argsort(self.label_dist[query_index], kind="stable")[:k]
        return [Hit(int(i), 0.0, float(self.label_dist[query_index, i])) for i in order]

    def feature_function(self, images: np.ndarray, timings: dict) -> "Callable[..., np.ndarray]":
        """``features(mode=TRAIN_MODE)``: the backbone features of ``images`` in a feature mode,
        computed on the first call for that mode only (CNN models need none), their time summed
        in ``timings["backbone_ms"]``."""
        cache: dict[str, np.ndarray] = {}

        def features(mode: str = TRAIN_MODE) -> np.ndarray:
            if mode not in cache:
                start = time.perf_counter()
                cache[mode] = self.query_features(images, mode)
                timings["backbone_ms"] = timings.get("backbone_ms", 0.0) + (time.perf_counter() - start) * 1000
            return cache[mode]

        return features

    def hits_for_image(self, image_array: np.ndarray, model_ids: list[str], k: int = 10) -> tuple[dict[str, list[Hit]], dict]:
        """Top-``k`` hits of one uint8 image for each model, plus timings in ms."""
        start = time.perf_counter()
        timings = {"backbone_ms": 0.0}
        features = self.feature_function(image_array[None], timings)
        out = {}
        for model_id in model_ids:
            step, backbone_before = time.perf_counter(), timings["backbone_ms"]
            embedding = self.models[model_id].embed_images(image_array[None], features)
            distances, ids = self.search(model_id, embedding, k)
            out[model_id] = [Hit(int(i), float(d), None) for d, i in zip(distances[0], ids[0])]
            timings[f"{model_id}_ms"] = (time.perf_counter() - step) * 1000 - (timings["backbone_ms"] - backbone_before)
        timings["total_ms"] = (time.perf_counter() - start) * 1000
        return out, timings

    def text_model_ids(self) -> list[str]:
        """Models that embed text into the image space (cross-modal, caption task)."""
        return [m for m in self.model_ids() if getattr(self.models[m].head, "text_head", None) is not None]

    def hits_for_text(self, text: str, model_ids: list[str] | None = None, k: int = 10) -> tuple[dict[str, list[Hit]], dict]:
        """Top-``k`` gallery images for a sentence, from the cross-modal models among ``model_ids``."""
        from dml_core.core.text import embed_sentences
        from dml_core.learn.model import embed_text

        text = text.strip()
        if not text:
            raise ValueError("the text query is empty")
        usable = [m for m in (model_ids or self.text_model_ids()) if m in self.text_model_ids()]
        if not usable:
            raise ValueError(f"text search needs a cross-modal model; none is built for {self.task_name}")
        start = time.perf_counter()
        sentence = embed_sentences([text[:500]])
        out = {}
        for model_id in usable:
            distances, ids = self.search(model_id, embed_text(self.models[model_id].head, sentence), k)
            out[model_id] = [Hit(int(i), float(d), None) for d, i in zip(distances[0], ids[0])]
        return out, {"total_ms": (time.perf_counter() - start) * 1000}

    def embed_image(self, image_array: np.ndarray, model_id: str) -> np.ndarray:
        images = image_array[None]
        return self.models[model_id].embed_images(images, lambda mode=TRAIN_MODE: self.query_features(images, mode))

    def place(self, model_id: str, embedding: np.ndarray) -> np.ndarray | None:
        """2-D position of a new embedding on the model's gallery projection."""
        model = self.models[model_id]
        if model.projection is None:
            return None
        return place(model.projection, model.gallery, np.atleast_2d(embedding))

    def query_scores(self, model_id: str, query_index: int, k: int = 10) -> dict:
        """nDCG@k and mean label distance@k of one stored query under one model."""
        from dml_core.evaluate.metrics import mean_label_distance_at_k, ndcg_at_k

        model = self.models[model_id]
        _, ids = self.search(model_id, model.query[query_index : query_index + 1], k)
        row = self.label_dist[query_index]
        ranked = row[ids[0]]
        return {"ndcg": float(ndcg_at_k(ranked, np.sort(row)[:len(ranked)], k)), "mld": float(mean_label_distance_at_k(ranked, k))}


def load_model(store: ArtifactStore, task_name: str, model_id: str, backend: Backend | None = None) -> Model:
    key = (task_name, "models", model_id)
    meta = store.verify(*key, full=True)["meta"]  # never load an altered index or projection
    directory = store.path(*key)
    head = None
    if meta["method"] != BASELINE:
        from dml_core.learn.checkpoints import load_model as load_head

        head = load_head(directory)
    projection_path = directory / "projection.npz"
    return Model(
        id=model_id,
        meta=meta,
        gallery=store.load_array(*key, name="gallery.npy"),
        query=store.load_array(*key, name="query.npy"),
        index=open_gallery_index(store, task_name, model_id, backend),
        projection=load_projection(projection_path) if projection_path.is_file() else None,
        head=head,
    )


def load_catalog(task_name: str, store: ArtifactStore | None = None, backend: Backend | None = None,
                 previous: Catalog | None = None) -> Catalog:
    """Load what ``build`` made for ``task_name``; MissingArtifact says to run the build. ``backend``
    (default: ``DML_INDEX`` / ``DML_MILVUS_URI``, see ``dml_core.search``) searches the galleries.

    previous: an earlier catalog of the task; its models whose manifests have not been rewritten
    since (same data, same backend) are taken over as they are, verified and loaded already. While
    a build lands models one by one, a page's reload then costs the new model, not all of them."""
    store = store or ArtifactStore()
    backend = backend or backend_from_env()
    try:
        gallery = load_split(store, task_name, "gallery")
        queries = load_split(store, task_name, "query")
        label_dist = query_gallery_label_distance(store, task_name)
    except MissingArtifact as exc:
        raise MissingArtifact(f"{exc}. Build it first: python -m dml_core build") from None
    check_backend(backend, store)  # an unreachable server is one error, not one per model
    catalog = Catalog(task_name, gallery, queries, label_dist, backend=backend,
                      data_stamp=(store.manifest_time(task_name, "data", "gallery"), store.manifest_time(task_name, "label_dist")))
    reusable = previous.models if previous is not None and previous.data_stamp == catalog.data_stamp \
        and previous.backend == backend and previous.task_name == task_name else {}
    profile = store.manifest(task_name, "data", "gallery")["meta"].get("profile")
    for model_id in store.list(task_name, "models", valid_only=False):
        stamp = store.manifest_time(task_name, "models", model_id)
        if model_id in reusable and stamp is not None and previous.model_stamps.get(model_id) == stamp:
            catalog.models[model_id], catalog.model_stamps[model_id] = reusable[model_id], stamp
            continue
        try:
            model = load_model(store, task_name, model_id, backend)
        except (ArtifactError, RuntimeError, ValueError, OSError) as exc:  # checksum, checkpoint, index errors
            catalog.damaged[model_id] = " ".join(str(exc).split())
            continue
        catalog.model_stamps[model_id] = stamp
        if model.meta.get("profile") == profile:  # models of an older build index another gallery
            catalog.models[model_id] = model
    if not catalog.models and catalog.damaged:
        raise CorruptArtifact(f"every model of {task_name} is damaged ({next(iter(catalog.damaged.values()))}). "
                              "Rebuild them: python -m dml_core build")
    if not catalog.models:
        raise MissingArtifact(f"no models built for {task_name}. Build them first: python -m dml_core build")
    return catalog
