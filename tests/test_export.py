"""Downloads and exports (dml_core.serve.export, ``evaluate --per-query``, ``export``): what is written
reads back as what the catalog holds."""
import csv
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from dml_core import cli
from dml_core.core.store import ArtifactStore
from dml_core.serve import export
from dml_core.serve.catalog import load_catalog


@pytest.fixture(scope="module")
def pose(built_home):
    return load_catalog("pose", ArtifactStore(built_home))


def test_results_records_are_one_row_per_model_and_rank(pose):
    models = ["binary_triplet-d128-s0", "log_ratio-d128-s0"]
    hits = pose.hits_for_query(3, models, 5)
    scores = {m: pose.query_scores(m, 3, 5) for m in models}
    records = export.results_records(pose, hits, query={"query": 3}, scores=scores)
    assert len(records) == 10
    assert [(r["model"], r["rank"]) for r in records] == [(m, r) for m in models for r in range(1, 6)]
    for record in records:
        assert record["query"] == 3
        assert record["label_distance"] == pytest.approx(pose.label_dist[3, record["gallery_id"]])
        assert record["ndcg"] == pytest.approx(scores[record["model"]]["ndcg"])
        assert record["activity"] == pose.gallery.meta["activity"][record["gallery_id"]]

    rows = list(csv.DictReader(io.StringIO(export.records_csv(records))))
    assert [int(r["gallery_id"]) for r in rows] == [r["gallery_id"] for r in records]
    assert float(rows[0]["distance"]) == pytest.approx(records[0]["distance"])
    document = json.loads(export.records_json(records, task="pose", k=5))
    assert document["task"] == "pose" and document["results"] == records


def test_uploads_without_labels_and_nan_scores_export_as_empty():
    records = [{"query": "photo.jpg", "label_distance": None, "ndcg": np.float32(np.nan), "rank": np.int64(1)}]
    assert export.records_csv(records).splitlines()[1] == "photo.jpg,,,1"
    assert json.loads(export.records_json(records))["results"][0] == {"query": "photo.jpg", "label_distance": None,
                                                                      "ndcg": None, "rank": 1}


def test_projector_files_load_back_with_the_gallery_shape(pose, tmp_path):
    model = pose.models["log_ratio-d128-s0"]
    written = export.write_projector(pose, model.id, tmp_path / "projector")
    assert sorted(p.name for p in written) == sorted(export.PROJECTOR_FILES)
    tensors = export.read_tensors_tsv((tmp_path / "projector" / "tensors.tsv").read_text())
    assert tensors.shape == model.gallery.shape
    np.testing.assert_allclose(tensors, model.gallery, rtol=1e-5, atol=1e-6)
    lines = (tmp_path / "projector" / "metadata.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    assert len(lines) == len(pose.gallery) + 1 and header[0] == "gallery_id"
    assert {a for a in pose.task.attributes if a in pose.gallery.meta} <= set(header)
    assert all(len(line.split("\t")) == len(header) for line in lines[1:])
    activity = header.index("activity")
    assert [line.split("\t")[activity] for line in lines[1:]] == [str(a) for a in pose.gallery.meta["activity"]]
    config = (tmp_path / "projector" / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "tensors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config
    tile = int(config.split("single_image_dim: ")[1].split()[0])
    sprite = Image.open(tmp_path / "projector" / "sprite.jpg")
    per_row = int(np.ceil(np.sqrt(len(pose.gallery))))
    assert sprite.size == (per_row * tile, per_row * tile)


def test_projector_zip_holds_the_same_files(pose):
    archive = zipfile.ZipFile(io.BytesIO(export.projector_zip(pose, "imagenet", sprite=False)))
    names = {n.split("/", 1)[1]: n for n in archive.namelist()}
    assert set(names) == {"tensors.tsv", "metadata.tsv", "projector_config.pbtxt"}
    tensors = export.read_tensors_tsv(archive.read(names["tensors.tsv"]).decode())
    assert tensors.shape == pose.models["imagenet"].gallery.shape
    with pytest.raises(ValueError, match="unknown model"):
        export.projector_files(pose, "no-such-model")


def test_per_query_scores_average_to_the_stored_metrics(pose):
    model = pose.models["log_ratio-d128-s0"]
    result = export.per_query_evaluation(model, pose.label_dist)
    stored = model.meta["metrics"]
    for key in ("ndcg@10", "ndcg@100", "mld@10", "gap_closed@10", "spearman"):
        assert len(result["per_query"][key]) == len(pose.queries)
        assert result["means"][key] == pytest.approx(np.nanmean(result["per_query"][key]))
        assert result["means"][key] == pytest.approx(stored[key], abs=1e-4), key  # the index ranks as the exact search
    assert result["reference"]["random"]["gap_closed@10"] == 0 and result["reference"]["oracle"]["gap_closed@10"] == 1


def test_evaluate_per_query_json_means_equal_the_records(use_built_home, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--task", "pose", "--models", "log_ratio-d128-s0", "imagenet",
                     "--per-query", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "gap closed@10" in printed.splitlines()[0] and "(random)" in printed and "(oracle)" in printed
    document = json.loads(out.read_text())
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    assert set(document["per_query"]) == {"log_ratio-d128-s0", "imagenet"}
    for model_id, entry in document["per_query"].items():
        records = entry["queries"]
        assert [r["query"] for r in records] == list(range(len(catalog.queries)))
        for key in ("ndcg@10", "mld@10", "spearman", "gap_closed@10"):
            values = [r[key] for r in records if r[key] is not None]
            assert entry["summary"][key] == pytest.approx(np.mean(values)), (model_id, key)
            assert document["models"][model_id][key] == pytest.approx(np.mean(values), abs=5e-5)
        # a record is that query's own score: recompute one from the catalog
        assert records[2]["ndcg@10"] == pytest.approx(catalog.query_scores(model_id, 2, 10)["ndcg"])
    assert document["reference"]["random"]["ndcg@10"] < document["models"]["log_ratio-d128-s0"]["ndcg@10"]


def test_evaluate_per_query_needs_a_json_file(use_built_home, capsys):
    assert cli.main(["evaluate", "--task", "pose", "--per-query"]) == 1
    assert "--per-query needs --json" in capsys.readouterr().err


def test_export_command_writes_projector_tsv(use_built_home, tmp_path, capsys):
    out = tmp_path / "tsv"
    assert cli.main(["export", "--task", "pose", "--model", "binary_triplet-d128-s0", "--out", str(out)]) == 0
    assert "tensors.tsv" in capsys.readouterr().out
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    tensors = export.read_tensors_tsv((out / "tensors.tsv").read_text())
    assert tensors.shape == (len(catalog.gallery), 128)
    assert len((out / "metadata.tsv").read_text().splitlines()) == len(catalog.gallery) + 1
    assert cli.main(["export", "--task", "pose", "--model", "nope", "--out", str(out)]) == 1
    assert "unknown model" in capsys.readouterr().err
