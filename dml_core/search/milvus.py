"""Milvus as a search backend of :mod:`dml_core.search`: one collection per model gallery.

A collection is a derived copy of a model's ``gallery.npy`` (the store stays the source of
truth): row id = gallery row, one float vector field, stored as :func:`search.interface.prepare_vectors`
makes it (L2-normalised for cosine, searched by inner product, so distances follow the same
conventions as FAISS). Its name carries the gallery's content digest,
``dml_<task>__<model>_<hash of the two>_<digest>``, so a collection under its final name
matches the gallery it was made from, and a changed gallery (or metric or index kind) gets a
new collection while the older ones of that model are dropped.

Writes are atomic like the store's: rows go into a work collection ``<name>_w<random>``,
which is flushed and indexed, then renamed to ``<name>``. A killed writer leaves only a work
collection, which the next write of that gallery drops.

The target is a server URI (``http://host:19530``) or a Milvus Lite file (``.db``), which
Milvus Lite opens in-process and locks: one process at a time.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from dml_core.search.backends import Backend
from dml_core.search.faiss_index import HNSW_EF_CONSTRUCTION, HNSW_M, hnsw_ef_search
from dml_core.search.interface import SearchBackendError, SearchIndex, prepare_vectors, scores_to_distances

#: Milvus answers at most this many results per query.
MAX_TOP_K = 16384
ID_FIELD, VECTOR_FIELD = "id", "vector"
#: Rows per insert call: about 8 MB of float32 per message, well under gRPC's limits.
INSERT_BYTES = 8 << 20
CONNECT_TIMEOUT_S = 10.0

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def _quiet_client_logs() -> None:
    """pymilvus logs every failed call with its traceback; our errors say it in one line."""
    if not os.environ.get("DML_DEBUG"):
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def _message(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "message", None) or exc).split()) or type(exc).__name__


def is_lite(target: str) -> bool:
    return target.endswith(".db")


def connect(target: str):
    """A client for a server URI or a Milvus Lite file, one per target and process."""
    with _clients_lock:
        if target in _clients:
            return _clients[target]
        _quiet_client_logs()
        from pymilvus import MilvusClient

        try:
            if is_lite(target):
                Path(target).parent.mkdir(parents=True, exist_ok=True)
            client = MilvusClient(uri=target, timeout=CONNECT_TIMEOUT_S)
            client.list_collections()
        except Exception as exc:  # pymilvus raises its own and grpc's error types
            if is_lite(target):
                raise SearchBackendError(
                    f"cannot open the Milvus Lite file {target} ({_message(exc)}); Milvus Lite allows one process "
                    "per file: stop the other one (the app, a build) or use a Milvus server (--milvus-uri)") from None
            raise SearchBackendError(f"cannot reach Milvus at {target} ({_message(exc)})") from None
        _clients[target] = client
        return client


def disconnect(target: str) -> None:
    """Close the client of ``target`` (and release a Milvus Lite file for other processes)."""
    with _clients_lock:
        client = _clients.pop(target, None)
    if client is not None:
        client.close()
    if is_lite(target):
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(target)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def collection_stem(task: str, model_id: str) -> str:
    """The part of a collection name shared by every version of one model's gallery."""
    tag = hashlib.sha256(f"{task}/{model_id}".encode()).hexdigest()[:8]  # slugs of different ids may coincide
    return f"dml_{_slug(task)[:80]}__{_slug(model_id)[:100]}_{tag}"


def _metric_type(metric: str) -> str:
    return "IP" if metric == "cosine" else "L2"


class MilvusIndex(SearchIndex):
    """A model gallery's collection, searched through a Milvus client."""

    def __init__(self, client, collection: str, metric: str, kind: str, size: int, dim: int):
        self.client, self.collection, self.metric, self.kind = client, collection, metric, kind
        self._size, self._dim = int(size), int(dim)

    @property
    def size(self) -> int:
        return self._size

    @property
    def dim(self) -> int:
        return self._dim

    def search_prepared(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, MAX_TOP_K)
        params = {"metric_type": _metric_type(self.metric)}
        if self.kind == "hnsw":
            params["params"] = {"ef": hnsw_ef_search(self.size, k)}
        try:
            results = self.client.search(self.collection, data=list(queries), limit=k, anns_field=VECTOR_FIELD,
                                         search_params=params, output_fields=[ID_FIELD])
        except Exception as exc:
            raise SearchBackendError(f"Milvus search in {self.collection} failed ({_message(exc)})") from None
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.zeros((len(queries), k), dtype=np.float32)
        for row, hits in enumerate(results):
            for rank, hit in enumerate(hits[:k]):
                ids[row, rank], scores[row, rank] = hit["id"], hit["distance"]
        return scores_to_distances(scores, ids, self.metric)


def _row_count(client, name: str) -> int:
    return int(client.get_collection_stats(name)["row_count"])


def _vector_dim(client, name: str) -> int:
    fields = client.describe_collection(name)["fields"]
    return int(next(f["params"]["dim"] for f in fields if f["name"] == VECTOR_FIELD))


def write_collection(client, name: str, vectors: np.ndarray, metric: str, kind: str, progress: bool = False) -> None:
    """Fill collection ``name`` with ``vectors`` (row i gets id i) and index them, atomically."""
    from pymilvus import DataType, MilvusClient

    for leftover in client.list_collections():
        if leftover.startswith(f"{name}_w"):
            client.drop_collection(leftover)
    work = f"{name}_w{uuid.uuid4().hex[:8]}"
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
    schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
    client.create_collection(work, schema=schema, consistency_level="Strong")
    rows = max(1, INSERT_BYTES // (4 * vectors.shape[1]))
    with tqdm(total=len(vectors), desc=f"milvus {name[:40]}", unit="vec", disable=not progress, leave=False) as bar:
        for start in range(0, len(vectors), rows):
            stop = min(len(vectors), start + rows)
            client.insert(work, [{ID_FIELD: i, VECTOR_FIELD: vectors[i]} for i in range(start, stop)])
            bar.update(stop - start)
    client.flush(work)
    index_params = client.prepare_index_params()
    if kind == "hnsw":
        index_params.add_index(VECTOR_FIELD, index_type="HNSW", metric_type=_metric_type(metric),
                               params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
    else:
        index_params.add_index(VECTOR_FIELD, index_type="FLAT", metric_type=_metric_type(metric))
    client.create_index(work, index_params)
    if client.has_collection(name):
        client.drop_collection(name)
    client.rename_collection(work, name)


def open_gallery(backend: Backend, store, task: str, model_id: str, digest: str, metric: str,
                 gallery: Callable[[], np.ndarray], write_missing: bool = True,
                 progress: bool = False) -> tuple[MilvusIndex, bool]:
    """(the collection of a model's gallery version ``digest``, whether it had to be written)."""
    target = backend.milvus_target(store)
    client = connect(target)
    stem = collection_stem(task, model_id)
    name = f"{stem}_{digest}"
    try:
        written = not client.has_collection(name)
        if written:
            if not write_missing:
                raise SearchBackendError(f"{task}/{model_id}: no current Milvus collection at {target}; "
                                         f"run python -m dml_core build --index {backend.name}")
            write_collection(client, name, prepare_vectors(gallery(), metric, "gallery"), metric, backend.kind, progress)
            for older in client.list_collections():
                if older.startswith(f"{stem}_") and older != name and not older.startswith(f"{name}_w"):
                    client.drop_collection(older)
        client.load_collection(name)
        return MilvusIndex(client, name, metric, backend.kind, _row_count(client, name), _vector_dim(client, name)), written
    except SearchBackendError:
        raise
    except Exception as exc:
        raise SearchBackendError(f"{task}/{model_id}: Milvus at {target} failed ({_message(exc)})") from None
