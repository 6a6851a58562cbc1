"""Search backends (dml_core.search): Milvus Lite FLAT = FAISS flat on a built gallery, a real
Milvus server, derived copies written idempotently, HNSW recall, one-line errors."""
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ranking_check import assert_top_k_up_to_ties

from dml_core import cli
from dml_core.core.store import ArtifactStore
from dml_core.search import milvus as milvus_index
from dml_core.search.backends import parse_backend
from dml_core.search.distances import embedding_distance
from dml_core.search.faiss_index import build_index, hnsw_ef_search, load_index, save_index
from dml_core.search.gallery import open_gallery_index, sync_gallery_indexes
from dml_core.search.interface import search
from dml_core.serve.catalog import load_catalog

SERVER_CHECK = Path(__file__).with_name("milvus_server_check.py")
TOP = 10


@pytest.fixture
def lite(tmp_path):
    """A Milvus Lite backend on a file of this test only, released afterwards."""
    backend = parse_backend("milvus", str(tmp_path / "lite" / "gallery.db"))
    yield backend
    milvus_index.disconnect(backend.milvus_uri)


def test_milvus_lite_flat_equals_faiss_flat_on_the_built_gallery(built_home, lite):
    store = ArtifactStore(built_home)
    faiss_catalog = load_catalog("pose", store, parse_backend("faiss"))
    milvus_catalog = load_catalog("pose", store, lite)
    assert not milvus_catalog.damaged and set(milvus_catalog.models) == set(faiss_catalog.models)
    metrics = set()
    for model_id, model in faiss_catalog.models.items():
        assert type(milvus_catalog.models[model_id].index).__name__ == "MilvusIndex"
        reference = embedding_distance(model.query, model.gallery, model.meta["metric"])
        distances, ids = milvus_catalog.search(model_id, model.query, TOP)
        assert_top_k_up_to_ties(ids, distances, reference, atol=1e-5)
        metrics.add(model.meta["metric"])
    assert metrics == {"cosine", "l2"}  # both distance conventions were compared
    # The catalog wrote every collection; the build's stage now finds them current.
    assert sync_gallery_indexes(store, ["pose"], lite, progress=False) == {}


def fake_model(store: ArtifactStore, gallery: np.ndarray, metric: str = "cosine", model_id: str = "m-d4-s0") -> None:
    with store.writer("toy", "data", "gallery", meta={"profile": "tiny"}):
        pass
    with store.writer("toy", "models", model_id, meta={"metric": metric, "profile": "tiny"}) as tmp:
        np.save(tmp / "gallery.npy", gallery)
        save_index(build_index(gallery, metric), tmp / "index.faiss")


def test_derived_copies_are_rewritten_only_when_the_gallery_changes(tmp_path, lite):
    store = ArtifactStore(tmp_path / "home")
    rng = np.random.default_rng(1)
    fake_model(store, rng.normal(size=(300, 4)).astype(np.float32))
    for backend in (lite, parse_backend("faiss-hnsw")):
        assert sync_gallery_indexes(store, ["toy"], backend, progress=False) == {"toy": ["m-d4-s0"]}
        assert sync_gallery_indexes(store, ["toy"], backend, progress=False) == {}  # current: nothing to do
    client = milvus_index.connect(lite.milvus_uri)
    first = client.list_collections()
    assert len(first) == 1
    client.create_collection(f"{first[0]}_wdeadbeef", dimension=4)  # what a killed writer leaves
    new_gallery = rng.normal(size=(200, 4)).astype(np.float32)
    fake_model(store, new_gallery)  # the model was retrained: its gallery changed
    assert sync_gallery_indexes(store, ["toy"], lite, progress=False) == {"toy": ["m-d4-s0"]}
    (current,) = client.list_collections()  # the old version and the leftover are gone
    assert current != first[0]
    index = open_gallery_index(store, "toy", "m-d4-s0", lite, write_missing=False)
    assert index.size == 200
    _, ids = search(index, new_gallery[:5], 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(5))
    hnsw = open_gallery_index(store, "toy", "m-d4-s0", parse_backend("faiss-hnsw"))
    assert hnsw.kind == "hnsw" and hnsw.size == 200


def clustered(n: int, dim: int, seed: int, centres: int = 1000, spread: float = 0.35) -> np.ndarray:
    """Points around random centres on the unit sphere (seeded)."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(centres, dim))[rng.integers(centres, size=n)] + spread * rng.normal(size=(n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_hnsw_recall_at_10_on_100k_vectors():
    # d = 4 keeps the build to a few seconds on 2 cores; the Scale benchmark measures d = 128.
    points = clustered(100_200, 4, seed=0)
    gallery, queries = points[:100_000], points[100_000:]  # queries drawn like the gallery, not in it
    _, exact = search(build_index(gallery, "cosine", "flat"), queries, TOP)
    hnsw = build_index(gallery, "cosine", "hnsw")
    assert hnsw.kind == "hnsw"
    _, found = search(hnsw, queries, TOP)
    recall = np.mean([len(set(a) & set(b)) / TOP for a, b in zip(found, exact)])
    assert recall >= 0.95, recall


def test_hnsw_search_widens_with_the_gallery():
    assert [hnsw_ef_search(n) for n in (1, 2_000, 6_250, 6_251, 100_000, 1_000_000)] == [128, 128, 128, 256, 512, 2048]
    sizes = np.unique(np.geomspace(1, 10**8, 300).astype(int))
    widths = [hnsw_ef_search(int(n)) for n in sizes]
    assert all(a <= b for a, b in zip(widths, widths[1:]))              # never narrower for a larger gallery
    assert all(w & (w - 1) == 0 for w in widths)                         # powers of two
    assert hnsw_ef_search(1_000, k=300) == 300                          # at least k


def test_a_faiss_hnsw_index_keeps_the_search_width_of_its_size(tmp_path):
    index = build_index(clustered(7_000, 4, seed=4), "cosine", "hnsw")
    assert index.faiss_index.hnsw.efSearch == hnsw_ef_search(7_000) == 256
    save_index(index, tmp_path / "index.faiss")
    assert load_index(tmp_path / "index.faiss").faiss_index.hnsw.efSearch == 256


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_round_trip(tmp_path, kind):
    gallery = clustered(2_000, 16, seed=2, centres=50)
    index = build_index(gallery, "l2", kind)
    save_index(index, tmp_path / "index.faiss")
    loaded = load_index(tmp_path / "index.faiss")
    assert (loaded.kind, loaded.metric, loaded.size) == (kind, "l2", 2_000)
    for a, b in zip(search(index, gallery[:7], 5), search(loaded, gallery[:7], 5)):
        np.testing.assert_array_equal(a, b)
    _, exact = search(build_index(gallery, "l2"), gallery[:50], TOP)
    _, found = search(loaded, gallery[:50], TOP)
    assert np.mean([len(set(a) & set(b)) / TOP for a, b in zip(found, exact)]) > 0.5  # far above chance (0.005)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # free once the socket closes: nothing listens there


@pytest.mark.parametrize("argv, expected", [
    (["--milvus-uri", f"http://127.0.0.1:{closed_port()}"], "cannot reach Milvus at http://127.0.0.1:"),
    (["--milvus-uri", "elsewhere"], "not a Milvus URI"),
    (["--index", "faiss", "--milvus-uri", "http://127.0.0.1:1"], "use --index milvus"),
])
def test_bad_backend_choices_are_one_line_errors(use_built_home, capsys, argv, expected):
    assert cli.main(["evaluate", "--task", "pose", *argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err


def test_real_milvus_server(built_home, tmp_path):
    """Start a Milvus standalone server, write two galleries into it, query, stop (~20 s)."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode:
        pytest.skip("no private network namespace here (unshare --net), and Milvus binds every interface")
    models = ["log_ratio-d128-s0", "rank_n_contrast-d128-s0"]  # a cosine and an l2 model
    proc = subprocess.Popen(["unshare", "--net", sys.executable, str(SERVER_CHECK), str(built_home), str(tmp_path), *models],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the check, and the server it started, share its process group
        proc.communicate()
        pytest.fail("the Milvus server check did not finish in 240 s")
    if proc.returncode == 77:
        pytest.skip(err.decode().strip().splitlines()[-1])
    assert proc.returncode == 0, err.decode()[-3000:]
    catalog = load_catalog("pose", ArtifactStore(built_home))
    with np.load(tmp_path / "results.npz") as results:
        for model_id in models:
            model = catalog.models[model_id]
            reference = embedding_distance(model.query, model.gallery, model.meta["metric"])
            assert_top_k_up_to_ties(results[f"faiss:{model_id}:ids"], results[f"faiss:{model_id}:distances"], reference, atol=1e-5)
            assert_top_k_up_to_ties(results[f"milvus:{model_id}:ids"], results[f"milvus:{model_id}:distances"], reference, atol=1e-5)
            assert str(results[f"milvus:{model_id}:collection"]).startswith("dml_pose__")
