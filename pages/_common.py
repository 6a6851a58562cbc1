"""UI helpers shared by the pages: cached catalogs, the sidebar task picker, result grids.

Catalogs (images, models, indexes, projections) load once per process with
``st.cache_resource`` and are shared by every session. The cache key includes a cheap stamp
of the task's model directory, so a model trained in the Training lab (or by the CLI) shows
up on the next rerun of any page without a restart.
"""
from __future__ import annotations

import streamlit as st

from dml_core import app
from dml_core.app import ArtifactError, Catalog, CorruptArtifact, get_task

app.one_thread()  # many sessions share the cores; spinning OpenMP teams would fight over them
BUILD_HINT = "Build it with `make run` (sets up and builds the quick profile), or `python -m dml_core build --profile quick`."


# ------------------------------------------------------------------------------ catalogs
def home() -> str:
    return app.home()


#: The last catalog loaded per (task, DML_HOME): the next load (a new model landed) takes over its
#: unchanged models instead of verifying and loading them all again.
_LATEST: dict[tuple[str, str], Catalog] = {}


@st.cache_resource(max_entries=6, show_spinner="Loading the task's gallery, models and indexes…")
def _load(task: str, root: str, stamp: tuple) -> Catalog:
    catalog = app.open_catalog(task, root, previous=_LATEST.get((task, root)))
    _LATEST[(task, root)] = catalog
    return catalog


@st.cache_resource(max_entries=12, show_spinner=False)
def _thumbs(task: str, root: str, gallery_stamp: float) -> app.Thumbnails:
    """Keyed by the gallery alone: a model landing during a build changes the catalog, not the
    gallery, so its drawn tiles (and their prefetch) are kept."""
    thumbnails = app.Thumbnails(app.stored_gallery(root, task), app.get_task(task, root))
    thumbnails.prefetch()  # results are gallery images, drawn with their labels by default
    return thumbnails


def catalog_or_none(task: str) -> Catalog | None:
    """The task's catalog, or None after showing a friendly message when it is not built (while
    a build runs: where the task stands in its queue)."""
    root = home()
    try:
        catalog = _load(task, root, app.catalog_stamp(task, root))
    except ArtifactError as exc:
        progress = app.build_progress(root)
        if progress is not None and progress.running and not isinstance(exc, CorruptArtifact):
            st.info(f"**{task_title(task)} is not built yet: {progress.queue_place(task)}.** This page fills in "
                    "by itself as soon as its first models land; the build's progress is in the sidebar.")
            return None
        state = "has damaged artifacts" if isinstance(exc, CorruptArtifact) else "is not built yet"
        trouble = progress.trouble() if progress is not None else None
        st.warning(f"**The {task_title(task)} task {state}** (looked in `{root}`).\n\n{trouble or BUILD_HINT}")
        with st.expander("Details"):
            st.text(str(exc))
        return None
    if catalog.damaged:
        st.warning(f"**{len(catalog.damaged)} model(s) failed their integrity check and are hidden:** "
                   f"{', '.join(sorted(catalog.damaged))}. Rebuild them with `python -m dml_core build`.")
    return catalog


def thumbs(task: str) -> app.Thumbnails:
    """The task's gallery images as tiles (plain or with their labels drawn)."""
    root = home()
    return _thumbs(task, root, app.gallery_stamp(root, task))


def clear_catalogs() -> None:
    """Forget every loaded catalog (after training a model), so all pages reload."""
    _load.clear()
    _LATEST.clear()
    _thumbs.clear()


def known_tasks() -> tuple[str, ...]:
    """The built-in tasks and those imported into DML_HOME: the only task names a page accepts."""
    return app.task_names(home())


def task_title(task: str) -> str:
    try:
        return get_task(task, home()).title
    except (ValueError, ArtifactError):  # a descriptor removed or damaged since the list was made
        return task


def task_blurb(task: str) -> str:
    """The task's label and distance in a line; imported data sets say they have no generator."""
    try:
        info = get_task(task, home())
    except (ValueError, ArtifactError):
        return ""
    return info.description + ("" if info.has_generator else " Imported data set: its own images, no generator.")


def built_tasks() -> list[str]:
    return app.built_tasks(home())


# ---------------------------------------------------------------------------- deep links
def incoming_link() -> dict[str, list[str]] | None:
    """The URL's query parameters when they are new to this session (a link was opened or the
    address edited), else None. Values are lists (``?models=a&models=b``); the page validates
    every value against what is built before using it, and never builds a path from one."""
    current = {key: st.query_params.get_all(key) for key in st.query_params}
    if current and current != st.session_state.get("_link_state"):
        st.session_state["_link_state"] = current
        return current
    return None


def follow_task_link(link: dict, problems: list[str]) -> None:
    """Make a link's ``task`` the sidebar's choice when it is one of the app's tasks; otherwise add
    to ``problems`` why it was ignored (the page says so)."""
    if "task" in link:
        if link["task"][0] in known_tasks():
            st.session_state["_keep_task"] = link["task"][0]
        else:
            problems.append(f"task {link['task'][0][:40]!r} is not one of this app's tasks")


def publish_link(params: dict) -> None:
    """Put the page's state in the URL (so it can be copied and shared)."""
    state = {key: [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)] for key, value in params.items()}
    if state != st.session_state.get("_link_state"):
        st.query_params.from_dict({key: values if len(values) > 1 else values[0] for key, values in state.items()})
        st.session_state["_link_state"] = state


def link_to(params: dict) -> str:
    """A relative link (``?task=pose&query=g3…``) to this page in another state."""
    from urllib.parse import urlencode

    return "?" + urlencode([(k, v) for k, values in params.items() for v in (values if isinstance(values, (list, tuple)) else [values])])


# ------------------------------------------------------------------- persistent widgets
def persist(key: str, default, options=None):
    """Give widget ``key`` its value from the last visit (Streamlit drops widget state when a
    page is left); returns the on_change callback that stores a new value."""
    store = f"_keep_{key}"
    value = st.session_state.get(store, default)
    if options is not None:
        if isinstance(value, list):
            value = [v for v in value if v in options] or default
        elif value not in options:
            value = default
    st.session_state[key] = value

    def remember():
        st.session_state[store] = st.session_state[key]

    return remember


# --------------------------------------------------------------------------- the build
#: Seconds between two looks at a running build's status file (only while a build runs).
BUILD_POLL_S = 2.0


def build_indicator() -> None:
    """The build's progress in the sidebar of every page. While it runs, a fragment reads its
    status every ``BUILD_POLL_S`` and reruns the page when the page has something new to show
    (a task's data, a model of the chosen task, the build's end); widget state survives reruns,
    so nobody loses a selection. Once the build is over nothing polls."""
    progress = app.build_progress(home())
    if progress is None or progress.state == "done":
        return
    if not progress.running:
        st.sidebar.warning(progress.trouble())
        return
    st.session_state["_build_seen"] = _build_view(progress)
    with st.sidebar:
        _live_build()


def _build_view(progress) -> tuple:
    """What a page shows that a build can change."""
    task = st.session_state.get("task")
    return progress.state, tuple(built_tasks()), progress.done_models(task) if task else ()


@st.fragment(run_every=BUILD_POLL_S)
def _live_build() -> None:
    progress = app.build_progress(home())
    if progress is None or _build_view(progress) != st.session_state.get("_build_seen"):
        st.rerun(scope="app")
    st.progress(progress.fraction, text=progress.headline())


def task_selector() -> str:
    """The sidebar's task picker, shared by every page (the choice survives page changes)."""
    options = list(known_tasks())
    built = built_tasks()
    default = built[0] if built else app.TASK_NAMES[0]
    remember = persist("task", default, options)
    task = st.sidebar.selectbox(
        "Task", options, key="task", on_change=remember,
        format_func=lambda t: task_title(t) + ("" if t in built else " (not built)"),
    )
    st.sidebar.caption(task_blurb(task))
    return task


def current_query(task: str) -> int | None:
    """The query picked on Compare for ``task`` (shared with Embedding space)."""
    return st.session_state.get("_keep_queries", {}).get(task)


def set_current_query(task: str, index: int) -> None:
    st.session_state.setdefault("_keep_queries", {})[task] = int(index)


def model_picker(catalog: Catalog, key: str, label: str = "Models", max_models: int = 3, default=None,
                 container=None) -> list[str]:
    """Multiselect of 1–``max_models`` models, binary triplet vs log-ratio by default."""
    container = container or st.sidebar
    ids = catalog.model_ids()
    default = default or app.default_model_ids(catalog)
    remember = persist(f"{key}_{catalog.task_name}", default, ids)
    chosen = container.multiselect(
        label, ids, key=f"{key}_{catalog.task_name}", on_change=remember, max_selections=max_models, select_all=False,
        format_func=lambda m: app.model_label(catalog.models[m]),
        help="Warm colours: binary supervision. Violet: continuous (log-ratio, dense triplet). Grey: pretrained.",
    )
    return chosen


# ------------------------------------------------------------------------------- render
def page_header(title: str, subtitle: str) -> None:
    st.markdown(f"<h1 class='bb-title'>{title}</h1><p class='bb-lede'>{subtitle}</p>", unsafe_allow_html=True)


def model_header(catalog: Catalog, model_id: str) -> None:
    model = catalog.models[model_id]
    colour = app.method_colour(model.meta["method"])
    family = app.method_family(model.meta["method"])
    supervision = f"{family} supervision" if family in ("binary", "continuous") else family
    sub = " · ".join(dict.fromkeys([app.kind_label(model.meta), supervision, f"{model.meta.get('metric', '')} distance"]))
    st.markdown(
        f"<div class='bb-head' style='border-color:{colour}'>"
        f"<div class='bb-method'><span class='bb-dot' style='background:{colour}'></span>"
        f"{app.model_label(model, with_kind=False)}</div>"
        f"<div class='bb-sub'>{sub}</div></div>",
        unsafe_allow_html=True,
    )


def oracle_header(k: int) -> None:
    colour = app.REFERENCE_COLOURS["oracle"]
    st.markdown(
        f"<div class='bb-head' style='border-color:{colour}'>"
        f"<div class='bb-method'><span class='bb-dot' style='background:{colour}'></span>Oracle</div>"
        f"<div class='bb-sub'>the {k} label-nearest gallery images</div></div>",
        unsafe_allow_html=True,
    )


def tile_grid(tiles: list[app.Tile], min_width: int = 92) -> None:
    """A grid of result tiles as one HTML block (measured faster than st.image per tile)."""
    st.markdown(app.tiles_html(tiles, min_width), unsafe_allow_html=True)


def distance_legend() -> None:
    st.markdown(
        "<div class='bb-legend'><span class='bb-badge bb-inline'>rank</span> "
        "<span class='bb-dist bb-inline' style='background:#16a34a'>label distance</span> "
        "badge colour = how close the result is among the whole gallery: "
        "<span class='bb-swatch' style='background:linear-gradient(90deg,#16a34a,#ca8a04,#dc2626)'></span> "
        "nearest → farthest</div>",
        unsafe_allow_html=True,
    )


HIGHER_IS_BETTER = tuple(app.METRIC_LABELS[k] for k in app.METRIC_LABELS if not app.lower_is_better(k))
LOWER_IS_BETTER = tuple(app.METRIC_LABELS[k] for k in app.METRIC_LABELS if app.lower_is_better(k))


def metric_table(frame, higher=HIGHER_IS_BETTER, lower=LOWER_IS_BETTER, height="auto",
                 reference_rows: int = 0):
    """A dataframe of metrics with the best value of each column highlighted (↑ / ↓ in headers).
    The last ``reference_rows`` rows are the scale (random retrieval, oracle): greyed, never "best"."""
    higher = [c for c in higher if c in frame]
    lower = [c for c in lower if c in frame]
    spreads = {c: "{:.3f}" for c in frame.columns if str(c).endswith(" ±")}
    styler = frame.style.format(na_rep="").format({c: "{:.3f}" for c in higher} | {c: "{:.4f}" for c in lower} | spreads,
                                                 na_rep="–")
    models, scale = frame.index[: len(frame) - reference_rows], frame.index[len(frame) - reference_rows:]
    if len(models) > 1:
        best = "background-color: #dcfce7; font-weight: 600"
        styler = styler.highlight_max(subset=(models, higher), props=best).highlight_min(subset=(models, lower), props=best)
    if reference_rows:
        styler = styler.set_properties(subset=(scale, list(frame.columns)), **{"color": "#6b6480", "font-style": "italic",
                                                                             "background-color": "#f4f2f9"})
    config = {c: st.column_config.Column(f"{c} ↑") for c in higher} | {c: st.column_config.Column(f"{c} ↓") for c in lower}
    st.dataframe(styler, hide_index=True, width="stretch", column_config=config, height=height)


_PLANE_LAYOUT = ("autotypenumbers", "coloraxis", "colorway", "font", "hoverlabel", "hovermode", "paper_bgcolor",
                 "plot_bgcolor", "title", "xaxis", "yaxis", "legend", "annotationdefaults", "shapedefaults")


def plane_template(name: str):
    """The registered plotly template ``name`` cut to what the pages' flat charts use: the layout
    of x/y plots (no geo, polar, 3-D, ternary, nor default colour scales: every continuous colour
    is named) and the defaults of the trace types drawn. A template is validated again on every
    figure that gets it: a whole one costs 14-25 ms a figure (assigned and sent), a cut one ~3."""
    import plotly.graph_objects as go
    import plotly.io as pio

    whole = pio.templates[name].to_plotly_json()
    layout = {key: value for key, value in whole.get("layout", {}).items() if key in _PLANE_LAYOUT}
    data = {kind: value for kind, value in whole.get("data", {}).items() if kind in ("scatter", "scattergl", "bar", "histogram")}
    return go.layout.Template(layout=layout, data=data)


WHITE_TEMPLATE = plane_template("plotly_white")


def _merged(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def restyled(fig, layout: dict, axis: dict, xaxis: dict | None = None, yaxis: dict | None = None):
    """A new figure with ``fig``'s traces and its layout merged with ``layout``, ``axis`` merged
    into every x and y axis (facets too) and then ``xaxis`` / ``yaxis``. Built in one constructor:
    plotly re-validates the layout on every ``update_*`` call, and styling by updates cost ~20 ms
    a figure, this ~6."""
    import plotly.graph_objects as go

    merged = _merged(fig.layout.to_plotly_json(), layout)
    for name in {"xaxis", "yaxis", *(key for key in merged if key[:1] in "xy" and key[1:].startswith("axis"))}:
        merged[name] = _merged(_merged(merged.get(name) or {}, axis), (xaxis if name[0] == "x" else yaxis) or {})
    return go.Figure(data=fig.data, layout=merged)


def style_figure(fig, height: int = 420, grid: bool = True, legend: str = "right", xaxis: dict | None = None,
                 yaxis: dict | None = None, **layout):
    """Common plotly styling: white plot, light grid; the legend right of the plot (line charts)
    or below it (maps, which have no axis titles), clear of the toolbar either way. ``xaxis`` /
    ``yaxis`` (every axis of a faceted figure) and further layout keywords are merged in.
    Returns a new figure (``restyled``)."""
    has_title = bool(fig.layout.title.text)
    place = dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01) if legend == "right" else \
        dict(orientation="h", yanchor="top", y=-0.03, xanchor="left", x=0)
    settings = dict(
        height=height, margin=dict(l=8, r=8, t=44 if has_title else 16, b=8), font=app.PLOT_FONT, plot_bgcolor="#ffffff",
        paper_bgcolor="rgba(0,0,0,0)", legend=dict(**place, title_text="", font=dict(size=11)),
    )
    if has_title:
        settings["title"] = dict(x=0, xanchor="left", y=0.98, yanchor="top", font=dict(size=14))
    settings = _merged(settings, layout)
    settings["template"] = WHITE_TEMPLATE  # charts are drawn with theme=None so our method / category colours are kept
    return restyled(fig, settings, dict(showgrid=grid, gridcolor="#eeeaf6", zeroline=False, linecolor="#ddd6ee"), xaxis, yaxis)


def projection_figure(catalog: Catalog, model_id: str, colour_by: str, marker=None, marker_label: str = "query",
                      height: int = 430, hover_hint: str = "", values=None, value_range=None, value_title: str = "",
                      scale: str = "Viridis", ringed=None, ringed_label: str = ""):
    """Plotly scatter of a model's gallery map coloured by ``colour_by``; ``marker`` (x, y)
    draws the query as a star. Points carry their gallery index as customdata; ``hover_hint``
    ends every gallery point's hover text.

    values: (G,) numbers to colour by instead of the column ``colour_by`` (e.g. the label
    distance to the query), shown as ``value_title``; value_range: (low, high) of the
    continuous ``scale``, the same on every map so colours compare; ringed: gallery indices
    circled in the oracle's colour (the query's label-space nearest), named ``ringed_label``.
    """
    import plotly.express as px
    import plotly.graph_objects as go

    frame = app.projection_frame(catalog, model_id, colour_by)
    column = colour_by
    if values is not None:
        column = value_title or colour_by
        frame[column] = [round(float(v), 3) for v in values]
    categorical = values is None and app.is_categorical(frame, column)
    if categorical:
        hover = {c: True for c in frame.columns if c not in ("x", "y")} | {"x": False, "y": False}
        fig = px.scatter(frame, x="x", y="y", color=column, custom_data=["index"], hover_data=hover,
                         color_discrete_sequence=app.QUALITATIVE,
                         category_orders={column: app.attribute_values(catalog.gallery, column)})
    else:  # one trace on a colour axis, built directly: plotly express took ~10x as long (~100 ms a map)
        shown = [c for c in frame.columns if c not in ("x", "y")]  # "index" first: customdata[0]
        template = "<br>".join(f"{c}=%{{customdata[{i}]}}" for i, c in enumerate(shown)) + "<extra></extra>"
        low, high = value_range if value_range is not None else (frame[column].min(), frame[column].max())
        fig = go.Figure(go.Scatter(x=frame["x"], y=frame["y"], mode="markers", customdata=frame[shown].to_numpy(object),
                                   hovertemplate=template, showlegend=False,
                                   marker=dict(color=frame[column], coloraxis="coloraxis")))
        fig.update_layout(coloraxis=dict(colorscale=scale, cmin=float(low), cmax=float(high)))
    fig.update_traces(marker=dict(size=7, opacity=0.85, line=dict(width=0.5, color="white")))
    if hover_hint:
        for trace in fig.data:
            trace.hovertemplate = trace.hovertemplate.replace("<extra>", f"<br><i>{hover_hint}</i><extra>")
    if ringed is not None and len(ringed):
        coords = catalog.models[model_id].projection.coords[list(ringed)]
        fig.add_trace(go.Scatter(  # hoverinfo skip: clicks go through to the point underneath
            x=coords[:, 0], y=coords[:, 1], mode="markers", name=ringed_label or "ringed", hoverinfo="skip",
            marker=dict(symbol="circle-open", size=15, color=app.REFERENCE_COLOURS["oracle"], line=dict(width=2.2)),
        ))
    if marker is not None:
        fig.add_trace(go.Scatter(
            x=[marker[0]], y=[marker[1]], mode="markers", name=marker_label, hoverinfo="name",
            marker=dict(symbol="star", size=22, color="#111827", line=dict(width=2, color="#facc15")),
        ))
    fig = style_figure(fig, height, grid=False, legend="bottom")
    fig.update_xaxes(showticklabels=False, title=None, showline=True, mirror=True)
    fig.update_yaxes(showticklabels=False, title=None, showline=True, mirror=True)
    if categorical:  # the values alone ("0" … "10" for room types) do not say what they are
        # Above the entries: beside them, plotly wraps the row too late and cuts entries off.
        fig.update_layout(legend_title=dict(text=column.replace("_", " "), side="top"))
    else:
        fig.update_layout(coloraxis_colorbar=dict(title=column.replace("_", " "), thickness=12, len=0.8))
    return fig


def chart(fig, key: str, **kwargs):
    """st.plotly_chart without Streamlit's chart theme, which would replace our method and
    category colours with its own palette (10 colours, so 14 pose activities would repeat)."""
    kwargs.setdefault("config", {"displayModeBar": False, "displaylogo": False})
    return st.plotly_chart(fig, theme=None, key=key, **kwargs)


def ordering_figure(result, colour: str, x_max: float, height: int = 250):
    """One model's whole-gallery ordering for a query: embedding distance (÷ its largest, so
    every model shares the y axis) against label distance, the top K in the model's colour and
    the binned median as a line: monotone for a graded ordering, a step for near / far only."""
    import numpy as np
    import plotly.graph_objects as go

    scaled = result.embedding_distance / max(float(result.embedding_distance.max()), 1e-12)
    rest = ~result.top
    hover = "gallery #%{customdata[0]}<br>label distance %{x:.3f}<br>embedding distance %{customdata[1]:.4f}<br>rank %{customdata[2]}<extra></extra>"
    custom = np.stack([result.gallery_index, result.embedding_distance, result.rank], axis=1)
    trend_x, trend_y = app.ordering.binned_trend(result.label_distance, scaled)
    spearman = dict(x=0.02, y=0.98, xref="paper", yref="paper", xanchor="left", yanchor="top", showarrow=False,
                    text=f"Spearman ρ = {result.spearman:.2f}", font=dict(size=13, color="#1f1a2e"),
                    bgcolor="rgba(255,255,255,0.85)")
    fig = go.Figure(data=[
        go.Scattergl(x=result.label_distance[rest], y=scaled[rest], mode="markers", name="gallery",
                     customdata=custom[rest], hovertemplate=hover, marker=dict(size=4, color="#b8b0cc", opacity=0.55)),
        go.Scatter(x=trend_x, y=trend_y, mode="lines", name="median", hoverinfo="skip",
                   line=dict(color=colour, width=2.5, dash="dot")),
        go.Scattergl(x=result.label_distance[result.top], y=scaled[result.top], mode="markers", name=f"top {result.k}",
                     customdata=custom[result.top], hovertemplate=hover,
                     marker=dict(size=9, color=colour, line=dict(width=1.2, color="white"))),
    ], layout=dict(annotations=[spearman]))
    return style_figure(fig, height, legend="bottom", showlegend=False, margin=dict(l=8, r=8, t=8, b=8),
                        xaxis=dict(title=dict(text="label distance to the query →", font=dict(size=11)), range=[0, x_max * 1.03]),
                        yaxis=dict(title=dict(text="embedding distance (÷ max)", font=dict(size=11)), range=[0, 1.05]))
