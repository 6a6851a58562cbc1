"""Ordering evidence per query and the query finder, against brute-force computations."""
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import METRIC_FAMILIES
from dml_core.evaluate import ordering as O
from dml_core.evaluate.metrics import evaluate
from dml_core.serve.catalog import load_catalog


@pytest.fixture(scope="module")
def catalog(built_home):
    return load_catalog("pose", ArtifactStore(built_home))


def _brute_force(model, query_vector, gallery, labels):
    if model.meta["metric"] == "cosine":
        q = query_vector / np.linalg.norm(query_vector)
        g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        distances = 1 - g @ q
    else:
        distances = ((gallery - query_vector) ** 2).sum(1)
    return distances, spearmanr(distances, labels)[0]


def test_ordering_matches_a_brute_force_computation(catalog):
    for model_id in catalog.model_ids(main_only=True):
        model = catalog.models[model_id]
        for index in (0, 5):
            result = O.ordering(catalog, model_id, O.QueryRef("query", index), k=10)
            labels = catalog.label_dist[index].astype(np.float64)
            distances, rho = _brute_force(model, np.asarray(model.query[index], np.float64), np.asarray(model.gallery, np.float64), labels)
            np.testing.assert_allclose(result.label_distance, labels)
            np.testing.assert_allclose(result.embedding_distance, distances, atol=1e-5)
            assert result.spearman == pytest.approx(rho, abs=1e-6)
            top = np.argsort(distances, kind="stable")[:10]
            assert set(result.gallery_index[result.top]) == set(top)
            assert result.mld == pytest.approx(labels[top].mean(), abs=1e-9)
            assert result.random_mld == pytest.approx(labels.mean()) and result.oracle_mld == pytest.approx(np.sort(labels)[:10].mean())
            assert result.gap_closed == pytest.approx((labels.mean() - result.mld) / (labels.mean() - np.sort(labels)[:10].mean()))
            # the same numbers as the benchmark's per-query evaluation
            row = O.per_query_scores(catalog, model_id, 10).iloc[index]
            assert row["ndcg"] == pytest.approx(result.ndcg) and row["spearman"] == pytest.approx(result.spearman)


def test_a_gallery_image_as_query_is_not_ranked_against_itself(catalog):
    model_id = catalog.model_ids(main_only=True)[0]
    ref = O.QueryRef.parse("g3", catalog)
    result = O.ordering(catalog, model_id, ref, k=5)
    assert 3 not in result.gallery_index and len(result.gallery_index) == len(catalog.gallery) - 1
    expected = catalog.task.label_distance(catalog.gallery.labels[3:4], catalog.gallery.labels)[0]
    np.testing.assert_allclose(result.label_distance, np.delete(expected, 3), atol=1e-6)
    indices, distances = O.oracle_ranking(catalog, ref, 5)
    assert 3 not in indices and np.all(np.diff(distances) >= 0)


@pytest.mark.parametrize("text, message", [("../../etc/passwd", "not a query number"), ("g99999", "no gallery image"),
                                           ("-1", "not a query number"), ("99999", "no query image"), ("", "not a query")])
def test_query_tokens_are_checked(catalog, text, message):
    with pytest.raises(ValueError, match=message):
        O.QueryRef.parse(text, catalog)
    assert O.QueryRef.parse("7", catalog) == O.QueryRef("query", 7) and O.QueryRef("gallery", 7).token == "g7"


def test_finder_counts_and_sorts_a_hand_made_example():
    differences = pd.DataFrame({"query": range(6), "a": 0.0, "b": 0.0, "advantage": [0.3, -0.02, 0.005, np.nan, -0.2, 0.011]})
    assert O.win_tie_loss(differences["advantage"], tie=0.01) == {"wins": 2, "ties": 1, "losses": 2, "undefined": 1, "tie": 0.01}
    assert O.win_tie_loss(differences["advantage"], tie=0.05) == {"wins": 1, "ties": 3, "losses": 1, "undefined": 1, "tie": 0.05}
    assert O.sorted_by_advantage(differences, "a")["query"].tolist() == [0, 5, 2, 1, 4, 3]
    assert O.sorted_by_advantage(differences, "b")["query"].tolist() == [4, 1, 2, 5, 0, 3]


def test_finder_differences_follow_each_metrics_direction(catalog):
    a, b = catalog.model_ids(main_only=True)[:2]
    for metric, (_, sign) in METRIC_FAMILIES.items():
        frame = O.query_differences(catalog, a, b, metric, k=10)
        scores = {m: evaluate(catalog.models[m].query, catalog.models[m].gallery, catalog.label_dist, ks=(10,),
                              metric=catalog.models[m].meta["metric"])["per_query"] for m in (a, b)}
        key = "spearman" if metric == "spearman" else f"{metric}@10"
        np.testing.assert_allclose(frame["advantage"], sign * (scores[a][key] - scores[b][key]))
    mld = O.query_differences(catalog, a, b, "mld")
    assert ((mld["a"] < mld["b"]) == (mld["advantage"] > 0)).all()        # lower distance = better
    with pytest.raises(ValueError, match="unknown metric"):
        O.query_differences(catalog, a, b, "accuracy")


def test_binned_trend_shows_monotone_and_step_shapes():
    labels = np.linspace(0, 1, 200)
    _, monotone = O.binned_trend(labels, 2 * labels, bins=10)
    _, step = O.binned_trend(labels, (labels > 0.2).astype(float), bins=10)
    assert np.all(np.diff(monotone) > 0)
    assert np.count_nonzero(np.diff(step)) == 1
