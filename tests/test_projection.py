"""UMAP projection: determinism, placement of new points (umap's own kernel), persistence."""
import json

import numpy as np
import pytest

from dml_core.search.projection import (
    Projection,
    ProjectionFileError,
    fit_projection,
    load_projection,
    place,
    placement_weights,
    save_projection,
    smooth_knn_sigma,
)


def clustered_embeddings(n, dim, seed):
    """Six clusters, each stretched along its own direction: clusters plus gradation."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, dim)) * 3
    directions = rng.normal(size=(6, dim))
    cluster = rng.integers(0, 6, n)
    position = rng.uniform(0, 1, n)
    noise = rng.normal(size=(n, dim)) * 0.5
    return (centres[cluster] + 4 * position[:, None] * directions[cluster] + noise).astype(np.float32)


@pytest.fixture(scope="module")
def gallery():
    return clustered_embeddings(300, 16, seed=0)


@pytest.fixture(scope="module")
def projection(gallery):
    return fit_projection(gallery, metric="cosine", n_neighbors=15, min_dist=0.1, seed=3)


def test_fit_is_deterministic_for_a_seed(gallery, projection):
    assert projection.coords.shape == (300, 2) and projection.coords.dtype == np.float32
    again = fit_projection(gallery, metric="cosine", n_neighbors=15, min_dist=0.1, seed=3)
    np.testing.assert_array_equal(again.coords, projection.coords)
    other_seed = fit_projection(gallery, metric="cosine", n_neighbors=15, min_dist=0.1, seed=4)
    assert not np.array_equal(other_seed.coords, projection.coords)


def test_gallery_points_land_on_their_own_coordinates(gallery, projection):
    # Exactly a gallery point: lands on it (umap's rule for points of the training set).
    np.testing.assert_allclose(place(projection, gallery, gallery[:50]), projection.coords[:50], atol=1e-5)
    # Slightly perturbed gallery points: no snapping, the kernel alone must keep them close.
    rng = np.random.default_rng(1)
    nudged = gallery + rng.normal(size=gallery.shape).astype(np.float32) * 0.02
    error = np.linalg.norm(place(projection, gallery, nudged) - projection.coords, axis=1) / projection.extent()
    assert np.median(error) < 0.03 and np.quantile(error, 0.9) < 0.08


def test_held_out_points_land_where_umap_put_them(gallery, projection):
    """Leave-one-out: place each point from the other 299 and compare with its fitted position."""
    errors = []
    for i in range(0, len(gallery), 10):
        keep = np.arange(len(gallery)) != i
        rest = Projection(projection.coords[keep], "cosine", 15, 0.1, 3, gallery.shape[1])
        errors.append(np.linalg.norm(place(rest, gallery[keep], gallery[i]) - projection.coords[i]))
    errors = np.array(errors) / projection.extent()
    assert np.median(errors) < 0.03, errors


def test_placement_kernel_matches_umap():
    import scipy.sparse
    from umap.umap_ import compute_membership_strengths, init_graph_transform, smooth_knn_dist

    rng = np.random.default_rng(2)
    knn_dist = np.sort(rng.uniform(0.05, 1.5, size=(1, 15)), axis=1).astype(np.float32)
    # umap.transform: local_connectivity - 1 = 0, k = n_neighbors. One row, so umap's
    # batch-wide sigma floor equals our per-row floor.
    umap_sigma, umap_rho = smooth_knn_dist(knn_dist, 15.0, local_connectivity=0.0)
    assert umap_rho[0] == 0.0
    np.testing.assert_allclose(smooth_knn_sigma(knn_dist), umap_sigma, rtol=1e-4)

    coords = rng.normal(size=(40, 2)).astype(np.float32)
    neighbours = rng.choice(40, size=(1, 15), replace=False).astype(np.int32)
    rows, cols, vals, _ = compute_membership_strengths(neighbours, knn_dist, umap_sigma, umap_rho, bipartite=True)
    graph = scipy.sparse.coo_matrix((vals, (rows, cols)), shape=(1, 40)).tocsr()
    expected = init_graph_transform(graph, coords)
    ours = placement_weights(knn_dist)[0] @ coords[neighbours[0]]
    np.testing.assert_allclose(ours, expected[0], rtol=1e-4, atol=1e-5)


def test_placement_weights_properties():
    dist = np.array([[0.1, 0.2, 0.4, 0.8], [0.3, 0.3, 0.3, 0.3], [0.0, 0.5, 0.6, 0.7]])
    weights = placement_weights(dist)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.all(np.diff(weights[0]) < 0)  # nearer neighbours weigh more
    np.testing.assert_allclose(weights[1], 0.25)  # equal distances, equal weights
    np.testing.assert_allclose(weights[2], [1, 0, 0, 0])  # on a gallery point
    np.testing.assert_allclose(placement_weights([[0.4]]), [[1.0]])  # k = 1


def test_l2_metric_and_single_query(gallery):
    proj = fit_projection(gallery[:60], metric="l2", n_neighbors=10, seed=0)
    assert proj.metric == "l2" and proj.n_neighbors == 10
    one = place(proj, gallery[:60], gallery[5])
    assert one.shape == (2,)
    np.testing.assert_allclose(one, proj.coords[5], atol=1e-5)
    assert place(proj, gallery[:60], gallery[:3], k=1000).shape == (3, 2)  # k clamped


def test_bad_input(gallery, projection):
    with pytest.raises(ValueError, match="fitted on 300 points"):
        place(projection, gallery[:10], gallery[0])
    with pytest.raises(ValueError, match="widths differ"):
        place(projection, gallery, np.ones(5))
    with pytest.raises(ValueError, match="unknown metric"):
        fit_projection(gallery, metric="manhattan")
    with pytest.raises(ValueError, match="at least 4"):
        fit_projection(gallery[:3])


def test_save_load_round_trip(tmp_path, gallery, projection):
    path = tmp_path / "maps" / "umap.npz"
    save_projection(projection, path)
    assert [p.name for p in path.parent.iterdir()] == ["umap.npz"]  # no temp file left
    loaded = load_projection(path)
    np.testing.assert_array_equal(loaded.coords, projection.coords)
    assert loaded.meta() == projection.meta()
    np.testing.assert_array_equal(place(loaded, gallery, gallery[:5] + 0.1), place(projection, gallery, gallery[:5] + 0.1))


def test_bad_files_raise_one_line_errors(tmp_path, projection):
    with pytest.raises(ProjectionFileError, match="absent.npz: projection file not found"):
        load_projection(tmp_path / "absent.npz")
    good = tmp_path / "good.npz"
    save_projection(projection, good)
    payload = good.read_bytes()
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, coords=projection.coords, meta=np.array([{"evil": 1}], dtype=object))
    wrong_size = tmp_path / "wrong_size.npz"
    np.savez(wrong_size, coords=projection.coords[:10], meta=np.array(json.dumps(projection.meta())))
    for name, content in {"garbage.npz": b"junk" * 20, "truncated.npz": payload[: len(payload) // 2]}.items():
        (tmp_path / name).write_bytes(content)
    for name in ("garbage.npz", "truncated.npz", "pickled.npz", "wrong_size.npz"):
        with pytest.raises(ProjectionFileError) as error:
            load_projection(tmp_path / name)
        assert name in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("metric, umap_name", [("cosine", "cosine"), ("l2", "euclidean")])
def test_small_maps_hand_umap_its_own_distances_precomputed(gallery, metric, umap_name):
    from umap.distances import named_distances

    from dml_core.search.projection import _umap_distances

    distance = named_distances[umap_name]
    expected = np.array([[distance(a, b) for b in gallery[:40]] for a in gallery[:40]])
    np.testing.assert_allclose(_umap_distances(gallery[:40], metric), expected, atol=2e-5)


def test_a_precomputed_map_keeps_umaps_neighbourhoods(gallery, projection):
    import umap

    def neighbours(x, k=10):
        d = ((x[:, None] - x[None]) ** 2).sum(-1) if x.shape[1] == 2 else _cosine(x)
        return np.argsort(d, axis=1)[:, 1:k + 1]

    def _cosine(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1 - x @ x.T

    truth = neighbours(gallery)
    kept = lambda coords: np.mean([len(set(a) & set(b)) / 10 for a, b in zip(neighbours(coords), truth)])
    raw = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=3, n_jobs=1).fit_transform(gallery)
    assert kept(projection.coords) > 0.8 * kept(raw) and kept(projection.coords) > 0.3


_FIRST_PROJECTION_IN_A_NEW_PROCESS = """
import numpy as np
from numba.core import event
from dml_core.search.projection import _umap, fit_projection
_umap()  # the import compiles umap's few eagerly typed functions, cache or not
with event.install_recorder("numba:compile") as compiles:
    coords = fit_projection(np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32), seed=1).coords
print(sum(e.is_start for _, e in compiles.buffer), coords.tobytes().hex())
"""


def test_a_new_process_loads_umaps_compiled_functions_from_numbas_cache_instead_of_compiling_them():
    import subprocess
    import sys
    from pathlib import Path

    def run():
        done = subprocess.run([sys.executable, "-c", _FIRST_PROJECTION_IN_A_NEW_PROCESS], capture_output=True, text=True,
                              timeout=300, cwd=Path(__file__).resolve().parents[1], check=True)
        compiled, coords = done.stdout.split()
        return int(compiled), coords

    first = run()  # compiles and fills the cache if no process has yet
    compiled, coords = run()
    assert compiled == 0
    assert coords == first[1]  # the cached machine code computes what the compiled one did
