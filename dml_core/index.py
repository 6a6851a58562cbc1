"""Exact nearest-neighbour search over gallery embeddings with FAISS.

Metrics and the distances ``search`` returns (smaller is always nearer):
- ``"cosine"``: vectors are L2-normalised (gallery at build time, queries at search time) and
  stored in an inner-product flat index; the returned distance is ``1 - cos`` in [0, 2].
- ``"l2"``: raw vectors in an L2 flat index; the returned distance is the **squared**
  Euclidean distance ``||q - g||^2`` (FAISS's native value, same ranking as Euclidean).
These match ``dml_core.metrics.embedding_distance``.

Both are exact (``IndexFlat``): a gallery of thousands is searched in microseconds and no
approximation can bias the comparison between models. The metric is recovered from the
index's own ``metric_type`` on load, so an index file needs no sidecar.

Ties in distance come back in FAISS's order (not guaranteed by gallery index); the official
evaluation uses ``dml_core.metrics.evaluate``, which breaks ties by gallery index.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .store import atomic_write_bytes

METRICS = ("cosine", "l2")

#: Below this many queries, search runs on one OpenMP thread. FAISS switches from its
#: per-query loop to BLAS at 20 queries (``distance_compute_blas_threshold``); a handful of
#: queries against a few thousand vectors is microseconds of work, where waking a thread team
#: costs more than it saves. ``omp_set_num_threads`` is per calling thread, so this does not
#: touch searches running concurrently in other threads (e.g. other Streamlit sessions).
SINGLE_THREAD_MAX_QUERIES = 20


class IndexFileError(ValueError):
    """An index file is missing, corrupt or of an unsupported kind. One line naming the file."""


@dataclass
class Index:
    """A FAISS flat index plus the metric it was built for."""

    faiss_index: faiss.Index
    metric: str

    @property
    def size(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.faiss_index.d)

    def vectors(self) -> np.ndarray:
        """(size, dim) float32 stored vectors (L2-normalised for cosine)."""
        return self.faiss_index.reconstruct_n(0, self.size)


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


def build_index(embeddings, metric: str = "cosine") -> Index:
    """Exact flat index over (n, dim) embeddings; ``metric`` is "cosine" or "l2"."""
    vectors = _as_float32_matrix(embeddings, "embeddings")
    if metric == "cosine":
        faiss_index = faiss.IndexFlatIP(vectors.shape[1])
        vectors = _normalised(vectors, "embeddings")
    elif metric == "l2":
        faiss_index = faiss.IndexFlatL2(vectors.shape[1])
    else:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    faiss_index.add(vectors)
    return Index(faiss_index, metric)


def search(index: Index, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest gallery items of each query.

    queries: (Q, dim) or (dim,) array. k: clamped to the index size.
    Returns (distances, ids), each (Q, min(k, size)), nearest first: float32 distances
    (``1 - cos`` for cosine, squared L2 for l2, clipped at 0 against rounding) and int64
    gallery row ids.
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

    previous_threads = faiss.omp_get_max_threads()
    few_queries = len(queries) < SINGLE_THREAD_MAX_QUERIES
    if few_queries:
        faiss.omp_set_num_threads(1)
    try:
        scores, ids = index.faiss_index.search(queries, k)
    finally:
        if few_queries:
            faiss.omp_set_num_threads(previous_threads)

    distances = 1.0 - scores if index.metric == "cosine" else scores
    return np.maximum(distances, 0.0).astype(np.float32, copy=False), ids


def save_index(index: Index, path) -> None:
    """Write the index to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    atomic_write_bytes(path, faiss.serialize_index(index.faiss_index).tobytes())


def load_index(path) -> Index:
    """Read an index written by ``save_index``; IndexFileError if missing, corrupt or foreign."""
    path = Path(path)
    if not path.is_file():
        raise IndexFileError(f"{path}: FAISS index file not found")
    try:
        faiss_index = faiss.read_index(str(path))
    except RuntimeError:
        # FAISS's message is a multi-line C++ trace; the file name and the cause are what matter.
        raise IndexFileError(f"{path}: not a readable FAISS index (corrupt or partial file)") from None
    if isinstance(faiss_index, faiss.IndexFlatIP):
        metric = "cosine"
    elif isinstance(faiss_index, faiss.IndexFlatL2):
        metric = "l2"
    else:
        raise IndexFileError(f"{path}: unsupported index type {type(faiss_index).__name__} (expected a flat index)")
    if faiss_index.ntotal == 0:
        raise IndexFileError(f"{path}: index holds no vectors")
    return Index(faiss_index, metric)
