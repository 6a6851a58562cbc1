"""FAISS, in-process: exact flat indexes (what every model artifact stores), HNSW and IVF-PQ."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from dml_core.core.store import atomic_write_bytes
from dml_core.core.vocabulary import DISTANCE_METRICS
from dml_core.search.interface import IndexFileError, SearchIndex, prepare_vectors, scores_to_distances

FAISS_KINDS = ("flat", "hnsw", "ivfpq")


#: HNSW graph settings shared by FAISS and Milvus, chosen by measurement on 100,000 vectors of
#: a log-ratio model's embedding space (d = 128, built as ``dml_core.bench.scale`` does): M = 32 and
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


def _faiss_kind(faiss_index) -> str:
    if isinstance(faiss_index, (faiss.IndexFlatIP, faiss.IndexFlatL2)):
        return "flat"
    if isinstance(faiss_index, faiss.IndexHNSWFlat):
        return "hnsw"
    if isinstance(faiss_index, faiss.IndexRefine) and isinstance(faiss.downcast_index(faiss_index.base_index), faiss.IndexIVFPQ):
        return "ivfpq"
    raise TypeError(type(faiss_index).__name__)


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
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(DISTANCE_METRICS)}")
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
