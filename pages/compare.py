"""Compare: one query, the top K of 2–3 models side by side, and the label-space oracle."""
import random
import time

import streamlit as st

from dml_core import views
from pages import _common as ui

started = time.perf_counter()
task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()

model_ids = ui.model_picker(catalog, "cmp_models")
k = st.sidebar.slider("Results per model (K)", 5, 20, 10, key="cmp_k")
show_oracle = st.sidebar.toggle("Oracle column", value=True, key="cmp_oracle",
                                help="The gallery sorted by true label distance: the best any model could return.")

ui.page_header("Compare", "Same query, different losses: does the ranking follow the <b>degree</b> of similarity?")
queries = catalog.queries

# ------------------------------------------------------------------------- query picker
left, right = st.columns([0.75, 2.25], gap="large")
with right:
    attributes = views.categorical_attributes(catalog.task, queries)
    filter_cols = st.columns([0.9, 0.9, 2.1, 0.85], vertical_alignment="bottom")
    remember_attr = ui.persist(f"cmp_attr_{task}", "any", ["any", *attributes])
    attribute = filter_cols[0].selectbox("Filter by", ["any", *attributes], key=f"cmp_attr_{task}", on_change=remember_attr,
                                         format_func=lambda a: a.replace("_", " "))
    value = None
    if attribute != "any":
        values = views.attribute_values(queries, attribute)
        remember_value = ui.persist(f"cmp_value_{task}_{attribute}", values[0], values)
        value = filter_cols[1].selectbox(attribute.replace("_", " "), values, key=f"cmp_value_{task}_{attribute}",
                                         on_change=remember_value)
    candidates = views.filter_queries(queries, None if attribute == "any" else attribute, value)
    query_key = f"cmp_query_{task}"
    remember_query = ui.persist(query_key, ui.current_query(task) if ui.current_query(task) in candidates else candidates[0],
                                candidates)

    def pick_random():
        choice = random.choice(candidates)
        st.session_state[f"_keep_{query_key}"] = choice

    query_index = filter_cols[2].selectbox(
        f"Query ({len(candidates)} of {len(queries)})", candidates, key=query_key, on_change=remember_query,
        format_func=lambda i: f"#{i} · {views.query_caption(catalog.task, queries, i)}"[:90],
    )
    filter_cols[3].button("Random", icon="🎲", on_click=pick_random, width="stretch")
    ui.set_current_query(task, query_index)

    meta = views.image_meta(queries, query_index)
    if "captions" in meta:
        st.markdown("**Captions**\n" + "\n".join(f"- {c}" for c in meta["captions"]))
    facts = [f"**{a.replace('_', ' ')}** {meta[a]:.2f}" if isinstance(meta[a], float) else f"**{a.replace('_', ' ')}** {meta[a]}"
             for a in catalog.task.attributes if a in meta]
    st.markdown(" · ".join(facts))
    st.caption(
        f"{len(catalog.gallery)} gallery images, {len(queries)} queries; queries are never in the gallery. "
        "Each result's badge is its label distance to the query (lower = more similar)."
    )
    ui.distance_legend()

with left:
    drawn = catalog.task.draw_label(queries.image(query_index), queries.labels[query_index], meta)
    st.image(drawn, caption=f"Query #{query_index} with its label drawn", width="stretch")

# ------------------------------------------------------------------------------ results
if not model_ids:
    st.info("Choose at least one model in the sidebar.")
    st.stop()

query_start = time.perf_counter()
hits = catalog.hits_for_query(query_index, model_ids, k)
scores = views.compare_scores(catalog, query_index, model_ids, k)
oracle = catalog.oracle(query_index, k) if show_oracle else None
query_ms = (time.perf_counter() - query_start) * 1000

row = catalog.label_dist[query_index]
thumbs = ui.thumbs(task)
columns = st.columns(len(model_ids) + (1 if show_oracle else 0), gap="medium")
first = scores[model_ids[0]]
for column, model_id in zip(columns, model_ids):
    with column:
        ui.model_header(catalog, model_id)
        ndcg, mld = scores[model_id]["ndcg"], scores[model_id]["mld"]
        is_first = model_id == model_ids[0]
        a, b = st.columns(2)
        # The first column is the reference; its "delta" line keeps every column's tiles aligned.
        a.metric(f"nDCG@{k}", f"{ndcg:.3f}", "reference" if is_first else f"{ndcg - first['ndcg']:+.3f}",
                 delta_color="off" if is_first else "normal", delta_arrow="off" if is_first else "auto",
                 help="Higher is better; 1 = the oracle's ranking. Delta vs the first column.")
        b.metric(f"mean dist@{k}", f"{mld:.3f}", "reference" if is_first else f"{mld - first['mld']:+.3f}",
                 delta_color="off" if is_first else "inverse", delta_arrow="off" if is_first else "auto",
                 help="Mean label distance of the top K; lower is better. Delta vs the first column.")
        ui.tile_grid(views.hit_tiles(thumbs, hits[model_id], row))
if show_oracle:
    with columns[-1]:
        ui.oracle_header(k)
        a, b = st.columns(2)
        a.metric(f"nDCG@{k}", "1.000", "best possible", delta_color="off", delta_arrow="off")
        b.metric(f"mean dist@{k}", f"{scores['oracle']['mld']:.3f}", "best possible", delta_color="off", delta_arrow="off",
                 help="The lowest mean label distance possible.")
        ui.tile_grid(views.hit_tiles(thumbs, oracle, row))

st.caption(f"Retrieval and scores {query_ms:.0f} ms · page {1000 * (time.perf_counter() - started):.0f} ms (server side)")
