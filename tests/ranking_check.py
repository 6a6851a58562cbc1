"""Comparing two engines' top-k hits when their float arithmetic differs: near-tied hits may swap."""
import numpy as np


def assert_top_k_up_to_ties(ids: np.ndarray, distances: np.ndarray, reference: np.ndarray, atol: float = 1e-4,
                            rtol: float = 1e-5) -> None:
    """``ids`` and ``distances`` (queries, k) are a correct top-k under ``reference`` (queries, gallery), the exact
    distances (``search.distances.embedding_distance``): distinct hits, each at its reference distance, and those distances
    the k smallest — so only near-ties can differ in order."""
    ids, distances = np.atleast_2d(ids), np.atleast_2d(distances)
    k = ids.shape[1]
    assert all(len(set(row)) == k for row in ids.tolist()), "a hit is repeated"
    np.testing.assert_allclose(np.take_along_axis(reference, ids, axis=1), distances, atol=atol, rtol=rtol)
    np.testing.assert_allclose(np.sort(reference, axis=1)[:, :k], distances, atol=atol, rtol=rtol)
