"""Nearest-neighbour search over gallery embeddings: one interface, two engines.

Every search goes through :func:`search` on a :class:`SearchIndex`, whichever engine holds
the vectors:

- **FAISS**, in-process (the default): ``flat`` (exact, what every model artifact stores as
  ``index.faiss``), ``hnsw`` (graph, approximate) or ``ivfpq`` (inverted lists over
  product-quantised codes, approximate and compact), for large galleries.
- **Milvus** (:mod:`dml_core.milvus_index`): a Milvus Lite file under ``DML_HOME`` by default, or
  any Milvus server by URI; ``flat`` (exact, the same results as FAISS flat) or ``hnsw``.

Metrics and the distances ``search`` returns (smaller is always nearer), for every engine:
- ``"cosine"``: vectors are L2-normalised (gallery at build time, queries at search time) and
  searched by inner product; the returned distance is ``1 - cos`` in [0, 2].
- ``"l2"``: raw vectors; the returned distance is the **squared** Euclidean distance
  ``||q - g||^2`` (FAISS's and Milvus's native value, same ranking as Euclidean).
These match ``dml_core.metrics.embedding_distance``.

Exact flat indexes are what the benchmark numbers are computed with: a gallery of thousands
is searched in microseconds and no approximation can bias the comparison between models.
The metric and kind of a FAISS file are recovered from the index itself on load, so an index
file needs no sidecar.

Which engine serves the library, the CLI and the app is a :class:`Backend`, chosen by name
(``faiss``, ``faiss-hnsw``, ``faiss-ivfpq``, ``milvus``, ``milvus-hnsw``): ``--index`` on the
command line, else ``DML_INDEX``; the Milvus server is ``--milvus-uri`` / ``DML_MILVUS_URI``
(a URI alone selects ``milvus``). The model artifacts in the store stay the source of truth:
what a non-default backend searches is a derived copy of a model's ``gallery.npy``, written by
:func:`sync_gallery_indexes` (the build's ``search`` stage) or, when missing or out of date,
by :func:`open_gallery_index` on first use, never loaded when it no longer matches the
gallery's checksum.

Ties in distance come back in the engine's order (not guaranteed by gallery index); the
official evaluation uses ``dml_core.metrics.evaluate``, which breaks ties by gallery index.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from .store import ArtifactError, ArtifactStore, atomic_write_bytes

METRICS = ("cosine", "l2")
FAISS_KINDS = ("flat", "hnsw", "ivfpq")
MILVUS_KINDS = ("flat", "hnsw")
#: Names a backend can be chosen by (``--index``, ``DML_INDEX``).
BACKEND_NAMES = ("faiss", "faiss-hnsw", "faiss-ivfpq", "milvus", "milvus-hnsw")

#: HNSW graph settings shared by FAISS and Milvus, chosen by measurement on 100,000 vectors of
#: a log-ratio model's embedding space (d = 128, built as ``dml_core.scale`` does): M = 32 and
#: efConstruction = 80 found more of the true top 10 than M = 16, efConstruction = 40 at every
#: efSearch, for twice the build time.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
#: How widely HNSW searches (efSearch, :func:`hnsw_ef_search`) has to grow with N: one value
#: does not serve every size. FAISS, on those vectors, recall@10 (p50 ms a query, one thread) at
#: efSearch 64 / 128 / 256 / 512 / 1024 / 2048 —
#: N = 100,000:   0.70 (0.09)  0.82 (0.14)  0.89 (0.25)  0.97 (0.46)  0.99 (0.91)  1.00 (2.1);
#: N = 1,000,000: 0.35 (0.10)  0.45 (0.17)  0.57 (0.32)  0.72 (0.55)  0.80 (1.05)  0.91 (2.4),
#: where exact search takes 24 ms. efSearch = HNSW_EF_SEARCH * sqrt(N / HNSW_EF_SEARCH_BASE_N),
#: rounded up to a power of two, gives 128 up to 6,250 vectors, 512 at 100,000, 2048 at 1,000,000.
HNSW_EF_SEARCH = 128
HNSW_EF_SEARCH_BASE_N = 6_250
#: IVF-PQ: about sqrt(N) inverted lists trained on 64 points each, 32 of them probed per query,
#: d / 4 sub-quantisers of 8 bits (d bytes per vector). PQ codes alone are too coarse for the
#: dense neighbourhoods of an embedding space (recall@10 0.30 at N = 100,000, d = 128), so the
#: REFINE_FACTOR * k best candidates are re-ranked by 8-bit scalar-quantised copies of the
#: vectors (another d bytes; 2 d bytes per vector in all, half of float32). Measured there:
#: 4, 10, 25 candidates per result gave recall@10 0.62, 0.75, 0.83 (64 probes: the same).
IVF_PROBES = 32
TRAIN_PER_LIST = 64
REFINE_FACTOR = 32

#: Below this many queries, FAISS search runs on one OpenMP thread. FAISS switches from its
#: per-query loop to BLAS at 20 queries (``distance_compute_blas_threshold``); a handful of
#: queries against a few thousand vectors is microseconds of work, where waking a thread team
#: costs more than it saves. ``omp_set_num_threads`` is per calling thread, so this does not
#: touch searches running concurrently in other threads (e.g. other Streamlit sessions).
SINGLE_THREAD_MAX_QUERIES = 20


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


@dataclass
class Index(SearchIndex):
    """A FAISS index (flat, HNSW or IVF-PQ) plus the metric it was built for."""

    faiss_index: faiss.Index
    metric: str

    @property
    def size(self) -> int:
        return int(self.faiss_index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.faiss_index.d)

    @property
    def kind(self) -> str:
        return _faiss_kind(self.faiss_index)

    def vectors(self) -> np.ndarray:
        """(size, dim) float32 stored vectors (L2-normalised for cosine); flat and HNSW only."""
        return self.faiss_index.reconstruct_n(0, self.size)

    def search_prepared(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        previous_threads = faiss.omp_get_max_threads()
        few_queries = len(queries) < SINGLE_THREAD_MAX_QUERIES
        if few_queries:
            faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.faiss_index.search(queries, k)
        finally:
            if few_queries:
                faiss.omp_set_num_threads(previous_threads)
        return scores_to_distances(scores, ids, self.metric)


def scores_to_distances(scores: np.ndarray, ids: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """An engine's (scores, ids) as this module's distances: ``1 - inner product`` for cosine,
    squared L2 as is, clipped at 0 against rounding; empty slots (id -1) get distance inf."""
    scores = np.asarray(scores, dtype=np.float32)
    distances = np.maximum(1.0 - scores if metric == "cosine" else scores, 0.0).astype(np.float32, copy=False)
    ids = np.asarray(ids, dtype=np.int64)
    distances[ids < 0] = np.inf
    return distances, ids


def _faiss_kind(faiss_index) -> str:
    if isinstance(faiss_index, (faiss.IndexFlatIP, faiss.IndexFlatL2)):
        return "flat"
    if isinstance(faiss_index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(faiss_index, faiss.IndexRefine) and isinstance(faiss.downcast_index(faiss_index.base_index), faiss.IndexIVFPQ):
        return "ivfpq"
    raise TypeError(type(faiss_index).__name__)


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
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    vectors = _as_float32_matrix(embeddings, name)
    return _normalised(vectors, name) if metric == "cosine" else vectors


def ivf_lists(n: int) -> int:
    """Inverted lists for n vectors: about sqrt(n), at least 1, at most n / 39 so that every
    list's centroid trains on the 39 points FAISS asks for."""
    return int(max(1, min(round(math.sqrt(n)), n // 39)))


def pq_layout(dim: int, n: int) -> tuple[int, int]:
    """(sub-quantisers, bits each) for IVF-PQ: the largest divisor of ``dim`` up to dim / 4,
    8 bits each, fewer bits when n is too small to train 256 centroids per sub-quantiser."""
    subquantizers = max(m for m in range(1, max(1, dim // 4) + 1) if dim % m == 0)
    return subquantizers, int(max(1, min(8, math.floor(math.log2(max(2, n // 4))))))


def hnsw_ef_search(n: int, k: int = 1) -> int:
    """efSearch for an HNSW graph of ``n`` vectors searched for ``k`` neighbours (see HNSW_EF_SEARCH)."""
    wanted = HNSW_EF_SEARCH * math.sqrt(max(n, 1) / HNSW_EF_SEARCH_BASE_N)
    ef_search = HNSW_EF_SEARCH if wanted <= HNSW_EF_SEARCH else 2 ** math.ceil(math.log2(wanted))
    return max(int(ef_search), int(k))


def new_index(embeddings, metric: str = "cosine", kind: str = "flat", n: int | None = None) -> Index:
    """An empty FAISS index for about ``n`` vectors (default: as many as ``embeddings``), trained
    for IVF-PQ on a seeded sample of ``embeddings``; add the (prepared) vectors to it."""
    if kind not in FAISS_KINDS:
        raise ValueError(f"unknown FAISS index kind {kind!r}; choose from {', '.join(FAISS_KINDS)}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    n = int(n or len(embeddings))
    dim, faiss_metric = int(np.shape(embeddings)[1]), faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    if kind == "flat":
        return Index(faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim), metric)
    if kind == "hnsw":
        faiss_index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss_metric)
        faiss_index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        faiss_index.hnsw.efSearch = hnsw_ef_search(n)
        return Index(faiss_index, metric)
    lists = ivf_lists(n)
    quantizer = faiss.IndexFlatIP(dim) if metric == "cosine" else faiss.IndexFlatL2(dim)
    subquantizers, bits = pq_layout(dim, n)
    coarse = faiss.IndexIVFPQ(quantizer, dim, lists, subquantizers, bits, faiss_metric)
    # The layout already fits the list and code counts to n; FAISS would still print a
    # warning per sub-quantiser for small galleries.
    coarse.cp.min_points_per_centroid = coarse.pq.cp.min_points_per_centroid = 1
    coarse.nprobe = min(lists, IVF_PROBES)
    fine = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_8bit, faiss_metric)
    faiss_index = faiss.IndexRefine(coarse, fine)
    faiss_index.k_factor = REFINE_FACTOR
    for owner, owned in ((coarse, quantizer), (faiss_index, coarse), (faiss_index, fine)):
        owner.own_fields = True  # freed with their owner, not by Python's references
        owned.this.disown()
    # A seeded sample keeps training deterministic and bounds its time for millions of vectors
    # (k-means over all of them would take hours on 2 cores).
    sample = TRAIN_PER_LIST * max(lists, 2 ** bits)
    rows = np.arange(len(embeddings))
    if len(rows) > sample:
        rows = np.sort(np.random.default_rng(0).choice(len(rows), sample, replace=False))
    faiss_index.train(prepare_vectors(np.asarray(embeddings)[rows], metric))
    return Index(faiss_index, metric)


def build_index(embeddings, metric: str = "cosine", kind: str = "flat") -> Index:
    """FAISS index over (n, dim) embeddings; ``metric`` "cosine" or "l2", ``kind`` "flat" (exact),
    "hnsw" or "ivfpq" (approximate; settings: ``HNSW_*``, :func:`ivf_lists`, :func:`pq_layout`)."""
    vectors = prepare_vectors(embeddings, metric)
    index = new_index(vectors, metric, kind)
    index.faiss_index.add(vectors)
    return index


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
    try:
        _faiss_kind(faiss_index)
    except TypeError:
        raise IndexFileError(f"{path}: unsupported index type {type(faiss_index).__name__} "
                             "(expected flat, HNSW or refined IVF-PQ)") from None
    if faiss_index.ntotal == 0:
        raise IndexFileError(f"{path}: index holds no vectors")
    metric = "cosine" if faiss_index.metric_type == faiss.METRIC_INNER_PRODUCT else "l2"
    return Index(faiss_index, metric)


# ------------------------------------------------------------------------ backends
@dataclass(frozen=True)
class Backend:
    """Which engine searches the galleries: ``engine`` "faiss" or "milvus", its index ``kind``,
    and for Milvus the server URI (None: the Milvus Lite file ``DML_HOME/milvus/gallery.db``)."""

    engine: str = "faiss"
    kind: str = "flat"
    milvus_uri: str | None = None

    @property
    def name(self) -> str:
        """The name it is chosen by: "faiss", "faiss-hnsw", "milvus", ..."""
        return self.engine if self.kind == "flat" else f"{self.engine}-{self.kind}"

    @property
    def is_default(self) -> bool:
        """FAISS flat: the ``index.faiss`` every model artifact already holds."""
        return self.engine == "faiss" and self.kind == "flat"

    def milvus_target(self, store: ArtifactStore) -> str:
        """The URI the Milvus client connects to: the server's, or the Lite file's path."""
        return self.milvus_uri or str(store.root / "milvus" / "gallery.db")

    def describe(self, store: ArtifactStore | None = None) -> str:
        if self.engine == "faiss":
            return f"FAISS {self.kind} (in-process)"
        where = self.milvus_uri or (f"Milvus Lite file {self.milvus_target(store)}" if store else "Milvus Lite")
        return f"Milvus {self.kind.upper()} at {where}"


def parse_backend(name: str | None = None, milvus_uri: str | None = None) -> Backend:
    """A Backend from its name (default "faiss", or "milvus" when only a URI is given)."""
    milvus_uri = (milvus_uri or "").strip() or None
    name = (name or "").strip().lower() or ("milvus" if milvus_uri else "faiss")
    if name not in BACKEND_NAMES:
        raise SearchBackendError(f"unknown search index {name!r}; choose from {', '.join(BACKEND_NAMES)}")
    engine, _, kind = name.partition("-")
    if milvus_uri and engine != "milvus":
        raise SearchBackendError(f"a Milvus URI ({milvus_uri}) was given but the search index is {name!r}; use --index milvus")
    if milvus_uri and not milvus_uri.startswith(("http://", "https://", "tcp://", "unix:")) and not milvus_uri.endswith(".db"):
        raise SearchBackendError(f"not a Milvus URI: {milvus_uri!r} (expected http://host:port, https://..., or a Milvus Lite file ending in .db)")
    return Backend(engine, kind or "flat", milvus_uri)


def backend_from_env(name: str | None = None, milvus_uri: str | None = None) -> Backend:
    """The backend of explicit choices, else of ``DML_INDEX`` and ``DML_MILVUS_URI``. A URI in
    the environment is used only when the index is Milvus (or not named)."""
    if name or milvus_uri:
        return parse_backend(name, milvus_uri)
    env_name = os.environ.get("DML_INDEX", "").strip()
    env_uri = os.environ.get("DML_MILVUS_URI", "").strip()
    if env_name and not env_name.lower().startswith("milvus"):
        env_uri = ""
    return parse_backend(env_name, env_uri)


def check_backend(backend: Backend, store: ArtifactStore) -> None:
    """Fail early, in one line, when the backend cannot be reached (FAISS always can)."""
    if backend.engine == "milvus":
        from .milvus_index import connect

        connect(backend.milvus_target(store))


def _gallery_record(store: ArtifactStore, task: str, model_id: str) -> tuple[dict, str]:
    """(model meta, SHA-256 of its gallery.npy): what a derived copy must match."""
    manifest = store.manifest(task, "models", model_id)
    try:
        return manifest["meta"], manifest["files"]["gallery.npy"]["sha256"]
    except KeyError:
        raise ArtifactError(f"artifact {task}/models/{model_id}: no gallery.npy in its manifest") from None


def derived_digest(gallery_sha256: str, metric: str, kind: str) -> str:
    """What a derived copy of a gallery is keyed by: its content, metric and index kind."""
    return hashlib.sha256(f"{gallery_sha256}|{metric}|{kind}".encode()).hexdigest()[:16]


def open_gallery_index(store: ArtifactStore, task: str, model_id: str, backend: Backend | None = None,
                       write_missing: bool = True, progress: bool = False) -> SearchIndex:
    """The index a model's gallery is searched with under ``backend`` (default: from the
    environment). A derived copy that is missing or older than the model's gallery is
    (re)written from ``gallery.npy`` when ``write_missing``, else SearchBackendError."""
    return _open_or_write(store, task, model_id, backend or backend_from_env(), write_missing, progress)[0]


def _open_or_write(store: ArtifactStore, task: str, model_id: str, backend: Backend, write_missing: bool,
                   progress: bool) -> tuple[SearchIndex, bool]:
    """(index, whether the derived copy had to be written)."""
    directory = store.path(task, "models", model_id)
    if backend.is_default:
        return load_index(directory / "index.faiss"), False
    meta, gallery_sha = _gallery_record(store, task, model_id)
    digest = derived_digest(gallery_sha, meta["metric"], backend.kind)

    def gallery() -> np.ndarray:
        return store.load_array(task, "models", model_id, name="gallery.npy")

    if backend.engine == "milvus":
        from . import milvus_index

        return milvus_index.open_gallery(backend, store, task, model_id, digest, meta["metric"], gallery,
                                         write_missing=write_missing, progress=progress)
    key = (task, "search", backend.name, model_id)
    if store.is_valid(*key) and store.manifest(*key)["meta"].get("digest") == digest:
        return load_index(store.path(*key) / "index.faiss"), False
    if not write_missing:
        raise SearchBackendError(f"{task}/{model_id}: no current {backend.name} index; run python -m dml_core build --index {backend.name}")
    index = build_index(gallery(), meta["metric"], backend.kind)
    with store.writer(*key, meta={"digest": digest, "kind": backend.kind, "metric": meta["metric"], "size": index.size}) as tmp:
        save_index(index, tmp / "index.faiss")
    return index, True


def sync_gallery_indexes(store: ArtifactStore, tasks, backend: Backend | None = None, progress: bool = True) -> dict:
    """Write the gallery of every valid model of ``tasks`` (built with the task's current data)
    into ``backend`` where it is missing or out of date (the build's ``search`` stage). Returns
    ``{task: [model ids written]}``; nothing for FAISS flat, whose index is in each model artifact."""
    backend = backend or backend_from_env()
    if backend.is_default:
        return {}
    check_backend(backend, store)
    written = {}
    for task in tasks:
        try:
            profile = store.manifest(task, "data", "gallery")["meta"].get("profile")
        except ArtifactError:
            continue
        for model_id in store.list(task, "models"):
            if store.manifest(task, "models", model_id)["meta"].get("profile") != profile:
                continue  # a model of an older build indexes another gallery; the app hides it too
            if _open_or_write(store, task, model_id, backend, write_missing=True, progress=progress)[1]:
                written.setdefault(task, []).append(model_id)
    return written
