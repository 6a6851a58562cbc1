"""How a model orders the *whole* gallery for one query, and where two models differ most.

The claim of continuous supervision is about the ordering of everything, not the top 10: the
embedding distance should grow with the label distance (a monotone cloud), where binary
supervision only separates "near" from "far" (a step). ``ordering`` gives, for one query and
one model, every gallery item's label distance and embedding distance with the query's
Spearman rho and the top-K; ``query_differences`` compares two models query by query so a
person can find the queries where each one wins most, with win / tie / loss counts.

A query is a :class:`QueryRef`: an image of the query split, or a gallery image (clicking a
result makes it the query); a gallery image is never ranked against itself.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dml_core.core.vocabulary import METRIC_FAMILIES
from dml_core.evaluate.metrics import evaluate, evaluate_distances, spearman
from dml_core.search.distances import embedding_distance

#: Differences at most this large (in the metric's units) count as ties by default.
DEFAULT_TIE = 0.01
_TOKEN = re.compile(r"^(g?)(\d{1,9})$")


@dataclass(frozen=True)
class QueryRef:
    """Query image ``index`` of ``split`` ("query" or "gallery")."""

    split: str
    index: int

    @property
    def token(self) -> str:
        """The URL form: ``12`` for query #12, ``g12`` for gallery #12."""
        return f"g{self.index}" if self.split == "gallery" else str(self.index)

    @classmethod
    def parse(cls, text, catalog) -> "QueryRef":
        """A URL token checked against the catalog; ValueError in plain words otherwise."""
        match = _TOKEN.match(str(text).strip())
        if not match:
            raise ValueError(f"query {str(text)[:40]!r} is not a query number (e.g. 12) or gallery number (e.g. g12)")
        split = "gallery" if match.group(1) else "query"
        index = int(match.group(2))
        size = len(catalog.gallery if split == "gallery" else catalog.queries)
        if index >= size:
            raise ValueError(f"there is no {split} image #{index} (the {split} has {size})")
        return cls(split, index)

    def label(self) -> str:
        return f"gallery #{self.index}" if self.split == "gallery" else f"query #{self.index}"


def label_row(catalog, ref: QueryRef) -> np.ndarray:
    """(G,) label distances from the query to every gallery image (float64)."""
    if ref.split == "query":
        return np.asarray(catalog.label_dist[ref.index], dtype=np.float64)
    labels = catalog.gallery.labels
    return np.asarray(catalog.task.label_distance(labels[ref.index:ref.index + 1], labels)[0], dtype=np.float64)


def rankable(catalog, ref: QueryRef) -> np.ndarray:
    """(G,) bool: the gallery images this query is ranked against (all but itself)."""
    keep = np.ones(len(catalog.gallery), bool)
    if ref.split == "gallery":
        keep[ref.index] = False
    return keep


def query_embedding(model, ref: QueryRef) -> np.ndarray:
    source = model.gallery if ref.split == "gallery" else model.query
    return np.asarray(source[ref.index:ref.index + 1])


@dataclass
class Ordering:
    """One model's ordering of the gallery for one query (gallery self-match removed).

    gallery_index, label_distance, embedding_distance, rank (1 = nearest): (n,) arrays in
    gallery order. top: (n,) bool, the model's top K. Scores of the top K and their scale:
    ndcg, mld, gap_closed, spearman (over the whole gallery), random_mld / oracle_mld (what a
    random ranking would score in expectation and the best possible), random_ndcg.
    """

    model_id: str
    k: int
    gallery_index: np.ndarray
    label_distance: np.ndarray
    embedding_distance: np.ndarray
    rank: np.ndarray
    top: np.ndarray
    ndcg: float
    mld: float
    gap_closed: float
    spearman: float
    random_mld: float
    oracle_mld: float
    random_ndcg: float

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"gallery": self.gallery_index, "label_distance": self.label_distance,
                             "embedding_distance": self.embedding_distance, "rank": self.rank, "top": self.top})

    def ranked(self) -> np.ndarray:
        """Gallery indices nearest first."""
        return self.gallery_index[np.argsort(self.rank)]


def ordering(catalog, model_id: str, ref: QueryRef, k: int = 10) -> Ordering:
    """Embedding vs label distance over the whole gallery for one query (exact distances, the
    model's metric; ties broken by gallery index, as in ``evaluate.metrics.evaluate``)."""
    model = catalog.models[model_id]
    keep = rankable(catalog, ref)
    gallery_index = np.flatnonzero(keep)
    labels = label_row(catalog, ref)[keep]
    distances = embedding_distance(query_embedding(model, ref), np.asarray(model.gallery)[keep], model.meta["metric"])[0]
    order = np.argsort(distances, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    k = min(int(k), len(order))
    result = evaluate_distances(distances[None], labels[None], ks=(k,))
    return Ordering(
        model_id=model_id, k=k, gallery_index=gallery_index, label_distance=labels, embedding_distance=distances,
        rank=rank, top=rank <= k, ndcg=result[f"ndcg@{k}"], mld=result[f"mld@{k}"], gap_closed=result[f"gap_closed@{k}"],
        spearman=float(spearman(distances, labels)), random_mld=result["random"][f"mld@{k}"],
        oracle_mld=result["oracle"][f"mld@{k}"], random_ndcg=result["random"][f"ndcg@{k}"],
    )


def oracle_ranking(catalog, ref: QueryRef, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(gallery indices, label distances) of the K label-nearest gallery images."""
    keep = rankable(catalog, ref)
    gallery_index = np.flatnonzero(keep)
    labels = label_row(catalog, ref)[keep]
    order = np.argsort(labels, kind="stable")[:k]
    return gallery_index[order], labels[order]


# ------------------------------------------------------------------------------ per query
def per_query_scores(catalog, model_id: str, k: int = 10) -> pd.DataFrame:
    """One row per stored query: ndcg, mld, gap_closed (at K) and spearman, cached per catalog."""
    key = ("per_query", model_id, int(k))
    cache = catalog.cache
    if key not in cache:
        model = catalog.models[model_id]
        result = evaluate(model.query, model.gallery, catalog.label_dist, ks=(k,), metric=model.meta["metric"])
        per = result["per_query"]
        cache[key] = pd.DataFrame({"query": np.arange(len(catalog.label_dist)), "ndcg": per[f"ndcg@{k}"],
                                   "mld": per[f"mld@{k}"], "gap_closed": per[f"gap_closed@{k}"], "spearman": per["spearman"]})
    return cache[key]


def query_differences(catalog, model_a: str, model_b: str, metric: str = "ndcg", k: int = 10) -> pd.DataFrame:
    """Per query: ``a``, ``b`` (the metric under each model) and ``advantage`` = how much better A
    is than B (positive: A better; for mean label distance, lower is better)."""
    if metric not in METRIC_FAMILIES:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRIC_FAMILIES)}")
    sign = METRIC_FAMILIES[metric][1]
    a, b = per_query_scores(catalog, model_a, k)[metric], per_query_scores(catalog, model_b, k)[metric]
    return pd.DataFrame({"query": np.arange(len(a)), "a": a.to_numpy(), "b": b.to_numpy(),
                         "advantage": sign * (a.to_numpy() - b.to_numpy())})


def win_tie_loss(advantage, tie: float = DEFAULT_TIE) -> dict:
    """Counts of queries where A is better by more than ``tie`` (wins), worse by more (losses),
    or within it (ties); undefined (NaN) differences are counted apart."""
    advantage = np.asarray(advantage, dtype=np.float64)
    defined = ~np.isnan(advantage)
    return {"wins": int((advantage[defined] > tie).sum()), "ties": int((np.abs(advantage[defined]) <= tie).sum()),
            "losses": int((advantage[defined] < -tie).sum()), "undefined": int((~defined).sum()), "tie": float(tie)}


def sorted_by_advantage(differences: pd.DataFrame, favour: str = "a") -> pd.DataFrame:
    """The queries where ``favour`` ("a" or "b") wins most first (undefined ones last)."""
    if favour not in ("a", "b"):
        raise ValueError("favour must be 'a' or 'b'")
    return differences.sort_values("advantage", ascending=favour == "b", na_position="last", kind="stable").reset_index(drop=True)


def binned_trend(label_distance: np.ndarray, embedding_distance: np.ndarray, bins: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Median embedding distance in equal-count bins of label distance: the cloud's shape as a
    line (monotone for continuous supervision, a step for binary)."""
    order = np.argsort(label_distance, kind="stable")
    chunks = [chunk for chunk in np.array_split(order, min(bins, len(order))) if len(chunk)]
    return (np.array([np.median(label_distance[c]) for c in chunks]), np.array([np.median(embedding_distance[c]) for c in chunks]))


__all__ = ["DEFAULT_TIE", "Ordering", "QueryRef", "binned_trend", "label_row",
           "oracle_ranking", "ordering", "per_query_scores", "query_differences", "rankable", "sorted_by_advantage",
           "win_tie_loss"]


# --------------------------------------------------------------------------------- export
def result_records(ref: QueryRef, orderings: list[Ordering], oracle: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """One record per (model, rank) of the top K: what Compare shows, for CSV / JSON download."""
    records = []
    for result in orderings:
        for gallery in result.ranked()[:result.k]:
            at = int(np.searchsorted(result.gallery_index, gallery))
            records.append({"query": ref.token, "model": result.model_id, "rank": int(result.rank[at]), "gallery": int(gallery),
                            "label_distance": float(result.label_distance[at]),
                            "embedding_distance": float(result.embedding_distance[at])})
    if oracle is not None:
        for rank, (gallery, distance) in enumerate(zip(*oracle), 1):
            records.append({"query": ref.token, "model": "oracle", "rank": rank, "gallery": int(gallery),
                            "label_distance": float(distance), "embedding_distance": None})
    return records


def score_records(ref: QueryRef, orderings: list[Ordering]) -> list[dict]:
    """One record per model: this query's scores with their scale (random, oracle)."""
    return [{"query": ref.token, "model": r.model_id, "k": r.k, f"ndcg@{r.k}": r.ndcg, f"mld@{r.k}": r.mld,
             f"gap_closed@{r.k}": r.gap_closed, "spearman": r.spearman, f"random_mld@{r.k}": r.random_mld,
             f"oracle_mld@{r.k}": r.oracle_mld, f"random_ndcg@{r.k}": r.random_ndcg} for r in orderings]
