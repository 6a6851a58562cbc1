"""The gallery maps (UMAP projections): frames to plot, where a query falls, what a selection holds,
and maps read against a query: every gallery image's label distance to it (the colouring), its
label-space nearest (ringed), and how well each map keeps the label ordering around it."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dml_core.app.queries import task_attribute_is_categorical
from dml_core.evaluate import ordering
from dml_core.evaluate.metrics import spearman

#: The colouring by each gallery image's label distance to the query (a choice beside the attributes).
QUERY_DISTANCE = "query_distance"
#: How many label-space nearest gallery images are ringed around the query.
NEAREST = 10
#: Continuous colour scales: attributes in Viridis; label distance reversed, so images near the
#: query are the bright ones and stand out around it.
CONTINUOUS_SCALE, QUERY_DISTANCE_SCALE = "Viridis", "Viridis_r"


def projection_frame(catalog, model_id: str, colour_by: str | None = None) -> pd.DataFrame | None:
    """The gallery map of one model: x, y, index and every short meta attribute (None if no map);
    ``colour_by`` is added when it is a numeric label column outside the task's attributes."""
    model = catalog.models[model_id]
    if model.projection is None:
        return None
    coords = np.asarray(model.projection.coords)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "index": np.arange(len(coords))})
    extra = [colour_by] if colour_by in catalog.gallery.meta and colour_by not in catalog.task.attributes \
        and is_numeric_column(catalog.gallery.meta[colour_by]) else []
    for attribute in [*catalog.task.attributes, *extra]:
        if attribute in catalog.gallery.meta:
            values = catalog.gallery.meta[attribute]
            frame[attribute] = [round(v, 3) if isinstance(v, float) else v for v in values]
    if colour_by and colour_by in frame and task_attribute_is_categorical(catalog.task, catalog.gallery, colour_by):
        frame[colour_by] = frame[colour_by].astype(str)
    return frame


def is_categorical(frame: pd.DataFrame, attribute: str) -> bool:
    """Whether a projection frame's column is drawn with discrete colours (see projection_frame)."""
    return not pd.api.types.is_numeric_dtype(frame[attribute])


def stored_query_position(catalog, model_id: str, query_index: int):
    """Where stored query ``query_index`` falls on ``model_id``'s gallery map, or None."""
    model = catalog.models[model_id]
    xy = catalog.place(model_id, model.query[query_index : query_index + 1])
    return None if xy is None else np.asarray(xy)[0]


def selected_indices(selection) -> list[int]:
    """Gallery indices from a plotly selection event (``st.plotly_chart(on_select=...)``).

    Points carry the gallery index as ``customdata[0]``; the query marker (no customdata) and
    duplicates are dropped; order follows the selection.
    """
    points = (selection or {}).get("selection", {}).get("points", []) if isinstance(selection, dict) else \
        getattr(getattr(selection, "selection", None), "points", []) or []
    out = []
    for point in points:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if custom is None or (hasattr(custom, "__len__") and len(custom) == 0):
            continue
        index = int(custom[0] if hasattr(custom, "__len__") else custom)
        if index not in out:
            out.append(index)
    return out


def updated_selection(held: tuple[int, list[int]] | None, side: int, indices: list[int]):
    """The selection to show, ``(map side, gallery indices)`` or None, after map ``side``
    reports ``indices``: a non-empty selection replaces the one held (on any map); emptying
    the map that holds it clears it; emptying another map changes nothing."""
    if indices:
        return side, list(indices)
    return None if held is None or held[0] == side else held


# ------------------------------------------------------------------- colour choices
def is_numeric_column(values) -> bool:
    """A per-image column of finite numbers (not flags) with more than one value."""
    values = list(values)
    if not values or not all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
                             for v in values):
        return False
    numbers = np.asarray(values, dtype=np.float64)
    return bool(np.all(np.isfinite(numbers)) and numbers.min() < numbers.max())


def numeric_label_columns(catalog) -> list[str]:
    """Numeric per-image label columns of the gallery that are not among the task's attributes
    (layout's room dimensions and camera position): colourable with a continuous scale.
    Cached per catalog (every rerun asks)."""
    key = ("numeric_label_columns",)
    if key not in catalog.cache:
        meta = catalog.gallery.meta
        catalog.cache[key] = [name for name in meta if name not in catalog.task.attributes and is_numeric_column(meta[name])]
    return list(catalog.cache[key])


def colour_choices(catalog, has_query: bool) -> list[str]:
    """What the maps can be coloured by: the label distance to the query first (when there is
    one), then the task's attributes, then its other numeric label columns."""
    attributes = [a for a in catalog.task.attributes if a in catalog.gallery.meta]
    return [QUERY_DISTANCE] * bool(has_query) + attributes + numeric_label_columns(catalog)


def colour_is_continuous(catalog, colour_by: str) -> bool:
    """Whether ``colour_by`` is drawn with a continuous scale (a number per image) rather than
    one discrete colour per value (see ``queries.attribute_is_categorical``)."""
    if colour_by == QUERY_DISTANCE:
        return True
    if colour_by not in catalog.gallery.meta:
        return False
    return not task_attribute_is_categorical(catalog.task, catalog.gallery, colour_by) \
        and is_numeric_column(catalog.gallery.meta[colour_by])


def colour_scale(colour_by: str) -> str:
    """The plotly colour scale of a continuous colouring."""
    return QUERY_DISTANCE_SCALE if colour_by == QUERY_DISTANCE else CONTINUOUS_SCALE


def colour_values(catalog, colour_by: str, ref: ordering.QueryRef | None = None) -> np.ndarray | None:
    """(G,) float64 colour value of every gallery image for a continuous colouring, else None:
    the label distance to ``ref`` for ``QUERY_DISTANCE``, the column's values for a numeric one."""
    if colour_by == QUERY_DISTANCE:
        return None if ref is None else query_label_distances(catalog, ref)
    if not colour_is_continuous(catalog, colour_by):
        return None
    return np.asarray(catalog.gallery.meta[colour_by], dtype=np.float64)


def shared_range(*values) -> tuple[float, float] | None:
    """One (low, high) colour range over several maps' values, so equal colours mean equal
    values on every map; None when there is nothing to colour. A constant gets a unit width."""
    finite = [np.asarray(v, dtype=np.float64) for v in values if v is not None]
    finite = [v[np.isfinite(v)] for v in finite]
    finite = [v for v in finite if v.size]
    if not finite:
        return None
    low, high = min(float(v.min()) for v in finite), max(float(v.max()) for v in finite)
    return (low, high) if high > low else (low, low + 1.0)


# ------------------------------------------------------------------ the query on a map
def query_label_distances(catalog, ref: ordering.QueryRef) -> np.ndarray:
    """(G,) label distance from the query to every gallery image: the stored row
    (``catalog.label_dist``) for a query-set image, computed with the task's label distance for
    a gallery image (0 at itself; ``ordering.label_row``). The map colouring by the query.

    The newest row is kept on the catalog: a rerun asks for it several times (colours, rings,
    each map's rho) and a gallery query's row costs ~25 ms on layout's 500 images."""
    held = catalog.cache.get("query_label_row")
    if held is None or held[0] != ref:
        held = (ref, ordering.label_row(catalog, ref))
        catalog.cache["query_label_row"] = held  # one slot, replaced whole: safe across sessions
    return held[1]


def label_nearest(catalog, ref: ordering.QueryRef, n: int = NEAREST) -> np.ndarray:
    """Gallery indices of the ``n`` label-nearest images to the query, nearest first (a gallery
    query is not its own neighbour; ties by gallery index): ``ordering.oracle_ranking``'s top
    ``n``, from the row held by ``query_label_distances``."""
    candidates = np.flatnonzero(ordering.rankable(catalog, ref))
    row = query_label_distances(catalog, ref)[candidates]
    return candidates[np.argsort(row, kind="stable")[:n]]


def query_position(catalog, model_id: str, ref: ordering.QueryRef):
    """(x, y) of the query on ``model_id``'s map, or None without a map: a query-set image is
    placed among its nearest gallery points; a gallery image is where the map put it."""
    projection = catalog.models[model_id].projection
    if projection is None:
        return None
    if ref.split == "gallery":
        return np.asarray(projection.coords[ref.index], dtype=np.float64)
    return stored_query_position(catalog, model_id, ref.index)


def map_spearman(catalog, model_id: str, ref: ordering.QueryRef) -> float | None:
    """Spearman rho between the label distance to the query and the distance to the query on
    the map (2-D, Euclidean) over the gallery (the query itself left out): 1 = the map keeps the
    label ordering around the query, 0 = none. None without a map; NaN if undefined."""
    position = query_position(catalog, model_id, ref)
    if position is None:
        return None
    keep = ordering.rankable(catalog, ref)
    coords = np.asarray(catalog.models[model_id].projection.coords, dtype=np.float64)[keep]
    on_map = np.sqrt(((coords - np.asarray(position, dtype=np.float64)) ** 2).sum(axis=1))
    labels = query_label_distances(catalog, ref)[keep]
    if np.ptp(labels) == 0 or np.ptp(on_map) == 0:
        return float("nan")
    return float(spearman(on_map, labels))


def mean_map_spearman(catalog, model_id: str) -> float | None:
    """``map_spearman`` averaged over every stored query (NaN ones left out), cached per
    catalog: how well the map keeps label orderings in general, not only around one query."""
    projection = catalog.models[model_id].projection
    if projection is None:
        return None
    key = ("map_spearman", model_id)
    if key not in catalog.cache:
        model = catalog.models[model_id]
        placed = np.asarray(catalog.place(model_id, np.asarray(model.query)), dtype=np.float64)
        coords = np.asarray(projection.coords, dtype=np.float64)
        on_map = np.sqrt(((placed[:, None, :] - coords[None, :, :]) ** 2).sum(axis=2))
        labels = np.asarray(catalog.label_dist, dtype=np.float64)
        defined = (np.ptp(on_map, axis=1) > 0) & (np.ptp(labels, axis=1) > 0)
        rho = spearman(on_map[defined], labels[defined]) if defined.any() else np.array([np.nan])
        catalog.cache[key] = float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
    return catalog.cache[key]
