"""``python -m dml_core scale`` (dml_core.bench.scale) on small N: the vectors, the measures, the JSON
merge and the BENCHMARKS.md section."""
import json

import numpy as np
import pytest

from dml_core import cli
from dml_core.bench.scale import (
    EF_SWEEP,
    ScaleInputError,
    extend_around,
    make_vectors,
    markdown_lines,
    merge_run,
    run_scale,
    write_section,
)
from dml_core.core.store import ArtifactStore
from dml_core.search.faiss_index import build_index, save_index


def test_extend_around_keeps_the_gallery_and_stays_near_it():
    gallery = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    points, sigma = extend_around(gallery, 3_000, "cosine", seed=1)
    unit = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    np.testing.assert_allclose(points[:50], unit, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-5)
    assert sigma > 0
    # Every new point lies between two gallery embeddings: nearer to the gallery than the gallery to itself.
    to_gallery = np.sqrt(((points[50:, None] - unit[None]) ** 2).sum(-1)).min(1)
    gallery_gaps = np.sqrt(((unit[:, None] - unit[None]) ** 2).sum(-1) + np.eye(50) * 9).min(1)
    assert np.median(to_gallery) < np.median(gallery_gaps)
    again, _ = extend_around(gallery, 3_000, "cosine", seed=1)
    np.testing.assert_array_equal(points, again)  # seeded


def test_vectors_come_from_a_built_model_when_there_is_one(tmp_path):
    store = ArtifactStore(tmp_path)
    assert make_vectors(store, 2_000, 8, 12)[3]["source"] == "synthetic"
    rng = np.random.default_rng(2)
    gallery, queries = rng.normal(size=(40, 8)).astype(np.float32), rng.normal(size=(5, 8)).astype(np.float32)
    with store.writer("pose", "models", "log_ratio-d8-s0", meta={"metric": "l2", "dim": 8}) as tmp:
        np.save(tmp / "gallery.npy", gallery)
        np.save(tmp / "query.npy", queries)
        save_index(build_index(gallery, "l2"), tmp / "index.faiss")
    points, picked, metric, data = make_vectors(store, 2_000, 8, 12)
    assert (data["source"], data["task"], data["model"], metric) == ("model", "pose", "log_ratio-d8-s0", "l2")
    np.testing.assert_array_equal(points[:40], gallery)
    np.testing.assert_array_equal(picked[:5], queries)  # its own queries first, then jittered copies
    assert points.shape == (2_000, 8) and picked.shape == (12, 8)
    with pytest.raises(ScaleInputError, match="has d = 8, not --dim 16"):
        make_vectors(store, 2_000, 16, 12, model="log_ratio-d8-s0")


def test_run_merge_and_markdown(tmp_path):
    store = ArtifactStore(tmp_path / "home")
    first = run_scale(3_000, 8, queries=12, backends=["faiss-flat", "faiss-hnsw"], store=store)
    names = [row["name"] for row in first["backends"]]
    assert names == ["faiss-flat", "faiss-hnsw"] and first["data"]["source"] == "synthetic"
    flat, hnsw = first["backends"]
    assert flat["recall@10"] == 1.0 and hnsw["recall@10"] >= 0.9 and flat["index_bytes"] >= 3_000 * 8 * 4
    assert hnsw["efSearch"] == 128 and "efSearch" not in flat
    sweep = {point["efSearch"]: point["recall@10"] for point in hnsw["ef_sweep"]}
    assert list(sweep) == list(EF_SWEEP) and sweep[128] == hnsw["recall@10"] and sweep[4096] >= sweep[64]
    assert all(row["query_ms_p95"] >= row["query_ms_p50"] > 0 for row in first["backends"])
    path = tmp_path / "docs" / "bench" / "scale.json"
    path.parent.mkdir(parents=True)
    merge_run(path, first)
    second = run_scale(3_000, 8, queries=12, backends=["faiss-ivfpq", "milvus-flat"], store=store)
    merged = merge_run(path, second)
    (run,) = merged["runs"]  # same vectors and settings: one run with every backend's row
    assert [row["name"] for row in run["backends"]] == ["faiss-flat", "faiss-hnsw", "faiss-ivfpq", "milvus-flat"]
    assert next(row for row in run["backends"] if row["name"] == "milvus-flat")["recall@10"] == 1.0
    assert json.loads(path.read_text()) == merged
    section = markdown_lines(merged)
    assert section[0] == "## Scale" and sum(line.startswith("| FAISS") for line in section) == 3
    assert "| FAISS HNSW (efSearch 128) |" in "\n".join(section) and "efSearch = 128;" in "\n".join(section)
    (sweep_line,) = [line for line in section if "at other efSearch" in line]
    assert f"4096: {sweep[4096]:.3f}" in sweep_line
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n## Tuning\n\ntext\n\n## Speed\n\n- fast\n")
    write_section(report, merged)
    write_section(report, merged)  # replaces its own section, once
    text = report.read_text()
    assert text.count("## Scale") == 1 and text.index("## Tuning") < text.index("## Scale") < text.index("## Speed")


@pytest.mark.parametrize("argv, expected", [
    (["--n", "10"], "--n must be between 1,000"),
    (["--n", "5000", "--backends", "faiss-flat,annoy"], "unknown backend(s) annoy"),
    (["--n", "5000", "--milvus-uri", "nowhere"], "not a Milvus URI"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, monkeypatch, capsys, argv, expected):
    monkeypatch.setenv("DML_HOME", str(tmp_path))
    assert cli.main(["scale", *argv, "--json", str(tmp_path / "scale.json")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and expected in err and err.count("\n") == 1, err
