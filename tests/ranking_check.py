"""Comparing two engines' top-k hits when their float arithmetic differs: near-tied hits may swap."""
import numpy as np


def all_distances(distances: np.ndarray, ids: np.ndarray, n_gallery: int) -> np.ndarray:
    """A search over the whole gallery (k = n_gallery) as a (queries, gallery) matrix of distances."""
    matrix = np.full((len(ids), n_gallery), np.nan)
    np.put_along_axis(matrix, ids, distances, axis=1)
    assert not np.isnan(matrix).any(), "the reference search did not return every gallery item"
    return matrix


def assert_top_k_up_to_ties(ids: np.ndarray, distances: np.ndarray, reference: np.ndarray, atol: float = 1e-4,
                            rtol: float = 1e-5) -> None:
    """``ids`` and ``distances`` (queries, k) are a correct top-k under ``reference`` (queries, gallery): distinct hits,
    each at its reference distance, and those distances the k smallest — so only near-ties can differ in order."""
    ids, distances = np.atleast_2d(ids), np.atleast_2d(distances)
    k = ids.shape[1]
    assert all(len(set(row)) == k for row in ids.tolist()), "a hit is repeated"
    np.testing.assert_allclose(np.take_along_axis(reference, ids, axis=1), distances, atol=atol, rtol=rtol)
    np.testing.assert_allclose(np.sort(reference, axis=1)[:, :k], distances, atol=atol, rtol=rtol)
