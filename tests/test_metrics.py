"""Metrics against hand-computed examples and properties (DESIGN.md section 5)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from dml_core.evaluate.metrics import dcg_at_k, evaluate, gap_closed, mean_label_distance_at_k, ndcg_at_k, spearman
from dml_core.search.distances import embedding_distance

LOG2_3 = math.log2(3)
LOG2_5 = math.log2(5)

# One query, gallery of 4. Label distances chosen so relevances 1/(1+d) are round numbers:
# d = 1 -> r = 0.5, d = 0 -> r = 1, d = 3 -> r = 0.25, d = 0.25 -> r = 0.8.
RANKED = [1.0, 0.0, 3.0, 0.25]
IDEAL = [0.0, 0.25, 1.0, 3.0]


def test_mean_label_distance_by_hand():
    assert mean_label_distance_at_k(RANKED, 1) == pytest.approx(1.0)
    assert mean_label_distance_at_k(RANKED, 3) == pytest.approx((1.0 + 0.0 + 3.0) / 3)
    assert mean_label_distance_at_k(IDEAL, 3) == pytest.approx((0.0 + 0.25 + 1.0) / 3)


def test_ndcg_by_hand():
    # DCG@3 = 0.5/log2(2) + 1/log2(3) + 0.25/log2(4) = 0.5 + 0.63093 + 0.125 = 1.25593
    dcg = 0.5 / 1 + 1.0 / LOG2_3 + 0.25 / 2
    # ideal order d = 0, 0.25, 1: IDCG@3 = 1 + 0.8/log2(3) + 0.5/2 = 1.75474
    idcg = 1.0 + 0.8 / LOG2_3 + 0.5 / 2
    assert dcg_at_k(RANKED, 3) == pytest.approx(dcg)
    assert ndcg_at_k(RANKED, RANKED, 3) == pytest.approx(dcg / idcg)  # ~0.71573
    assert dcg / idcg == pytest.approx(0.71573, abs=1e-5)
    # nDCG@1: first item has r = 0.5, ideal first item r = 1 -> 0.5
    assert ndcg_at_k(RANKED, IDEAL, 1) == pytest.approx(0.5)


def test_ndcg_with_ties_in_label_distance():
    # Label distances 0, 0.5, 0.5, 2 (two items tied at 0.5, r = 1/1.5 = 2/3 each).
    ranked = [0.5, 0.0, 2.0, 0.5]
    # DCG@2 = (2/3)/1 + 1/log2(3); ideal order 0, 0.5 (either of the tied ones) -> IDCG@2 = 1 + (2/3)/log2(3)
    expected = (2 / 3 + 1 / LOG2_3) / (1 + (2 / 3) / LOG2_3)
    assert ndcg_at_k(ranked, ranked, 2) == pytest.approx(expected)
    # Ranking that swaps the two tied items is still ideal: nDCG exactly 1 at every K.
    for k in range(1, 5):
        assert ndcg_at_k([0.0, 0.5, 0.5, 2.0], ranked, k) == pytest.approx(1.0)
    # All distances tied: every ranking is ideal.
    assert ndcg_at_k([0.3, 0.3, 0.3], [0.3, 0.3, 0.3], 2) == pytest.approx(1.0)


def test_k_larger_than_gallery_is_clamped():
    # K = 10 on a gallery of 4 is nDCG@4:
    # DCG = 0.5 + 1/log2(3) + 0.25/2 + 0.8/log2(5); IDCG = 1 + 0.8/log2(3) + 0.5/2 + 0.25/log2(5)
    dcg = 0.5 + 1 / LOG2_3 + 0.25 / 2 + 0.8 / LOG2_5
    idcg = 1 + 0.8 / LOG2_3 + 0.5 / 2 + 0.25 / LOG2_5
    assert ndcg_at_k(RANKED, RANKED, 10) == pytest.approx(dcg / idcg)  # ~0.85935
    assert ndcg_at_k(RANKED, RANKED, 10) == ndcg_at_k(RANKED, RANKED, 4)
    assert mean_label_distance_at_k(RANKED, 10) == pytest.approx(4.25 / 4)


def test_perfect_ranking_is_one_and_reversed_is_lower():
    rng = np.random.default_rng(0)
    d = np.sort(rng.uniform(0, 2, size=(5, 30)), axis=1)
    np.testing.assert_allclose(ndcg_at_k(d, d, 10), 1.0)
    reversed_ndcg = ndcg_at_k(d[:, ::-1], d, 10)
    assert np.all(reversed_ndcg < 1.0)
    assert np.all(mean_label_distance_at_k(d[:, ::-1], 10) > mean_label_distance_at_k(d, 10))


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="negative"):
        mean_label_distance_at_k([0.1, -0.2], 1)
    with pytest.raises(ValueError, match="NaN"):
        ndcg_at_k([0.1, np.nan], [0.1, 0.2], 1)
    with pytest.raises(ValueError, match="positive integer"):
        ndcg_at_k([0.1, 0.2], [0.1, 0.2], 0)
    with pytest.raises(ValueError, match="unknown metric"):
        embedding_distance(np.ones((1, 2)), np.ones((1, 2)), "manhattan")
    with pytest.raises(ValueError, match="all zeros"):
        embedding_distance(np.zeros((1, 2)), np.ones((1, 2)), "cosine")
    with pytest.raises(ValueError, match="expected"):
        evaluate(np.ones((2, 3)), np.ones((4, 3)), np.zeros((4, 2)))


def test_spearman_by_hand_and_ties():
    # Ranks of [0.1, 0.4, 0.2, 0.3] are 1, 4, 2, 3; of [1, 2, 3, 4] 1, 2, 3, 4.
    # sum d^2 = 0 + 4 + 1 + 1 = 6; rho = 1 - 6*6 / (4*(16-1)) = 1 - 36/60 = 0.4
    assert spearman([0.1, 0.4, 0.2, 0.3], [1, 2, 3, 4]) == pytest.approx(0.4)
    # Ties: [0, 1, 1, 2] has average ranks 1, 2.5, 2.5, 4; against 1, 2, 3, 4:
    # centred x = -1.5, 0, 0, 1.5; centred y = -1.5, -0.5, 0.5, 1.5
    # rho = (2.25 + 2.25) / sqrt(4.5 * 5) = 4.5 / sqrt(22.5) = 0.94868
    assert spearman([0, 1, 1, 2], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # Constant label distances: undefined, NaN (left out of means).
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5]))
    rows = spearman(np.array([[0.1, 0.4, 0.2, 0.3], [1, 2, 3, 4]]), np.array([[1, 2, 3, 4], [4, 3, 2, 1]]))
    np.testing.assert_allclose(rows, [0.4, -1.0])


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, size=(3, 40)).astype(float)  # many ties
    b = a + rng.normal(0, 2, size=a.shape)
    ours = spearman(a, b)
    for q in range(3):
        assert ours[q] == pytest.approx(spearmanr(a[q], b[q]).statistic)


def _line_embeddings(positions):
    """2-D points on the x axis: L2 distance from the origin ranks them by position exactly."""
    return np.stack([np.asarray(positions, dtype=float), np.zeros(len(positions))], axis=1)


def test_evaluate_by_hand():
    query = np.zeros((1, 2))
    gallery = _line_embeddings([1, 2, 3, 4])  # ranked by gallery index
    label_dist = np.array([RANKED])
    result = evaluate(query, gallery, label_dist, ks=(1, 3, 10), metric="l2")
    assert result["ndcg@3"] == pytest.approx((0.5 + 1 / LOG2_3 + 0.125) / (1 + 0.8 / LOG2_3 + 0.25))
    assert result["mld@1"] == pytest.approx(1.0)
    assert result["mld@3"] == pytest.approx(4 / 3)
    assert result["ndcg@10"] == pytest.approx(ndcg_at_k(RANKED, RANKED, 4))
    # Embedding distances 1, 4, 9, 16 against label distances 1, 0, 3, 0.25:
    # ranks 1,2,3,4 vs 3,1,4,2 -> sum d^2 = 4+1+1+4 = 10 -> rho = 1 - 60/60 = 0
    assert result["spearman"] == pytest.approx(0.0)
    assert result["per_query"]["mld@3"].shape == (1,)
    # Oracle: the K smallest label distances; random: the exact expectation.
    assert result["oracle"]["mld@3"] == pytest.approx((0 + 0.25 + 1) / 3)
    assert result["oracle"]["ndcg@3"] == 1.0
    assert result["random"]["mld@1"] == pytest.approx(4.25 / 4)
    mean_relevance = (0.5 + 1 + 0.25 + 0.8) / 4
    assert result["random"]["ndcg@1"] == pytest.approx(mean_relevance / 1.0)
    assert result["ks"] == [1, 3, 10] and result["gallery_size"] == 4


def test_gap_closed_by_hand():
    # label distances 0, 1, 2, 3 (mean 1.5); K = 2: the oracle's mld is 0.5
    label_dist = np.array([[3.0, 0.0, 2.0, 1.0]])
    gallery_by_rank = {"oracle": [1, 3, 2, 0], "random-like": [1, 0, 3, 2], "worst": [0, 2, 3, 1]}
    expected = {"oracle": 1.0, "random-like": 0.0, "worst": -1.0}       # mld@2 = 0.5, 1.5, 2.5
    for name, order in gallery_by_rank.items():
        positions = np.empty(4)
        positions[order] = [1, 2, 3, 4]                                # ranked by embedding distance
        result = evaluate(np.zeros((1, 2)), _line_embeddings(positions), label_dist, ks=(2,), metric="l2")
        assert result["gap_closed@2"] == pytest.approx(expected[name]), name
        assert result["per_query"]["gap_closed@2"][0] == pytest.approx(expected[name])
    assert result["random"]["gap_closed@2"] == 0.0 and result["oracle"]["gap_closed@2"] == 1.0
    assert gap_closed(0.7, 0.7, 1.0) == 0.0 and gap_closed(1.0, 0.7, 1.0) == 1.0     # nDCG: best = 1
    assert math.isnan(gap_closed(0.3, 0.3, 0.3))                                     # nothing to close


def test_normalised_ndcg_is_zero_in_expectation_for_random_rankings():
    import itertools

    d = np.array(RANKED)
    scores = []
    for perm in itertools.permutations(range(4)):
        positions = np.empty(4)
        positions[list(perm)] = [1, 2, 3, 4]
        scores.append(evaluate(np.zeros((1, 2)), _line_embeddings(positions), d[None], ks=(2,), metric="l2")["ndcg_norm@2"])
    assert np.mean(scores) == pytest.approx(0.0, abs=1e-12) and max(scores) == pytest.approx(1.0)


def test_evaluate_random_reference_is_the_expectation():
    """Average over all 24 permutations of a 4-item gallery equals the closed form."""
    import itertools

    d = np.array(RANKED)
    perms = np.array(list(itertools.permutations(range(4))))
    brute = ndcg_at_k(d[perms], np.tile(d, (len(perms), 1)), 2).mean()
    result = evaluate(np.zeros((1, 2)), _line_embeddings([1, 2, 3, 4]), d[None, :], ks=(2,), metric="l2")
    assert result["random"]["ndcg@2"] == pytest.approx(brute)


def test_evaluate_ties_in_embedding_distance_keep_gallery_order():
    # Gallery items 0 and 1 share one embedding; item 0 (label distance 2) must come first.
    query = np.zeros((1, 2))
    gallery = _line_embeddings([1, 1, 5])
    result = evaluate(query, gallery, np.array([[2.0, 0.0, 1.0]]), ks=(1, 2), metric="l2")
    assert result["mld@1"] == pytest.approx(2.0)
    assert result["mld@2"] == pytest.approx(1.0)


def test_evaluate_cosine_and_perfect_embedding():
    # When label distance is a monotone function of the embedding distance, the model is perfect.
    rng = np.random.default_rng(2)
    query = rng.normal(size=(6, 8))
    gallery = rng.normal(size=(50, 8))
    label_dist = 3.0 * embedding_distance(query, gallery, "cosine") ** 2
    result = evaluate(query, gallery, label_dist, ks=(1, 5, 100), metric="cosine")
    for key in ("ndcg@1", "ndcg@5", "ndcg@100", "spearman"):
        assert result[key] == pytest.approx(1.0)
    for k in (1, 5, 100):
        assert result[f"mld@{k}"] == pytest.approx(result["oracle"][f"mld@{k}"])
    # An anti-correlated model is worse than random at the top.
    worse = evaluate(query, gallery, label_dist.max() - label_dist, ks=(5,), metric="cosine")
    assert worse["ndcg@5"] < worse["random"]["ndcg@5"]
    assert worse["spearman"] == pytest.approx(-1.0)


distance_rows = arrays(
    np.float64,
    st.tuples(st.integers(1, 4), st.integers(1, 25)),
    elements=st.floats(0, 50, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=60, deadline=None)
@given(d=distance_rows, k=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_ndcg_in_unit_interval_and_mld_above_oracle(d, k, seed):
    permuted = np.random.default_rng(seed).permuted(d, axis=1)
    ndcg = ndcg_at_k(permuted, d, k)
    assert np.all(ndcg > 0) and np.all(ndcg <= 1 + 1e-12)
    oracle = mean_label_distance_at_k(np.sort(d, axis=1), k)
    assert np.all(mean_label_distance_at_k(permuted, k) >= oracle - 1e-12)


@settings(max_examples=30, deadline=None)
@given(
    q=st.integers(1, 5), g=st.integers(1, 30), dim=st.integers(1, 6),
    seed=st.integers(0, 2**16), metric=st.sampled_from(["cosine", "l2"]),
)
def test_evaluate_between_random_range_and_oracle(q, g, dim, seed, metric):
    rng = np.random.default_rng(seed)
    query, gallery = rng.normal(size=(q, dim)), rng.normal(size=(g, dim))
    label_dist = rng.uniform(0, 3, size=(q, g))
    result = evaluate(query, gallery, label_dist, ks=(1, 10), metric=metric)
    for k in (1, 10):
        assert 0 < result[f"ndcg@{k}"] <= 1 + 1e-12
        assert result[f"mld@{k}"] >= result["oracle"][f"mld@{k}"] - 1e-12
        assert result["oracle"][f"mld@{k}"] <= result["random"][f"mld@{k}"] + 1e-12
        assert 0 < result["random"][f"ndcg@{k}"] <= 1 + 1e-12
