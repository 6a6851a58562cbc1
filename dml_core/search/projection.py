"""2-D UMAP map of a model's gallery embeddings, and placement of new queries on it.

The map is fitted once per model at build time (``fit_projection``; umap-learn, seeded so
the same embeddings give the same map). The first fit in a fresh environment spends about a
minute compiling umap's numba code, which numba caches on disk; a page never fits a map.

A new query is **placed** without refitting, in milliseconds, with the same rule umap-learn
uses to initialise ``UMAP.transform`` (``init_graph_transform``), minus its optimisation
epochs:

1. take the query's k nearest gallery points in embedding space (k = the map's n_neighbors
   by default), with distances d_1 <= ... <= d_k in umap's metric (``1 - cos`` for cosine,
   Euclidean -- not squared -- for l2);
2. give neighbour j the weight ``w_j = exp(-d_j / sigma)`` (umap's fuzzy-set kernel for new
   points, ``rho = 0``), with sigma found by bisection so that
   ``sum_{j=2..k} exp(-d_j / sigma) = log2(k)`` (umap's ``smooth_knn_dist`` with
   ``local_connectivity = 0``, sum from the second neighbour, 64 halvings, tolerance 1e-5),
   floored at ``1e-3 * mean(d)`` of the query's own row (umap floors at the mean of the whole
   batch; per row keeps a query's position independent of the other queries in its batch);
3. the position is ``sum_j w_j * xy_j / sum_j w_j``; a query at distance ~0 from a gallery
   point (below ``1e-6`` of its mean neighbour distance) lands exactly on that point, as in
   umap.

Files: ``save_projection`` writes one ``.npz`` (a zip of ``.npy`` arrays: ``coords`` (N, 2)
float32 and ``meta``, a JSON string of the fit parameters), read back with
``allow_pickle=False``; nothing is pickled, and the single file is replaced atomically. The
gallery embeddings are not stored here: they live with the model (and its FAISS index) and
are passed to ``place``.
"""
from __future__ import annotations

import functools
import json
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dml_core.core.store import atomic_write
from dml_core.core.vocabulary import DISTANCE_METRICS
from dml_core.search.distances import embedding_distance

FORMAT_VERSION = 1
#: umap-learn constants mirrored by the placement kernel.
SMOOTH_K_TOLERANCE = 1e-5
MIN_K_DIST_SCALE = 1e-3
BISECTION_STEPS = 64
#: A query closer than this fraction of its mean neighbour distance is "the same point".
SAME_POINT_RELATIVE = 1e-6
#: Below this many points umap-learn finds exact neighbours from all pairwise distances, which
#: it computes through one Python call per pair (5 of the 7.5 s of a 2,000-point map, measured);
#: up to here ``fit_projection`` hands it that matrix computed at once instead (umap's own limit).
PRECOMPUTED_BELOW = 4096


class ProjectionFileError(ValueError):
    """A projection file is missing, corrupt or inconsistent. One line naming the file."""


@dataclass
class Projection:
    """A fitted 2-D map of a gallery: coords[i] is gallery item i's position.

    metric: embedding metric the map (and placement) uses, "cosine" or "l2".
    n_neighbors, min_dist, seed: the UMAP fit parameters (n_neighbors is also the default k
    of ``place``). embedding_dim: width of the embeddings it was fitted on.
    """

    coords: np.ndarray
    metric: str
    n_neighbors: int
    min_dist: float
    seed: int
    embedding_dim: int

    def __post_init__(self) -> None:
        self.coords = np.asarray(self.coords, dtype=np.float32)
        if self.coords.ndim != 2 or self.coords.shape[1] != 2 or len(self.coords) == 0:
            raise ValueError(f"coords must be (N, 2), got {self.coords.shape}")
        if not np.all(np.isfinite(self.coords)):
            raise ValueError("coords contain NaN or infinite values")
        if self.metric not in DISTANCE_METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose from {', '.join(DISTANCE_METRICS)}")

    @property
    def size(self) -> int:
        return len(self.coords)

    def extent(self) -> float:
        """The larger side of the coordinates' bounding box (plot units)."""
        return float(np.ptp(self.coords, axis=0).max())

    def meta(self) -> dict:
        return {
            "format_version": FORMAT_VERSION, "metric": self.metric, "n_neighbors": self.n_neighbors,
            "min_dist": self.min_dist, "seed": self.seed, "embedding_dim": self.embedding_dim,
            "size": self.size,
        }


def fit_projection(embeddings, metric: str = "cosine", n_neighbors: int = 15,
                   min_dist: float = 0.1, seed: int = 0) -> Projection:
    """Fit a seeded 2-D UMAP of (N, dim) gallery embeddings.

    metric: "cosine" (umap's cosine) or "l2" (umap's euclidean). n_neighbors is clamped to
    N - 1 (umap needs neighbours other than the point itself); N must be at least 4.
    Deterministic for a given seed on a given machine (umap runs single-threaded when seeded).
    Takes seconds for a few thousand points once numba's cache is warm.
    """
    vectors = np.asarray(embeddings, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) < 4 or vectors.shape[1] == 0:
        raise ValueError(f"UMAP needs at least 4 embeddings as an (N, dim) array, got shape {vectors.shape}")
    if not np.all(np.isfinite(vectors)):
        raise ValueError("embeddings contain NaN or infinite values")
    if metric not in DISTANCE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(DISTANCE_METRICS)}")
    n_neighbors = int(min(n_neighbors, len(vectors) - 1))
    if n_neighbors < 2:
        raise ValueError(f"n_neighbors must be at least 2, got {n_neighbors}")

    umap = _umap()

    umap_input, umap_metric = vectors, "cosine" if metric == "cosine" else "euclidean"
    if len(vectors) < PRECOMPUTED_BELOW:
        umap_input, umap_metric = _umap_distances(vectors, metric), "precomputed"
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=float(min_dist), metric=umap_metric,
                        random_state=int(seed), n_jobs=1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="using precomputed metric")  # no inverse_transform: never used
        coords = reducer.fit_transform(umap_input)
    return Projection(coords=coords, metric=metric, n_neighbors=n_neighbors, min_dist=float(min_dist),
                      seed=int(seed), embedding_dim=vectors.shape[1])


@functools.cache
def _umap():
    """umap, imported here (slow: numba) because loading or placing never needs it, with numba's
    on-disk cache turned on for its compiled functions.

    umap declares almost none of them ``cache=True``, so every process compiled them again before
    its first projection: 19 s (one thread) for a 60-point gallery, in each build worker and test
    process, measured. Cached, a new process loads them in ~0.1 s; the machine code, and so the
    coordinates, are the same (checked bit for bit). Where no cache location is writable a
    function stays uncached."""
    import umap
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if name == "umap" or name.startswith("umap."):
            for value in list(vars(module).values()):
                if isinstance(value, Dispatcher) and isinstance(getattr(value, "_cache", None), NullCache):
                    try:
                        value.enable_caching()
                    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
                        pass
    return umap


def _umap_distances(vectors: np.ndarray, metric: str) -> np.ndarray:
    """(N, N) float32 distances in umap's metric (``1 - cos``, or Euclidean: not squared), 0 on
    the diagonal."""
    dist = embedding_distance(vectors, vectors, metric)
    if metric == "l2":
        dist = np.sqrt(dist)
    np.fill_diagonal(dist, 0.0)
    return dist.astype(np.float32)


def smooth_knn_sigma(knn_dist: np.ndarray) -> np.ndarray:
    """umap's kernel width for new points: sigma per row of sorted (Q, k) neighbour distances.

    Bisection for sum_{j>=2} exp(-d_j / sigma) = log2(k) (rho = 0), floored at
    1e-3 * mean of the row. Vectorised over rows; returns (Q,) float64.
    """
    dist = np.asarray(knn_dist, dtype=np.float64)
    rows, k = dist.shape
    target = np.log2(k)
    lo = np.zeros(rows)
    hi = np.full(rows, np.inf)
    mid = np.ones(rows)
    active = np.ones(rows, dtype=bool)
    rest = dist[:, 1:]
    for _ in range(BISECTION_STEPS):
        psum = np.exp(-rest / mid[:, None]).sum(axis=1)
        active &= np.abs(psum - target) >= SMOOTH_K_TOLERANCE
        if not active.any():
            break
        too_wide = active & (psum > target)
        too_narrow = active & ~too_wide
        hi = np.where(too_wide, mid, hi)
        lo = np.where(too_narrow, mid, lo)
        mid = np.where(too_wide | (too_narrow & np.isfinite(hi)), (lo + hi) / 2.0, mid)
        mid = np.where(too_narrow & ~np.isfinite(hi), mid * 2.0, mid)
    return np.maximum(mid, MIN_K_DIST_SCALE * dist.mean(axis=1))


def placement_weights(knn_dist: np.ndarray) -> np.ndarray:
    """(Q, k) normalised weights of the k nearest gallery points (see the module docstring)."""
    dist = np.asarray(knn_dist, dtype=np.float64)
    sigma = smooth_knn_sigma(dist)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.exp(-dist / sigma[:, None])
    weights[~np.isfinite(weights)] = 1.0  # sigma 0: every neighbour at distance 0
    same_point = dist <= SAME_POINT_RELATIVE * dist.mean(axis=1, keepdims=True)
    snapped = same_point.any(axis=1)
    if snapped.any():
        # Exactly on a gallery point: take that point alone (the nearest one; ties -> first).
        first = np.argmax(same_point, axis=1)
        weights[snapped] = 0.0
        weights[np.flatnonzero(snapped), first[snapped]] = 1.0
    return weights / weights.sum(axis=1, keepdims=True)


def place(projection: Projection, gallery_emb, query_emb, k: int | None = None) -> np.ndarray:
    """2-D positions for new queries on a fitted map, without refitting.

    projection: the gallery's map. gallery_emb: (N, dim) the embeddings it was fitted on, in
    the same order. query_emb: (Q, dim) or (dim,). k: neighbours used (default the map's
    n_neighbors; clamped to N). Returns (Q, 2) float32, or (2,) for a single 1-D query.
    """
    gallery = np.asarray(gallery_emb)
    query = np.asarray(query_emb)
    single = query.ndim == 1
    if single:
        query = query[None, :]
    if gallery.ndim != 2 or len(gallery) != projection.size:
        raise ValueError(f"gallery_emb has shape {gallery.shape}, the projection was fitted on {projection.size} points")
    if gallery.shape[1] != projection.embedding_dim or query.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"embedding widths differ: projection {projection.embedding_dim}, "
                         f"gallery {gallery.shape[1:]}, query {query.shape[1:]}")
    k = projection.n_neighbors if k is None else k
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), projection.size)

    dist = embedding_distance(query, gallery, projection.metric)
    if projection.metric == "l2":
        dist = np.sqrt(dist)  # umap's euclidean, not squared
    nearest = np.argpartition(dist, k - 1, axis=1)[:, :k] if k < projection.size else np.tile(
        np.arange(projection.size), (len(dist), 1))
    knn_dist = np.take_along_axis(dist, nearest, axis=1)
    order = np.argsort(knn_dist, axis=1, kind="stable")
    nearest = np.take_along_axis(nearest, order, axis=1)
    knn_dist = np.take_along_axis(knn_dist, order, axis=1)

    weights = placement_weights(knn_dist)
    positions = np.einsum("qk,qkc->qc", weights, projection.coords[nearest].astype(np.float64))
    positions = positions.astype(np.float32)
    return positions[0] if single else positions


def save_projection(projection: Projection, path) -> None:
    """Write coords + fit parameters to one .npz at ``path``, atomically (temp file + rename)."""
    atomic_write(path, lambda handle: np.savez(handle, coords=projection.coords, meta=np.array(json.dumps(projection.meta()))))


def load_projection(path) -> Projection:
    """Read a file written by ``save_projection``; ProjectionFileError on any problem."""
    path = Path(path)
    if not path.is_file():
        raise ProjectionFileError(f"{path}: projection file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            coords = archive["coords"]
            meta = json.loads(str(archive["meta"][()]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise ProjectionFileError(f"{path}: not a readable projection file ({type(error).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ProjectionFileError(f"{path}: unsupported projection format {meta.get('format_version') if isinstance(meta, dict) else meta!r}")
    try:
        projection = Projection(
            coords=coords, metric=meta["metric"], n_neighbors=int(meta["n_neighbors"]),
            min_dist=float(meta["min_dist"]), seed=int(meta["seed"]), embedding_dim=int(meta["embedding_dim"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ProjectionFileError(f"{path}: inconsistent projection file ({error})") from None
    if projection.size != meta.get("size"):
        raise ProjectionFileError(f"{path}: holds {projection.size} points, its metadata says {meta.get('size')}")
    return projection
