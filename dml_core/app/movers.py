"""Where two models disagree on one query: the gallery images whose rank moves most between them.

Compare shows each model's top K; what a person asks next is *which* images model A and model
B order differently and whether those are near the query in label space. For one query:

- every rankable gallery image has a rank under A and under B (1 = nearest, from
  ``evaluate.ordering.ordering``: exact distances, ties by gallery index) and a *label rank*
  (1 = smallest true label distance to the query, ties by gallery index);
- the *candidates* are the images that matter to someone reading the results: those in A's top
  ``pool``, in B's top ``pool`` or among the ``pool`` label-nearest;
- an image's *shift* is ``log2(rank_B / rank_A)``: positive when A ranks it nearer than B does.
  On a log scale a move from rank 2 to 40 counts more than one from 300 to 340, because the
  top of a ranking is what is read;
- the movers are the candidates with the largest shift each way ("A ranks much higher than B"
  and the reverse), larger shifts first, equal shifts by gallery index.

``agreement_points`` gives the chart's data: the label-nearest images with both ranks (on the
diagonal rank_A = rank_B the models agree). ``mover_records`` are the rows of the downloads.
Pure functions on rank arrays; ``movers_between`` and ``agreement_between`` take two
``Ordering`` objects of the same query.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from dml_core.app.tiles import Thumbnails, Tile, distance_fractions, quality_colour

#: An image is a candidate if it is in either model's top POOL or among the POOL label-nearest.
DEFAULT_POOL = 50
#: Movers shown per direction.
DEFAULT_COUNT = 6
#: Label-nearest images drawn in the rank-against-rank chart.
DEFAULT_NEAREST = 30
#: What the movers are, in a sentence for the page and the JSON download.
DEFINITION = ("Among the gallery images in either model's top {pool} or among the {pool} label-nearest to the query, "
              "those whose rank changes by the largest factor between the two models (shift = log2(rank under B ÷ rank "
              "under A); equal shifts in gallery order).")
DIRECTIONS = ("a_higher", "b_higher")


@dataclass(frozen=True)
class Mover:
    """One gallery image ranked differently by two models: its ranks (1 = nearest) under A and B,
    its label rank and label distance to the query, and ``shift`` = log2(rank_b / rank_a)."""

    gallery: int
    rank_a: int
    rank_b: int
    label_rank: int
    label_distance: float
    shift: float


@dataclass(frozen=True)
class Movers:
    """The movers of one query: ``a_higher`` (A ranks them much nearer than B), ``b_higher`` (the
    reverse), each largest shift first; ``pool`` and ``candidates`` (how many images were
    considered) say what they were chosen from."""

    a_higher: list[Mover]
    b_higher: list[Mover]
    pool: int
    candidates: int

    def direction(self, name: str) -> list[Mover]:
        if name not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {name!r}")
        return self.a_higher if name == "a_higher" else self.b_higher


def ordinal_ranks(values) -> np.ndarray:
    """1-based ranks of ``values``, smallest first; equal values ranked by position (a stable sort)."""
    order = np.argsort(np.asarray(values, dtype=np.float64), kind="stable")
    ranks = np.empty(len(order), np.int64)
    ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _checked(gallery_index, rank_a, rank_b, label_distance) -> tuple[np.ndarray, ...]:
    arrays = (np.asarray(gallery_index, dtype=np.int64), np.asarray(rank_a, dtype=np.int64),
              np.asarray(rank_b, dtype=np.int64), np.asarray(label_distance, dtype=np.float64))
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise ValueError("gallery indices, both models' ranks and the label distances must be 1-D arrays of one length")
    if len(arrays[0]) and (np.diff(arrays[0]) <= 0).any():
        raise ValueError("gallery indices must be increasing (the gallery's order), so ties break by gallery index")
    return arrays


def find_movers(gallery_index, rank_a, rank_b, label_distance, count: int = DEFAULT_COUNT,
                pool: int = DEFAULT_POOL) -> Movers:
    """The images whose rank moves most between A and B, both ways (see the module's docstring).

    gallery_index: (n,) increasing gallery indices of the ranked images; rank_a, rank_b: (n,)
    their ranks under each model (1 = nearest); label_distance: (n,) their label distance to the
    query. Images ranked equally by both models are movers in neither direction.
    """
    gallery_index, rank_a, rank_b, label_distance = _checked(gallery_index, rank_a, rank_b, label_distance)
    label_rank = ordinal_ranks(label_distance)
    pool = max(1, int(pool))
    candidate = (rank_a <= pool) | (rank_b <= pool) | (label_rank <= pool)
    shift = np.log2(rank_b / np.maximum(rank_a, 1))

    def strongest(sign: int) -> list[Mover]:
        chosen = np.flatnonzero(candidate & (sign * shift > 0))
        # lexsort: last key first; positions are in gallery order, so equal shifts keep it
        chosen = chosen[np.lexsort((chosen, -sign * shift[chosen]))][:max(0, int(count))]
        return [Mover(int(gallery_index[i]), int(rank_a[i]), int(rank_b[i]), int(label_rank[i]),
                      float(label_distance[i]), float(shift[i])) for i in chosen]

    return Movers(strongest(+1), strongest(-1), pool, int(candidate.sum()))


def _same_query(first, second) -> None:
    if first.gallery_index.shape != second.gallery_index.shape or (first.gallery_index != second.gallery_index).any():
        raise ValueError("the two orderings rank different gallery images: they are not of the same query")


def movers_between(first, second, count: int = DEFAULT_COUNT, pool: int = DEFAULT_POOL) -> Movers:
    """``find_movers`` for two ``evaluate.ordering.Ordering`` of one query (A = ``first``)."""
    _same_query(first, second)
    return find_movers(first.gallery_index, first.rank, second.rank, first.label_distance, count, pool)


def agreement_points(gallery_index, rank_a, rank_b, label_distance, nearest: int = DEFAULT_NEAREST) -> dict:
    """The ``nearest`` label-nearest images (label rank 1 first) with their ranks under A and B:
    arrays ``gallery``, ``rank_a``, ``rank_b``, ``label_rank``, ``label_distance`` for the chart
    of rank under A against rank under B (the diagonal is agreement)."""
    gallery_index, rank_a, rank_b, label_distance = _checked(gallery_index, rank_a, rank_b, label_distance)
    label_rank = ordinal_ranks(label_distance)
    chosen = np.argsort(label_rank)[:max(0, int(nearest))]
    return {"gallery": gallery_index[chosen], "rank_a": rank_a[chosen], "rank_b": rank_b[chosen],
            "label_rank": label_rank[chosen], "label_distance": label_distance[chosen]}


def agreement_between(first, second, nearest: int = DEFAULT_NEAREST) -> dict:
    """``agreement_points`` for two ``Ordering`` of one query (A = ``first``)."""
    _same_query(first, second)
    return agreement_points(first.gallery_index, first.rank, second.rank, first.label_distance, nearest)


def rank_correlation(points: dict) -> float:
    """Spearman's rho between the two models' ranks of the chart's points (1: same order; NaN
    with fewer than two points)."""
    if len(points["rank_a"]) < 2:
        return float("nan")
    a, b = ordinal_ranks(points["rank_a"]), ordinal_ranks(points["rank_b"])
    return float(np.corrcoef(a, b)[0, 1])


# ------------------------------------------------------------------------------ display
def mover_tiles(thumbs: Thumbnails, movers: list[Mover], row: np.ndarray, names: tuple[str, str] = ("A", "B"),
                overlay: bool = False, link=None) -> list[Tile]:
    """Tiles for movers: the corner badge is the label rank, the other badge "A 3 · B 212" (both
    ranks) coloured by how label-close the image is (as result badges are); the tooltip says it
    all. row: the query's label distances to the gallery; link: gallery index -> URL query string."""
    fractions = distance_fractions(row, [m.label_distance for m in movers]) if movers else []
    tiles = []
    for mover, fraction in zip(movers, fractions):
        target = link(mover.gallery) if link else None
        action = " · click to make it the query" if target else ""
        tooltip = (f"gallery #{mover.gallery} · rank {mover.rank_a} under {names[0]}, {mover.rank_b} under {names[1]} · "
                   f"label rank {mover.label_rank}, label distance {mover.label_distance:.4f}{action}")
        uri = thumbs.overlay(mover.gallery) if overlay else thumbs[mover.gallery]
        tiles.append(Tile(uri, mover.label_rank, f"A {mover.rank_a} · B {mover.rank_b}", quality_colour(fraction),
                          tooltip, target))
    return tiles


def mover_rows(movers: list[Mover]) -> list[dict]:
    """One display row per mover (the page's narrow table), in the list's order: the image, its
    ranks under A and B, its label rank and label distance."""
    return [{"image": f"#{m.gallery}", "A": m.rank_a, "B": m.rank_b, "label rank": m.label_rank,
             "label dist": round(m.label_distance, 3)} for m in movers]


def log_ticks(size: int) -> list[int]:
    """Tick values 1, 2, 5, 10, 20, 50 … up to ``size`` for a log rank axis (fewer labels than plotly's)."""
    ticks, decade = [], 1
    while decade <= size:
        ticks += [step * decade for step in (1, 2, 5) if step * decade <= size]
        decade *= 10
    return ticks


# ------------------------------------------------------------------------------- export
def mover_records(query: str, model_a: str, model_b: str, movers: Movers) -> list[dict]:
    """One flat record per mover, both directions (for CSV / JSON): query token, the two
    models, direction ("a_higher": A ranks it nearer), gallery index, both ranks, label rank,
    label distance and shift (log2 of rank under B ÷ rank under A)."""
    return [{"query": query, "model_a": model_a, "model_b": model_b, "direction": direction, **asdict(mover)}
            for direction in DIRECTIONS for mover in movers.direction(direction)]


def movers_export(query: str, model_a: str, model_b: str, movers: Movers) -> dict:
    """The movers with what they were chosen from, for the page's JSON download."""
    return {"model_a": model_a, "model_b": model_b, "pool": movers.pool, "candidates": movers.candidates,
            "definition": DEFINITION.format(pool=movers.pool), "records": mover_records(query, model_a, model_b, movers)}


__all__ = ["DEFAULT_COUNT", "DEFAULT_NEAREST", "DEFAULT_POOL", "DEFINITION", "DIRECTIONS", "Mover", "Movers",
           "agreement_between", "agreement_points", "find_movers", "log_ticks", "mover_records", "mover_rows", "mover_tiles",
           "movers_between", "movers_export", "ordinal_ranks", "rank_correlation"]
