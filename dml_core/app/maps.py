"""The gallery maps (UMAP projections): frames to plot, where a query falls, what a selection holds."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dml_core.app.queries import task_attribute_is_categorical


def projection_frame(catalog, model_id: str, colour_by: str | None = None) -> pd.DataFrame | None:
    """The gallery map of one model: x, y, index and every short meta attribute (None if no map)."""
    model = catalog.models[model_id]
    if model.projection is None:
        return None
    coords = np.asarray(model.projection.coords)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "index": np.arange(len(coords))})
    for attribute in catalog.task.attributes:
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
