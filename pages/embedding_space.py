"""Embedding space: the gallery's UMAP maps of two models side by side; select to see the images."""
import streamlit as st

from dml_core import views
from pages import _common as ui

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()

mapped = catalog.model_ids(main_only=True)
if not mapped:
    st.info("No model of this build has a gallery map (maps are built for d=128, seed 0).")
    st.stop()
attributes = [a for a in catalog.task.attributes if a in catalog.gallery.meta]
remember_colour = ui.persist(f"emb_colour_{task}", attributes[0], attributes)
colour_by = st.sidebar.selectbox("Colour by", attributes, key=f"emb_colour_{task}", on_change=remember_colour,
                                 format_func=lambda a: a.replace("_", " "))
defaults = views.default_model_ids(catalog)
defaults = [m for m in defaults if m in mapped] + [m for m in mapped if m not in defaults]
query_index = ui.current_query(task)
show_query = st.sidebar.toggle("Show the Compare query", value=True, key="emb_show_query",
                               help="The query picked on the Compare page, placed on each map.",
                               disabled=query_index is None)

ui.page_header("Embedding space", "UMAP maps of the gallery: binary losses tend to form tight clusters, "
               "continuous ones keep the gradation inside them. Drag a box or lasso to see the images.")

pickers = st.columns(2, gap="large")
chosen = []
for side, (column, default) in enumerate(zip(pickers, defaults[:2] + defaults[:1])):
    key = f"emb_model_{side}_{task}"
    remember = ui.persist(key, default, mapped)
    chosen.append(column.selectbox("Model", mapped, key=key, on_change=remember,
                                   format_func=lambda m: views.model_label(catalog.models[m]),
                                   label_visibility="collapsed"))

plot_keys = [f"emb_plot_{side}_{task}_{model_id}" for side, model_id in enumerate(chosen)]
# Points selected on one map are ringed on the other: where do the same images land there?
previous = [views.selected_indices(st.session_state.get(key)) for key in plot_keys]
selections = []
maps = st.columns(2, gap="large")
for side, (column, model_id) in enumerate(zip(maps, chosen)):
    with column:
        ui.model_header(catalog, model_id)
        marker = None
        if show_query and query_index is not None:
            marker = views.stored_query_position(catalog, model_id, query_index)
        fig = ui.projection_figure(catalog, model_id, colour_by, marker=marker, marker_label=f"query #{query_index}")
        other = previous[1 - side]
        if other:
            coords = catalog.models[model_id].projection.coords[other]
            fig.add_scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", name="selected on the other map",
                            hoverinfo="skip", marker=dict(symbol="circle-open", size=14, color="#111827", line=dict(width=2)))
        fig.update_layout(dragmode="select")  # dragging selects (box); lasso and zoom are in the toolbar
        event = ui.chart(fig, key=plot_keys[side], on_select="rerun", selection_mode=("box", "lasso"),
                         config={"displaylogo": False, "modeBarButtonsToRemove": ["toImage"]})
        selections.append(views.selected_indices(event))

if query_index is not None and show_query:
    st.caption(f"★ = query #{query_index} from the Compare page, placed among its nearest gallery points on each map.")

picked = [(side, indices) for side, indices in enumerate(selections) if indices]
if not picked:
    st.markdown("<div class='bb-sub'>Select points on either map (box or lasso in the plot's toolbar) "
                "to see those gallery images here.</div>", unsafe_allow_html=True)
else:
    thumbs = ui.thumbs(task)
    limit = 48
    for side, indices in picked:
        label = views.model_label(catalog.models[chosen[side]])
        st.markdown(f"**{len(indices)} selected on {label}**" + (f" (first {limit} shown)" if len(indices) > limit else ""))
        values = catalog.gallery.meta[colour_by]
        tiles = [views.Tile(thumbs[i], None, f"{values[i]:.2f}" if isinstance(values[i], float) else str(values[i]),
                            "#475569", f"gallery #{i} · {colour_by} {values[i]}") for i in indices[:limit]]
        ui.tile_grid(tiles, min_width=84)
