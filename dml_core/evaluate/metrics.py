"""Retrieval metrics with continuous labels, as in the paper's official evaluation.

For every query the gallery is ranked by embedding distance (nearest first); ``d`` is the
label distance between the query and each gallery item, read in that ranked order.

- **mean label distance@K** (``mld@K``): ``mean(d_1 .. d_K)``; lower is better.
- **nDCG@K**: relevance ``r = 1 / (1 + d)``; ``DCG@K = sum_{i=1..K} r_i / log2(i + 1)``;
  ``nDCG@K = DCG@K / IDCG@K`` where IDCG is the DCG of the gallery ranked by true label
  distance (ascending). Items tied in label distance have equal relevance, so the ideal DCG
  does not depend on how such ties are ordered. Since ``r > 0`` for every finite ``d >= 0``,
  IDCG is always positive and nDCG lies in (0, 1].
- **gap closed@K**: where the model's mld@K stands between random retrieval (0) and the
  oracle (1): ``(random - mld@K) / (random - oracle)``, random = the query's mean label
  distance to the gallery (the expected mld@K of a random ranking), oracle = the mean of its
  K smallest label distances. nDCG@K is read against its floor: a random ranking already
  scores 0.7-0.76 on our tasks, so nDCG@10 = 0.85 can still be weak.
- **normalised nDCG@K** (``ndcg_norm@K``): the same for nDCG, ``(nDCG - E[nDCG of a random
  ranking]) / (1 - E[...])``. Both are per query (undefined, NaN, for a query whose gallery
  is all at one label distance) and averaged over queries like every other metric.
- **Spearman rho** between embedding distance and label distance, computed **per query** over
  that query's gallery and then averaged over queries. Per query, because retrieval ranks the
  gallery of one query at a time: pooling all query-gallery pairs would also reward getting
  the *scale* of distances right across queries, which no ranking uses. Ties get average ranks.
  A query whose label (or embedding) distances are all equal has no defined rho: it is NaN
  and left out of the mean (``nanmean``). A pooled value is ``spearman(a.ravel(), b.ravel())``.

Conventions:
- **K larger than the gallery** is clamped to the gallery size, so ``ndcg@100`` on a gallery
  of 50 is nDCG over the whole ranked gallery; results keep the requested K in their keys so
  that tables of different galleries line up.
- **Ties in embedding distance** are ordered by gallery index (stable sort), so results are
  deterministic and never depend on the sort algorithm.
- Queries and gallery are assumed disjoint (DESIGN.md section 5); a query that is also in the
  gallery would retrieve itself at distance 0 and must be removed by the caller.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from dml_core.search.distances import embedding_distance

DEFAULT_KS = (1, 5, 10, 20, 50, 100)


def _as_2d_label_dist(values, name: str) -> tuple[np.ndarray, bool]:
    """Float64 (Q, G) copy of a (G,) or (Q, G) array of label distances, and whether it was 1-D."""
    array = np.asarray(values, dtype=np.float64)
    was_1d = array.ndim == 1
    if was_1d:
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (G,) or (Q, G) array, got shape {np.shape(values)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(array < 0):
        raise ValueError(f"{name} contains negative label distances (min {array.min():g})")
    return array, was_1d


def _clamp_k(k: int, gallery_size: int) -> int:
    if int(k) != k or k < 1:
        raise ValueError(f"K must be a positive integer, got {k!r}")
    return min(int(k), gallery_size)


def _discounts(k: int) -> np.ndarray:
    """1 / log2(i + 1) for ranks i = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _squeeze(values: np.ndarray, was_1d: bool):
    return float(values[0]) if was_1d else values


def mean_label_distance_at_k(ranked_label_dist, k: int):
    """Mean label distance of the top K retrieved items (lower is better).

    ranked_label_dist: (G,) or (Q, G) label distances to the query, in retrieved order
        (position 0 = nearest in embedding space).
    k: cut-off; clamped to G.
    Returns a float for 1-D input, else a (Q,) array: ``mean(d[:, :K], axis=1)``.
    """
    dist, was_1d = _as_2d_label_dist(ranked_label_dist, "ranked_label_dist")
    k = _clamp_k(k, dist.shape[1])
    return _squeeze(dist[:, :k].mean(axis=1), was_1d)


def dcg_at_k(ranked_label_dist, k: int):
    """DCG@K with relevance 1 / (1 + d): ``sum_{i<=K} r_i / log2(i + 1)``; float or (Q,)."""
    dist, was_1d = _as_2d_label_dist(ranked_label_dist, "ranked_label_dist")
    k = _clamp_k(k, dist.shape[1])
    relevance = 1.0 / (1.0 + dist[:, :k])
    return _squeeze(relevance @ _discounts(k), was_1d)


def ndcg_at_k(ranked_label_dist, ideal_label_dist, k: int):
    """nDCG@K with relevance 1 / (1 + d) (higher is better, 1 = label-perfect ranking).

    ranked_label_dist: (G,) or (Q, G) label distances in retrieved order.
    ideal_label_dist: the same query's label distances in any order (typically the same
        values); they are sorted ascending here to give the ideal ranking, whose DCG@K
        normalises. Ties in label distance do not change the ideal DCG.
    k: cut-off; clamped to G.
    Returns a float for 1-D input, else a (Q,) array in (0, 1].
    """
    ranked, was_1d = _as_2d_label_dist(ranked_label_dist, "ranked_label_dist")
    ideal, _ = _as_2d_label_dist(ideal_label_dist, "ideal_label_dist")
    if ideal.shape != ranked.shape:
        raise ValueError(f"ranked_label_dist {ranked.shape} and ideal_label_dist {ideal.shape} differ in shape")
    k = _clamp_k(k, ranked.shape[1])
    ideal_dcg = dcg_at_k(np.sort(ideal, axis=1), k)
    return _squeeze(dcg_at_k(ranked, k) / ideal_dcg, was_1d)


def _row_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair; NaN where a row is constant."""
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denominator = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (x * y).sum(axis=1) / denominator
    rho[denominator == 0] = np.nan
    return np.clip(rho, -1.0, 1.0)


def spearman(embedding_dist, label_dist):
    """Spearman rank correlation between embedding and label distances, per query.

    embedding_dist, label_dist: (G,) or (Q, G), same shape; row q holds query q's distances
        to the gallery.
    rho = Pearson correlation of the average ranks (ties share the mean of their ranks), per
    row. Returns a float for 1-D input, else a (Q,) array; a row with constant distances gives
    NaN (undefined correlation). Average with ``np.nanmean``.
    """
    emb = np.asarray(embedding_dist, dtype=np.float64)
    lab = np.asarray(label_dist, dtype=np.float64)
    if emb.shape != lab.shape:
        raise ValueError(f"embedding_dist {emb.shape} and label_dist {lab.shape} differ in shape")
    was_1d = emb.ndim == 1
    if was_1d:
        emb, lab = emb[None, :], lab[None, :]
    if emb.ndim != 2 or emb.shape[1] < 2:
        raise ValueError(f"spearman needs at least 2 gallery items per query, got shape {np.shape(embedding_dist)}")
    if not (np.all(np.isfinite(emb)) and np.all(np.isfinite(lab))):
        raise ValueError("spearman input contains NaN or infinite values")
    rho = _row_pearson(rankdata(emb, axis=1), rankdata(lab, axis=1))
    return _squeeze(rho, was_1d)


def rank_gallery(distances) -> np.ndarray:
    """(Q, G) gallery indices ordered nearest first; ties keep gallery-index order (stable)."""
    return np.argsort(np.asarray(distances), axis=1, kind="stable")


def gap_closed(value, random, best):
    """Where ``value`` stands from ``random`` (0) to ``best`` (1): ``(random - value) / (random - best)``,
    elementwise; NaN where random == best (nothing to close). Works for lower-is-better
    values (mld: best = the oracle's) and higher-is-better ones (nDCG: best = 1) alike."""
    value, random, best = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (value, random, best)))
    span = random - best
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(np.abs(span) > 1e-12, (random - value) / np.where(span == 0, 1.0, span), np.nan)
    return float(out) if out.ndim == 0 else out


def evaluate(query_emb, gallery_emb, label_dist_qg, ks=DEFAULT_KS, metric: str = "cosine") -> dict:
    """Evaluate one model's retrieval of the gallery for every query.

    query_emb: (Q, D) embeddings; gallery_emb: (G, D); label_dist_qg: (Q, G) label distances
    between each query and each gallery item. ks: cut-offs (clamped to G, keys keep the
    requested K). metric: "cosine" (1 - cos) or "l2" (squared Euclidean) for the ranking.

    Returns a dict:
      "ndcg@K", "mld@K", "gap_closed@K", "ndcg_norm@K" for every K and "spearman": means over
          queries (floats; Spearman and the normalised ones use nanmean over the queries where
          they are defined);
      "per_query": {same keys: (Q,) arrays};
      "oracle": {"ndcg@K": 1.0, "mld@K": mean over queries of the K smallest label distances,
          "spearman": 1.0} -- the label-space ranking, the best any model can do;
      "random": {"ndcg@K", "mld@K": the exact expectation under a uniformly random ranking,
          "spearman": 0.0}. Under a random permutation every position's expected relevance
          is the query's mean relevance, so E[DCG@K] = mean(r) * sum_{i<=K} 1/log2(i+1) and
          E[mld@K] = mean(d); no sampling is needed;
      "ks": the requested ks, "gallery_size": G, "num_queries": Q, "metric": metric.
    """
    query_emb = np.asarray(query_emb)
    gallery_emb = np.asarray(gallery_emb)
    label_dist, _ = _as_2d_label_dist(label_dist_qg, "label_dist_qg")
    if query_emb.ndim != 2 or gallery_emb.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got query {query_emb.shape} and gallery {gallery_emb.shape}")
    expected = (len(query_emb), len(gallery_emb))
    if label_dist.shape != expected or np.ndim(label_dist_qg) != 2:
        raise ValueError(f"label_dist_qg has shape {np.shape(label_dist_qg)}, expected (queries, gallery) = {expected}")
    return evaluate_distances(embedding_distance(query_emb, gallery_emb, metric), label_dist, ks, metric)


def evaluate_distances(emb_dist, label_dist_qg, ks=DEFAULT_KS, metric: str = "precomputed") -> dict:
    """``evaluate`` for any (Q, G) matrix of query-gallery distances (smaller = nearer), e.g. the
    label distance between *predicted* labels; same result dict."""
    emb_dist = np.asarray(emb_dist, dtype=np.float64)
    label_dist, _ = _as_2d_label_dist(label_dist_qg, "label_dist_qg")
    if emb_dist.shape != label_dist.shape:
        raise ValueError(f"distances {emb_dist.shape} and label_dist_qg {label_dist.shape} differ in shape")
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must name at least one cut-off K")
    for k in ks:
        _clamp_k(k, 1)

    order = rank_gallery(emb_dist)
    ranked = np.take_along_axis(label_dist, order, axis=1)
    ideal = np.sort(label_dist, axis=1)
    gallery_size = label_dist.shape[1]

    relevance_mean = (1.0 / (1.0 + label_dist)).mean(axis=1)
    per_query: dict[str, np.ndarray] = {}
    oracle: dict[str, float] = {}
    random: dict[str, float] = {}
    random_mld = label_dist.mean(axis=1)
    for k in ks:
        k_eff = _clamp_k(k, gallery_size)
        ideal_dcg = dcg_at_k(ideal, k_eff)
        random_ndcg = relevance_mean * _discounts(k_eff).sum() / ideal_dcg
        oracle_mld = mean_label_distance_at_k(ideal, k_eff)
        per_query[f"ndcg@{k}"] = dcg_at_k(ranked, k_eff) / ideal_dcg
        per_query[f"mld@{k}"] = mean_label_distance_at_k(ranked, k_eff)
        per_query[f"gap_closed@{k}"] = gap_closed(per_query[f"mld@{k}"], random_mld, oracle_mld)
        per_query[f"ndcg_norm@{k}"] = gap_closed(per_query[f"ndcg@{k}"], random_ndcg, 1.0)
        oracle[f"ndcg@{k}"] = 1.0
        oracle[f"mld@{k}"] = float(oracle_mld.mean())
        oracle[f"gap_closed@{k}"] = oracle[f"ndcg_norm@{k}"] = 1.0
        random[f"ndcg@{k}"] = float(random_ndcg.mean())
        random[f"mld@{k}"] = float(label_dist.mean())
        random[f"gap_closed@{k}"] = random[f"ndcg_norm@{k}"] = 0.0
    per_query["spearman"] = spearman(emb_dist, label_dist) if gallery_size > 1 else np.full(len(label_dist), np.nan)
    oracle["spearman"], random["spearman"] = 1.0, 0.0

    result: dict = {}
    for key, values in per_query.items():
        defined = values[~np.isnan(values)]
        result[key] = float(defined.mean()) if len(defined) else float("nan")
    result.update(
        per_query=per_query, oracle=oracle, random=random, ks=list(ks),
        gallery_size=gallery_size, num_queries=len(label_dist), metric=metric,
    )
    return result
