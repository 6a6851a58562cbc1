"""Nearest-neighbour search over gallery embeddings: one interface, two engines.

Every search goes through :func:`search` on a :class:`SearchIndex`, whichever engine holds
the vectors:

- **FAISS**, in-process (the default): ``flat`` (exact, what every model artifact stores as
  ``index.faiss``), ``hnsw`` (graph, approximate) or ``ivfpq`` (inverted lists over
  product-quantised codes, approximate and compact), for large galleries.
- **Milvus** (:mod:`dml_core.search.milvus`): a Milvus Lite file under ``DML_HOME`` by default, or
  any Milvus server by URI; ``flat`` (exact, the same results as FAISS flat) or ``hnsw``.

Metrics and the distances ``search`` returns (smaller is always nearer), for every engine:
- ``"cosine"``: vectors are L2-normalised (gallery at build time, queries at search time) and
  searched by inner product; the returned distance is ``1 - cos`` in [0, 2].
- ``"l2"``: raw vectors; the returned distance is the **squared** Euclidean distance
  ``||q - g||^2`` (FAISS's and Milvus's native value, same ranking as Euclidean).
These match ``dml_core.search.distances.embedding_distance``.

Exact flat indexes are what the benchmark numbers are computed with: a gallery of thousands
is searched in microseconds and no approximation can bias the comparison between models.
The metric and kind of a FAISS file are recovered from the index itself on load, so an index
file needs no sidecar.

Ties in distance come back in the engine's order (not guaranteed by gallery index); the
official evaluation uses ``dml_core.evaluate.metrics.evaluate``, which breaks ties by gallery index.
"""
from __future__ import annotations

import numpy as np

from dml_core.core.vocabulary import DISTANCE_METRICS


class IndexFileError(ValueError):
    """An index file is missing, corrupt or of an unsupported kind. One line naming the file."""


class SearchBackendError(RuntimeError):
    """A search backend cannot serve (unknown name, unreachable server, a collection that is
    missing or out of date and may not be written). One line for a person."""


class SearchIndex:
    """What :func:`search` needs from an engine: ``metric``, ``kind``, ``size``, ``dim`` and
    ``search_prepared(queries, k)`` on float32 queries already checked, normalised for cosine,
    with 1 <= k <= size, returning (distances, ids) as documented in :func:`search`."""

    metric: str
    kind: str

    @property
    def size(self) -> int:
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def search_prepared(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


def scores_to_distances(scores: np.ndarray, ids: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """An engine's (scores, ids) as this module's distances: ``1 - inner product`` for cosine,
    squared L2 as is, clipped at 0 against rounding; empty slots (id -1) get distance inf."""
    scores = np.asarray(scores, dtype=np.float32)
    distances = np.maximum(1.0 - scores if metric == "cosine" else scores, 0.0).astype(np.float32, copy=False)
    ids = np.asarray(ids, dtype=np.int64)
    distances[ids < 0] = np.inf
    return distances, ids


def _as_float32_matrix(x, name: str) -> np.ndarray:
    array = np.asarray(x)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (n, dim), got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contain NaN or infinite values")
    return array


def _normalised(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"{name}: row {int(np.argmin(norms))} is all zeros, cosine distance undefined")
    return np.ascontiguousarray(x / norms[:, None], dtype=np.float32)


def prepare_vectors(embeddings, metric: str, name: str = "embeddings") -> np.ndarray:
    """Checked float32 (n, dim) vectors as every engine stores them (L2-normalised for cosine)."""
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(DISTANCE_METRICS)}")
    vectors = _as_float32_matrix(embeddings, name)
    return _normalised(vectors, name) if metric == "cosine" else vectors


def search(index: SearchIndex, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery items of each query, from any engine.

    queries: (Q, dim) or (dim,) array. k: clamped to the index size.
    Returns (distances, ids), each (Q, min(k, size)), nearest first: float32 distances
    (``1 - cos`` for cosine, squared L2 for l2, clipped at 0 against rounding) and int64
    gallery row ids. An approximate index may find fewer than k items: their slots hold id -1
    and distance inf, and a single query's row is cut to the items found.
    """
    queries = np.asarray(queries)
    if queries.ndim == 1:
        queries = queries[None, :]
    queries = _as_float32_matrix(queries, "queries")
    if queries.shape[1] != index.dim:
        raise ValueError(f"queries have dimension {queries.shape[1]}, index has {index.dim}")
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), index.size)
    if index.metric == "cosine":
        queries = _normalised(queries, "queries")
    distances, ids = index.search_prepared(queries, k)
    if len(ids) == 1 and ids[0, -1] < 0:
        found = int(np.count_nonzero(ids[0] >= 0))
        distances, ids = distances[:, :found], ids[:, :found]
    return distances, ids
