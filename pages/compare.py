"""Compare: one query, how 2–3 models order the whole gallery, their top K and the oracle's, and where two of them disagree."""
import json
import random
import time

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dml_core import app
from dml_core.app import movers as mv
from pages import _common as ui

started = time.perf_counter()

# ----------------------------------------------------------------- deep link (URL state)
link = ui.incoming_link() or {}
link_problems = []
ui.follow_task_link(link, link_problems)

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
ref_key, query_key, models_key = f"cmp_ref_{task}", f"cmp_query_{task}", f"cmp_models_{task}"
if "query" in link:
    try:
        linked = app.ordering.QueryRef.parse(link["query"][0], catalog)
        st.session_state[ref_key] = linked.token if linked.split == "gallery" else None
        if linked.split == "query":
            st.session_state[f"_keep_{query_key}"] = linked.index
            st.session_state[f"_keep_cmp_attr_{task}"] = "any"
    except ValueError as exc:
        link_problems.append(str(exc))
if "models" in link:
    wanted = [m for m in link["models"] if m in catalog.models][:3]
    if len(wanted) < len(link["models"]):
        link_problems.append("some of its models are not built here")
    if wanted:
        st.session_state[f"_keep_{models_key}"] = wanted
if "k" in link:
    try:
        st.session_state["cmp_k"] = min(20, max(5, int(link["k"][0])))
    except ValueError:
        link_problems.append(f"K {link['k'][0][:20]!r} is not a number")

model_ids = ui.model_picker(catalog, "cmp_models")
st.session_state.setdefault("cmp_k", 10)
k = st.sidebar.slider("Results per model (K)", 5, 20, key="cmp_k")
show_oracle = st.sidebar.toggle("Oracle column", value=True, key="cmp_oracle",
                                help="The gallery sorted by true label distance: the best any model could return.")
overlay = st.sidebar.toggle("Draw labels on results", value=True, key="cmp_overlay",
                            help="Skeletons (pose), layout edges (layout), the first caption (captions): judge similarity by eye.")

ui.page_header("Compare", "Same query, different losses: does the ranking follow the <b>degree</b> of similarity?")
if link_problems:
    st.warning("Part of the link was ignored: " + "; ".join(link_problems) + ".")
queries = catalog.queries

# ------------------------------------------------------------------------- query picker
left, right = st.columns([0.62, 2.38], gap="medium")
with right:
    attributes = app.categorical_attributes(catalog.task, queries)
    filter_cols = st.columns([0.8, 0.8, 2.6, 0.5], vertical_alignment="bottom")
    remember_attr = ui.persist(f"cmp_attr_{task}", "any", ["any", *attributes])
    attribute = filter_cols[0].selectbox("Filter by", ["any", *attributes], key=f"cmp_attr_{task}", on_change=remember_attr,
                                         format_func=lambda a: a.replace("_", " "))
    value = None
    if attribute != "any":
        values = app.attribute_values(queries, attribute)
        remember_value = ui.persist(f"cmp_value_{task}_{attribute}", values[0], values)
        value = filter_cols[1].selectbox(attribute.replace("_", " "), values, key=f"cmp_value_{task}_{attribute}",
                                         on_change=remember_value)
    candidates = app.filter_queries(queries, None if attribute == "any" else attribute, value)
    remember_query = ui.persist(query_key, ui.current_query(task) if ui.current_query(task) in candidates else candidates[0],
                                candidates)

    def choose_query():
        remember_query()
        st.session_state[ref_key] = None  # a query-set image replaces a result used as the query

    def pick_random():
        st.session_state[f"_keep_{query_key}"] = random.choice(candidates)
        st.session_state[ref_key] = None

    query_index = filter_cols[2].selectbox(
        f"Query ({len(candidates)} of {len(queries)})", candidates, key=query_key, on_change=choose_query,
        format_func=lambda i: f"#{i} · {app.query_caption(catalog.task, queries, i)}"[:140],
    )
    filter_cols[3].button("🎲", on_click=pick_random, width="stretch", help="A random query (within the filter)")
    ref = app.ordering.QueryRef("query", query_index)
    if st.session_state.get(ref_key):
        ref = app.ordering.QueryRef.parse(st.session_state[ref_key], catalog)
    else:
        ui.set_current_query(task, query_index)
    source = catalog.gallery if ref.split == "gallery" else queries
    meta = app.image_meta(source, ref.index)
    if ref.split == "gallery":
        st.info(f"The query is **{ref.label()}**, a result you clicked; it is left out of its own ranking. "
                "Pick a query above to go back to the query set.")
    if "captions" in meta:
        st.markdown("**Captions** " + " · ".join(f"“{c}”" for c in meta["captions"]))
    st.markdown(app.attribute_line(catalog.task, meta))
    st.caption(f"{len(catalog.gallery)} gallery images, {len(queries)} queries; queries are never in the gallery. "
               "Each result's badge is its label distance to the query (lower = more similar); click a result to make it the query.")
    ui.distance_legend()

with left:
    drawn = catalog.task.draw_label(source.image(ref.index), source.labels[ref.index], meta)
    how = "drawn" if getattr(catalog.task, "label_drawn_on_image", True) else "values"
    st.image(drawn, caption=f"{ref.label().capitalize()} with its label {how}", width="stretch")

if not model_ids:
    st.info("Choose at least one model in the sidebar.")
    st.stop()
ui.publish_link({"task": task, "query": ref.token, "models": model_ids, "k": k})

# ------------------------------------------------------------------------------ results
query_start = time.perf_counter()
orderings = [app.ordering.ordering(catalog, m, ref, k) for m in model_ids]
oracle = app.ordering.oracle_ranking(catalog, ref, k)
query_ms = (time.perf_counter() - query_start) * 1000
row = app.ordering.label_row(catalog, ref)
thumbs = ui.thumbs(task)
link_base = {"task": task, "models": model_ids, "k": k}


def make_query_link(gallery_index: int) -> str:
    return ui.link_to({**link_base, "query": f"g{gallery_index}"})


def hits_of(result: app.ordering.Ordering) -> list:
    ranked = result.ranked()[:k]
    position = {g: i for i, g in enumerate(result.gallery_index)}
    return [app.Hit(int(g), float(result.embedding_distance[position[g]]), float(result.label_distance[position[g]])) for g in ranked]


x_max = float(row.max())
first = orderings[0]
columns = st.columns(len(model_ids) + (1 if show_oracle else 0), gap="medium")
for column, result in zip(columns, orderings):
    model_id = result.model_id
    colour = app.method_colour(catalog.models[model_id].meta["method"])
    is_first = result is first

    def delta(value, reference, higher_better=True):
        if is_first:
            return "reference", None
        gap = value - reference
        return f"{gap:+.3f}", (gap > 0) == higher_better if abs(gap) > 5e-4 else None

    with column:
        ui.model_header(catalog, model_id)
        ndcg_delta, mld_delta = delta(result.ndcg, first.ndcg), delta(result.mld, first.mld, higher_better=False)
        rho_delta = delta(result.spearman, first.spearman)
        st.markdown(
            "<div class='bb-scores'>"
            + app.score_html(f"nDCG@{k}", f"{result.ndcg:.3f}", *ndcg_delta,
                               help=f"1 = the oracle's ranking; a random ranking scores {result.random_ndcg:.3f} here")
            + app.score_html(f"mean dist@{k}", f"{result.mld:.3f}", *mld_delta, help="Mean label distance of the top K; lower is better")
            + app.score_html(app.METRIC_LABELS["spearman"], f"{result.spearman:.2f}", *rho_delta,
                               help="Rank correlation of embedding and label distance over the whole gallery")
            + "</div>"
            + app.scale_html(result.gap_closed, f"{result.mld:.3f}", f"{result.random_mld:.3f}", f"{result.oracle_mld:.3f}", colour),
            unsafe_allow_html=True)
        ui.chart(ui.ordering_figure(result, colour, x_max), key=f"cmp_order_{model_id}")
        ui.tile_grid(app.hit_tiles(thumbs, hits_of(result), row, overlay=overlay, link=make_query_link))
if show_oracle:
    with columns[-1]:
        ui.oracle_header(k)
        st.markdown(
            "<div class='bb-scores'>" + app.score_html(f"nDCG@{k}", "1.000", "best possible")
            + app.score_html(f"mean dist@{k}", f"{first.oracle_mld:.3f}", "best possible")
            + app.score_html(app.METRIC_LABELS["spearman"], "1.00", "by definition") + "</div>"
            + app.scale_html(1.0, f"{first.oracle_mld:.3f}", f"{first.random_mld:.3f}", f"{first.oracle_mld:.3f}", app.REFERENCE_COLOURS["oracle"]),
            unsafe_allow_html=True)
        st.markdown(
            "<div class='bb-sub' style='height:250px;padding-top:1.5rem'>The left plots put every gallery image at its "
            "label distance (x) and the model's embedding distance (y). A model that ranks by the <b>degree</b> of "
            "similarity draws a rising cloud (ρ near 1); one that only learnt <i>near</i> vs <i>far</i> draws a step: "
            "flat near the query, a jump, flat again. The coloured points are the model's top K; the dotted line "
            "the median.</div>", unsafe_allow_html=True)
        ui.tile_grid(app.hit_tiles(thumbs, [app.Hit(int(g), 0.0, float(d)) for g, d in zip(*oracle)], row, overlay=overlay,
                                     link=make_query_link))

# ------------------------------------------------------------------------------- export
export_slot = st.container()  # filled last, so the downloads can carry the movers chosen below

# ------------------------------------------------------------------ where two models differ
st.divider()
st.subheader("Where do two models differ?")
movers, model_a, model_b, movers_ms = None, None, None, 0.0
if len(model_ids) >= 2:
    finder_models = st.columns([1.2, 1.2, 2], vertical_alignment="bottom")
    model_a = finder_models[0].selectbox("Model A", model_ids, index=min(1, len(model_ids) - 1), key=f"cmp_find_a_{task}",
                                         format_func=lambda m: app.model_label(catalog.models[m]))
    model_b = finder_models[1].selectbox("Model B", [m for m in model_ids if m != model_a], key=f"cmp_find_b_{task}",
                                         format_func=lambda m: app.model_label(catalog.models[m]))
    name_a, name_b = app.model_label(catalog.models[model_a]), app.model_label(catalog.models[model_b])
    finder_models[2].caption("A and B for both views below: this query's images, then every query.")
    movers_start = time.perf_counter()
    by_model = {result.model_id: result for result in orderings}
    movers = mv.movers_between(by_model[model_a], by_model[model_b])
    agreement = mv.agreement_between(by_model[model_a], by_model[model_b])
    movers_ms = (time.perf_counter() - movers_start) * 1000


def movers_grid(title: str, colour: str, tiles: list) -> None:
    """A direction's heading and its tiles as one HTML block (one message to the browser)."""
    heading = f"<div class='bb-sub'><span class='bb-dot' style='background:{colour}'></span>{title}</div>"
    body = app.tiles_html(tiles, min_width=84) if tiles else "<div class='bb-sub'><i>none among the candidates</i></div>"
    st.markdown(f"<div class='bb-movers'>{heading}{body}</div>", unsafe_allow_html=True)


def agreement_figure(points: dict, shown: set, colour_a: str, colour_b: str, size: int):
    """Rank under A (x) against rank under B (y), log axes, for the label-nearest images: on the
    diagonal the models agree; above it A ranks the image nearer, below it B does."""
    custom = np.stack([points["gallery"], points["label_rank"], points["label_distance"]], axis=1)
    ringed = np.array([g in shown for g in points["gallery"]], bool)
    diagonal = go.Scatter(x=[1, size], y=[1, size], mode="lines", name="agreement", hoverinfo="skip",
                          line=dict(color=app.PLOT_FONT["color"], width=1, dash="dot"))
    nearest = go.Scatter(
        x=points["rank_a"], y=points["rank_b"], mode="markers", name="label-nearest", customdata=custom,
        hovertemplate="gallery #%{customdata[0]}<br>rank under A %{x}, under B %{y}<br>label rank %{customdata[1]}, "
                      "label distance %{customdata[2]:.3f}<extra></extra>",
        marker=dict(size=np.where(ringed, 12, 8), color=points["label_rank"], colorscale="Viridis", showscale=True,
                    line=dict(width=np.where(ringed, 2, 0.6), color=np.where(ringed, app.PLOT_FONT["color"], "white")),
                    colorbar=dict(title=dict(text="label rank", side="right"), thickness=10, len=0.8)))
    notes = [dict(x=x, y=y, xref="paper", yref="paper", xanchor=anchor, yanchor=y_anchor, showarrow=False, text=text,
                  font=dict(size=11, color=colour), bgcolor="rgba(255,255,255,0.85)")
             for x, y, text, colour, anchor, y_anchor in ((0.02, 0.98, "↖ A ranks nearer", colour_a, "left", "top"),
                                                          (0.98, 0.02, "B ranks nearer ↘", colour_b, "right", "bottom"))]
    axis = dict(type="log", range=[-0.05, np.log10(size) + 0.05], tickfont=dict(size=10), tickvals=mv.log_ticks(size),
                showgrid=True, gridcolor="rgba(31,26,46,0.08)", zeroline=False, showline=True,
                linecolor="rgba(31,26,46,0.2)", automargin=True)
    # One constructor and a bare template instead of ui.style_figure and update_* calls: plotly
    # validates every update, and its plotly_white template alone costs ~60 ms a figure, which
    # would take this page past 300 ms per interaction.
    layout = dict(template="none", height=330, showlegend=False, margin=dict(l=48, r=8, t=8, b=40), font=app.PLOT_FONT,
                  plot_bgcolor="rgba(0,0,0,0)", paper_bgcolor="rgba(0,0,0,0)", annotations=notes,
                  xaxis=dict(axis, title=dict(text="rank under A →", font=dict(size=11))),
                  yaxis=dict(axis, title=dict(text="rank under B →", font=dict(size=11))))
    return go.Figure(data=[diagonal, nearest], layout=layout)


if movers is not None:
    colour_a = app.method_colour(catalog.models[model_a].meta["method"])
    colour_b = app.method_colour(catalog.models[model_b].meta["method"])
    st.markdown(f"**On this query: the images that A and B rank most differently.** {mv.DEFINITION.format(pool=movers.pool)} "
                f"{movers.candidates} of {len(first.gallery_index)} images are candidates.")
    st.caption("Each tile: its label rank in the corner (1 = the label-nearest gallery image); the badge its rank under A "
               "and under B, coloured by how close its label is (as the results above); click to make it the query. The tables "
               "list the same images: rank under A, under B, label rank and label distance.")
    tiles_left, tiles_right, chart_column = st.columns([1, 1, 1.15], gap="medium")
    for column, direction, title, colour in (
            (tiles_left, "a_higher", f"A ({name_a}) ranks much nearer than B", colour_a),
            (tiles_right, "b_higher", f"B ({name_b}) ranks much nearer than A", colour_b)):
        with column:
            chosen = movers.direction(direction)
            movers_grid(title, colour, mv.mover_tiles(thumbs, chosen, row, overlay=overlay, link=make_query_link))
            if chosen:
                st.dataframe(pd.DataFrame(mv.mover_rows(chosen)), hide_index=True, width="stretch",
                             key=f"cmp_movers_{direction}",
                             column_config={"label dist": st.column_config.NumberColumn(format="%.3f")})
    with chart_column:
        shown = {m.gallery for m in movers.a_higher + movers.b_higher}
        rho = mv.rank_correlation(agreement)
        st.markdown(f"<div class='bb-sub'>The {len(agreement['gallery'])} label-nearest images: rank under A against "
                    f"rank under B (ringed: shown as movers; rank agreement ρ = {rho:.2f})</div>", unsafe_allow_html=True)
        ui.chart(agreement_figure(agreement, shown, colour_a, colour_b, len(first.gallery_index)), key="cmp_movers_chart")

records = app.ordering.result_records(ref, orderings, oracle if show_oracle else None)
scores = app.ordering.score_records(ref, orderings)
with export_slot:
    exports = st.columns([1, 1, 1.2, 3.8] if movers is not None else [1, 1, 4], vertical_alignment="center")
    exports[0].download_button("CSV", pd.DataFrame(records).to_csv(index=False), f"{task}-{ref.token}-results.csv",
                               "text/csv", icon="⬇️", width="stretch")
    document = {"task": task, "query": ref.token, "k": k, "scores": scores, "results": records}
    if movers is not None:
        document["movers"] = mv.movers_export(ref.token, model_a, model_b, movers)
        exports[2].download_button("Movers CSV", app.export.records_csv(document["movers"]["records"]),
                                   f"{task}-{ref.token}-movers.csv", "text/csv", icon="⬇️", width="stretch",
                                   help="The images the two models rank most differently (below), with both ranks, "
                                        "label rank and label distance")
    exports[1].download_button("JSON", json.dumps(app.export.plain(document), indent=1), f"{task}-{ref.token}.json",
                               "application/json", icon="⬇️", width="stretch")
    exports[-1].caption(
        "Download this query's results (CSV) or results and scores with their scale (JSON"
        + (", with the movers" if movers is not None else "") + f"). Retrieval and scores {query_ms:.0f} ms"
        + (f" · movers {movers_ms:.1f} ms" if movers is not None else "")
        + f" · page {1000 * (time.perf_counter() - started):.0f} ms (server side) · this view's address is a link to it.")

# ------------------------------------------------------------------------- query finder
if len(model_ids) < 2:
    st.info("Choose two models to compare them image by image and query by query.")
    st.stop()
st.markdown("**Query by query: where each model wins.**")
finder = st.columns([1, 1, 2.4], vertical_alignment="bottom")
metric = finder[0].selectbox("Per-query score", list(app.METRIC_FAMILIES), key="cmp_find_metric",
                             format_func=lambda m: app.METRIC_FAMILIES[m][0].replace("K", str(k)))
tie = finder[1].number_input("Tie if the difference is at most", 0.0, 0.5, app.ordering.DEFAULT_TIE, 0.005, format="%.3f", key="cmp_find_tie")
differences = app.ordering.query_differences(catalog, model_a, model_b, metric, k)
counts = app.ordering.win_tie_loss(differences["advantage"], tie)
metric_name = app.METRIC_FAMILIES[metric][0].replace("K", str(k))
st.markdown(
    f"Over all **{len(differences)}** queries, **{name_a}** is better by more than {tie:g} ({metric_name}) on "
    f"**{counts['wins']}** ({100 * counts['wins'] / len(differences):.0f} %), **{name_b}** on **{counts['losses']}** "
    f"({100 * counts['losses'] / len(differences):.0f} %), and they tie on **{counts['ties']}**"
    + (f"; {counts['undefined']} queries have no defined score" if counts["undefined"] else "") + ".")
plot, lists = st.columns([1.3, 1], gap="large")
with plot:
    colour_a = app.method_colour(catalog.models[model_a].meta["method"])
    colour_b = app.method_colour(catalog.models[model_b].meta["method"])
    advantage = differences["advantage"].dropna()
    fig = go.Figure()
    for part, colour, name in ((advantage[advantage > tie], colour_a, f"{name_a} better"),
                               (advantage[advantage.abs() <= tie], "#9ca3af", "tie"),
                               (advantage[advantage < -tie], colour_b, f"{name_b} better")):
        fig.add_trace(go.Histogram(x=part, name=name, marker_color=colour, xbins=dict(size=max(tie, 1e-3)),
                                   hovertemplate="%{y} queries<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="#1f1a2e", width=1))
    fig.update_layout(barmode="stack", bargap=0.05)
    fig.update_xaxes(title=f"{metric_name}: how much better A is than B, per query (right: A, left: B)")
    fig.update_yaxes(title="queries")
    fig = ui.style_figure(fig, 300)
    fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="left", x=0))
    ui.chart(fig, key="cmp_find_hist")


def open_query(index: int):
    st.session_state[f"_keep_{query_key}"] = int(index)
    st.session_state[f"_keep_cmp_attr_{task}"] = "any"
    st.session_state[ref_key] = None


with lists:
    for favour, name in (("a", name_a), ("b", name_b)):
        top = app.ordering.sorted_by_advantage(differences, favour).head(4)
        st.markdown(f"**Where {name} wins most**")
        cells = st.columns(4)
        for cell, (_, item) in zip(cells, top.iterrows()):
            with cell:
                gap = item["advantage"] if favour == "a" else -item["advantage"]
                st.image(queries.images[int(item["query"])], caption=f"#{int(item['query'])} · by {gap:.3f}", width="stretch")
                st.button("Open", key=f"cmp_open_{favour}_{int(item['query'])}", on_click=open_query, args=(int(item["query"]),),
                          width="stretch")
st.caption("The histogram counts every query: no example is picked for you. Ties use the threshold above; "
           "for mean label distance, lower is better, so “better” means a smaller distance.")
