"""FAISS index: exact agreement with brute-force numpy search, persistence, bad files."""
import numpy as np
import pytest

from dml_core.search.faiss_index import build_index, load_index, save_index
from dml_core.search.interface import IndexFileError, search


def brute_force(gallery, queries, k, metric):
    """Reference search in float64 numpy: distances as documented in dml_core.search."""
    g = np.asarray(gallery, dtype=np.float64)
    q = np.asarray(queries, dtype=np.float64)
    if metric == "cosine":
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        dist = 1.0 - q @ g.T
    else:
        dist = ((q[:, None, :] - g[None, :, :]) ** 2).sum(axis=2)
    ids = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(dist, ids, axis=1), ids


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(25, 16)).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("k", [1, 7, 300, 1000])  # 1000 > gallery: clamped to 300
def test_search_equals_brute_force(data, metric, k):
    gallery, queries = data
    index = build_index(gallery, metric)
    for batch in (queries[:1], queries[:5], queries):  # single-thread path and BLAS path
        distances, ids = search(index, batch, k)
        expected_dist, expected_ids = brute_force(gallery, batch, min(k, len(gallery)), metric)
        assert ids.shape == expected_ids.shape == (len(batch), min(k, len(gallery)))
        np.testing.assert_array_equal(ids, expected_ids)
        np.testing.assert_allclose(distances, expected_dist, atol=2e-5, rtol=1e-5)


def test_single_vector_query_and_bad_input(data):
    gallery, queries = data
    index = build_index(gallery, "l2")
    distances, ids = search(index, queries[0], 3)
    assert distances.shape == ids.shape == (1, 3)
    with pytest.raises(ValueError, match="dimension"):
        search(index, np.ones((1, 4)), 3)
    with pytest.raises(ValueError, match="positive integer"):
        search(index, queries, 0)
    with pytest.raises(ValueError, match="unknown metric"):
        build_index(gallery, "manhattan")
    with pytest.raises(ValueError, match="all zeros"):
        build_index(np.zeros((3, 4)), "cosine")
    with pytest.raises(ValueError, match="NaN"):
        build_index(np.full((3, 4), np.nan), "l2")


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_save_load_round_trip(tmp_path, data, metric):
    gallery, queries = data
    index = build_index(gallery, metric)
    path = tmp_path / "sub" / "gallery.faiss"
    save_index(index, path)
    assert [p.name for p in path.parent.iterdir()] == ["gallery.faiss"]  # no temp file left
    loaded = load_index(path)
    assert loaded.metric == metric and loaded.size == len(gallery) and loaded.dim == gallery.shape[1]
    np.testing.assert_array_equal(loaded.vectors(), index.vectors())
    for a, b in zip(search(index, queries, 10), search(loaded, queries, 10)):
        np.testing.assert_array_equal(a, b)
    # Overwriting an existing file replaces it.
    save_index(build_index(gallery[:10], metric), path)
    assert load_index(path).size == 10


def test_missing_and_corrupt_files_raise_one_line_errors(tmp_path, data):
    gallery, _ = data
    missing = tmp_path / "missing.faiss"
    with pytest.raises(IndexFileError, match="missing.faiss: FAISS index file not found"):
        load_index(missing)

    good = tmp_path / "good.faiss"
    save_index(build_index(gallery, "cosine"), good)
    payload = good.read_bytes()
    cases = {
        "garbage.faiss": b"not an index at all" * 5,
        "empty.faiss": b"",
        "truncated.faiss": payload[: len(payload) // 2],
    }
    for name, content in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(IndexFileError) as error:
            load_index(path)
        message = str(error.value)
        assert name in message and "corrupt" in message and "\n" not in message
