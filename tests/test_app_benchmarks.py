"""Scores beside their scale and shipped results beside their origin (dml_core.app.benchmarks),
and the Training lab's choices (dml_core.app.lab)."""
import numpy as np
import pandas as pd
import pytest

from dml_core.app import benchmarks as scale, lab
from dml_core.learn.methods import METHODS

REFERENCE = {"random": {"ndcg@10": 0.74, "ndcg@100": 0.8, "mld@10": 0.5, "gap_closed@10": 0.0, "spearman": 0.0},
             "oracle": {"ndcg@10": 1.0, "ndcg@100": 1.0, "mld@10": 0.1, "gap_closed@10": 1.0, "spearman": 1.0}}


def summary() -> pd.DataFrame:
    return pd.DataFrame([
        {"method": "imagenet", "family": "pretrained", "nDCG@10": 0.78, "mld@10": 0.4, "gap closed@10": 0.25},
        {"method": "binary_triplet", "family": "binary", "nDCG@10": 0.85, "mld@10": 0.3, "gap closed@10": 0.5},
        {"method": "log_ratio", "family": "continuous", "nDCG@10": 0.84, "mld@10": 0.26, "gap closed@10": 0.6},
    ])


def test_reference_rows_follow_the_table():
    table, rows = scale.with_reference(summary(), REFERENCE)
    assert rows == 2 and table["method"].tolist()[-2:] == ["random retrieval", "oracle"]
    assert table.iloc[-2]["mld@10"] == 0.5 and table.iloc[-1]["gap closed@10"] == 1.0
    assert "nDCG@100" not in table  # only the table's own columns
    text, _ = scale.with_reference(pd.DataFrame({"method": ["x"], "nDCG@10": ["0.800 ± 0.010"]}), REFERENCE, as_text=True)
    assert text["nDCG@10"].tolist() == ["0.800 ± 0.010", "0.740", "1.000"]


def test_value_axis_runs_from_random_to_the_oracle():
    (low, high), note = scale.value_axis(REFERENCE, "ndcg@10")
    assert low == pytest.approx(0.74 - 0.02 * 0.26) and high == pytest.approx(1 + 0.02 * 0.26)
    assert "random retrieval (0.740)" in note and "oracle (1.000)" in note
    (low, high), _ = scale.value_axis(REFERENCE, "mld@10")  # lower is better: still increasing
    assert low < 0.1 < 0.5 < high


def test_headline_names_the_best_by_gap_closed_with_its_scale():
    text = scale.headline(summary(), REFERENCE, 128)
    assert "log_ratio" in text and "0.840" in text and "0.740" in text  # not binary triplet's higher nDCG
    assert "60%" in text and "25%" in text  # its gap closed, and the untrained baseline's
    assert scale.headline(summary().assign(**{"gap closed@10": np.nan}), REFERENCE, 128) is None


def test_shipped_provenance_names_profile_machine_and_missing_date():
    bench = {"profile": "full", "machine": {"processor": "x86_64", "cpus": 2, "platform": "Linux-x"},
             "timing": {"build_s": 2617.7, "features_img_per_s": 615.2, "query_ms_p50": 10.5, "query_ms_p95": 11.4}}
    text = scale.shipped_provenance(bench)
    assert "profile <code>full</code>" in text and "10,000 training" in text and "3 seeds" in text
    assert "2 CPUs · Linux-x" in text and "does not record when" in text
    assert "2025-01-02" in scale.shipped_provenance({**bench, "generated": "2025-01-02"})
    timing = scale.shipped_timing(bench)
    assert "full build 2618 s" in timing and timing.endswith("Not measured here.")
    assert scale.shipped_timing({"profile": "full"}) is None


def test_build_provenance_says_which_tasks_the_last_build_run_built(tmp_path):
    import json

    from dml_core.pipeline.profiles import get_profile

    assert "last build run" not in scale.build_provenance(tmp_path, get_profile("quick"))  # nothing built yet
    (tmp_path / "build.json").write_text(json.dumps({"profile": "quick", "tasks": ["discs"], "build_s": 130.4, "workers": 2}))
    text = scale.build_provenance(tmp_path, get_profile("quick"))
    assert "the last build run (quick profile: discs) took 130 s with 2 worker(s)" in text


def test_lab_choices_resolve_to_method_ids():
    assert "rank_n_contrast" in lab.lab_methods("head")
    assert set(lab.lab_methods("cnn")) == {m.removesuffix("_ft") for m in METHODS if m.endswith("_ft")}
    assert lab.resolve_choice("rank_n_contrast") == "rank_n_contrast"
    assert lab.resolve_choice("binary_triplet", "hard") == "binary_triplet_hard"
    assert lab.resolve_choice("log_ratio", embedder="cnn") == "log_ratio_ft"
    assert METHODS[lab.resolve_choice("binary_triplet", "all", "cnn")].embedder == "cnn"
    with pytest.raises(ValueError, match="no cnn variant"):
        lab.resolve_choice("contrastive", embedder="cnn")
    with pytest.raises(ValueError, match="miner"):
        lab.resolve_choice("binary_triplet", "hard", "cnn")
    with pytest.raises(ValueError, match="embedder"):
        lab.lab_methods("transformer")


def test_scale_rows_leave_the_other_columns_blank():
    table, _ = scale.with_reference(summary().assign(seeds=[1, 3, 3]), REFERENCE)
    assert table["seeds"].tolist() == ["1", "3", "3", "", ""] and table["family"].tolist()[-2:] == ["", ""]
