"""Embedding distances as every engine returns them, computed exactly (the reference for the engines and metrics)."""
from __future__ import annotations

import numpy as np

from dml_core.core.vocabulary import DISTANCE_METRICS


def embedding_distance(a, b, metric: str = "cosine") -> np.ndarray:
    """(len(a), len(b)) float64 distances between embeddings, smaller = nearer.

    cosine: ``1 - cos(a_i, b_j)`` in [0, 2] (rows are L2-normalised first; zero rows refused).
    l2: squared Euclidean ``||a_i - b_j||^2`` (same ranking as Euclidean), clipped at 0
        against rounding.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings must be 2-D with equal widths, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("embeddings contain NaN or infinite values")
    if metric == "cosine":
        a = _l2_normalise(a, "query embeddings")
        b = _l2_normalise(b, "gallery embeddings")
        return np.clip(1.0 - a @ b.T, 0.0, 2.0)
    if metric == "l2":
        squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
        return np.maximum(squared, 0.0)
    raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(DISTANCE_METRICS)}")


def _l2_normalise(x: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError(f"{name}: row {int(np.argmin(norms[:, 0]))} is all zeros, cosine distance undefined")
    return x / norms
