"""Embedding space: the gallery's UMAP maps of two models side by side; select to see the images."""
import streamlit as st

from dml_core import app
from pages import _common as ui

PER_PAGE = 48
CLICK_HINT = "click: show this image"

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
defaults = app.default_model_ids(catalog)
defaults = [m for m in defaults if m in mapped] + [m for m in mapped if m not in defaults]
query_index = ui.current_query(task)
show_query = st.sidebar.toggle("Show the Compare query", value=True, key="emb_show_query",
                               help="The query picked on the Compare page, placed on each map.",
                               disabled=query_index is None)

ui.page_header("Embedding space", "UMAP maps of the gallery: binary losses tend to form tight clusters, "
               "continuous ones keep the gradation inside them. Click a point to see its image; drag to zoom; "
               "box or lasso select (plot toolbar) shows many. The same images are ringed on the other map.")

pickers = st.columns(2, gap="large")
chosen = []
for side, (column, default) in enumerate(zip(pickers, defaults[:2] + defaults[:1])):
    key = f"emb_model_{side}_{task}"
    remember = ui.persist(key, default, mapped)
    chosen.append(column.selectbox("Model", mapped, key=key, on_change=remember,
                                   format_func=lambda m: app.model_label(catalog.models[m]),
                                   label_visibility="collapsed"))

# The selection lives in the session, set by the charts' callbacks: a chart's own selection
# state is lost whenever its figure changes (rings added), since Streamlit derives the widget's
# identity from the figure. One selection is shown at a time, the newest, ringed on both maps.
selection_key, page_key = f"emb_selection_{task}", f"emb_page_{task}"


def remember_selection(side: int, plot_key: str) -> None:
    held = st.session_state.get(selection_key)
    st.session_state[selection_key] = app.updated_selection(
        held, side, app.selected_indices(st.session_state.get(plot_key)))
    if st.session_state[selection_key] != held:
        st.session_state[page_key] = 1


held = st.session_state.get(selection_key)
shown, selection = held if held else (None, [])
maps = st.columns(2, gap="large")
for side, (column, model_id) in enumerate(zip(maps, chosen)):
    with column:
        ui.model_header(catalog, model_id)
        marker = None
        if show_query and query_index is not None:
            marker = app.stored_query_position(catalog, model_id, query_index)
        fig = ui.projection_figure(catalog, model_id, colour_by, marker=marker, marker_label=f"query #{query_index}",
                                   hover_hint=CLICK_HINT)
        if selection:
            # Ringed on both maps: plotly's own highlight goes with the chart's state (see above).
            coords = catalog.models[model_id].projection.coords[selection]
            fig.add_scatter(x=coords[:, 0], y=coords[:, 1], mode="markers", hoverinfo="skip",
                            name="selected here" if side == shown else "selected on the other map",
                            marker=dict(symbol="circle-open", size=14, color="#111827", line=dict(width=2)))
        # Zoom, not box select, on drag: in select mode Streamlit ignores clicks on points.
        fig.update_layout(dragmode="zoom")
        key = f"emb_plot_{side}_{task}"
        ui.chart(fig, key=key, on_select=lambda side=side, key=key: remember_selection(side, key),
                 selection_mode=("points", "box", "lasso"),
                 config={"displaylogo": False, "modeBarButtonsToRemove": ["toImage"]})

if query_index is not None and show_query:
    st.caption(f"★ = query #{query_index} from the Compare page, placed among its nearest gallery points on each map.")

if not selection:
    st.markdown("<div class='bb-sub'>Click a point on either map to see its image (Streamlit's charts cannot show "
                "images on hover), or pick box or lasso select in the plot's toolbar to see every image in an area. "
                "Double-click a map to zoom out again.</div>", unsafe_allow_html=True)
    st.stop()

label = app.model_label(catalog.models[chosen[shown]])
if len(selection) == 1:
    index = selection[0]
    picture, facts = st.columns([1, 3], gap="large")
    meta = app.image_meta(catalog.gallery, index)
    picture.image(catalog.task.draw_label(catalog.gallery.image(index), catalog.gallery.labels[index], meta),
                  caption=f"Gallery #{index} with its label drawn", width="stretch")
    facts.markdown(f"**Gallery #{index}**, selected on {label} (ringed on both maps)")
    facts.markdown(app.image_facts(catalog.task, catalog.gallery, index))
else:
    thumbs = ui.thumbs(task)
    values = catalog.gallery.meta[colour_by]
    page_images, page, pages = app.page_of(selection, st.session_state.get(page_key, 1), PER_PAGE)
    heading, pager = st.columns([3, 1], vertical_alignment="bottom")
    first = (page - 1) * PER_PAGE + 1
    heading.markdown(f"**{len(selection)} selected on {label}** (ringed on both maps)"
                     + (f" · images {first}–{first + len(page_images) - 1}" if pages > 1 else ""))
    if pages > 1:
        pager.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=page_key)
    ui.tile_grid([app.Tile(thumbs[i], None, app.format_value(values[i]), "#475569",
                             f"gallery #{i} · {colour_by} {values[i]}") for i in page_images], min_width=84)
