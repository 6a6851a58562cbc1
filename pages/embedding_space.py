"""Embedding space: the gallery's UMAP maps of two models side by side, coloured by an attribute
or by the label distance to a query; select to see the images."""
import streamlit as st

from dml_core import app
from dml_core.app import maps
from pages import _common as ui

PER_PAGE = 48
CLICK_HINT = "click: show this image"

# ----------------------------------------------------------------- deep link (URL state)
# ?task=pose&query=12&colour=query_distance: every value is checked against what is built;
# a value that does not fit is ignored (said in plain words) and the page's default used.
link = ui.incoming_link() or {}
link_problems = []
ui.follow_task_link(link, link_problems)

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()

mapped = catalog.model_ids(main_only=True)
if not mapped:
    st.info("No model of this build has a gallery map (maps are built for d=128, seed 0).")
    st.stop()

# The query is Compare's; a link may name a gallery image instead, which holds until Compare
# picks another query (kept with the Compare query it replaced).
ref_key = f"emb_ref_{task}"
if "query" in link:
    try:
        linked = app.ordering.QueryRef.parse(link["query"][0], catalog)
        if linked.split == "query":
            ui.set_current_query(task, linked.index)
            st.session_state.pop(ref_key, None)
        else:
            st.session_state[ref_key] = (linked.token, ui.current_query(task))
    except ValueError as exc:
        link_problems.append(str(exc))


def page_query():
    """The query the maps are read against, or None: a linked gallery image, else Compare's."""
    compare_query = ui.current_query(task)
    held = st.session_state.get(ref_key)
    token = held[0] if held and held[1] == compare_query else compare_query
    try:
        return None if token is None else app.ordering.QueryRef.parse(token, catalog)
    except ValueError:  # a query of an earlier build, no longer there
        return None


ref = page_query()
choices = maps.colour_choices(catalog, has_query=ref is not None)
colour_key = f"emb_colour_{task}"
if "colour" in link:
    if link["colour"][0] in choices:
        st.session_state[f"_keep_{colour_key}"] = link["colour"][0]
    else:
        link_problems.append(f"colouring {link['colour'][0][:40]!r} is not one of this task's"
                             + ("" if ref is not None else " (there is no query to measure distances from)"))
remember_colour = ui.persist(colour_key, choices[0], choices)
colour_by = st.sidebar.selectbox(
    "Colour by", choices, key=colour_key, on_change=remember_colour,
    format_func=lambda c: f"label distance to {ref.label()}" if c == maps.QUERY_DISTANCE else c.replace("_", " "),
    help="Numbers (label distance, yaw, room size…) on one continuous scale shared by both maps; categories in discrete colours.")
defaults = app.default_model_ids(catalog)
defaults = [m for m in defaults if m in mapped] + [m for m in mapped if m not in defaults]
show_query = st.sidebar.toggle("Show the query", value=True, key="emb_show_query",
                               help=f"The query (Compare's, or the link's) as a star on each map, its {maps.NEAREST} "
                                    "label-nearest gallery images ringed.",
                               disabled=ref is None)
ui.publish_link({"task": task, **({"query": ref.token} if ref is not None else {}), "colour": colour_by})

ui.page_header("Embedding space", "UMAP maps of the gallery, one per model. Coloured by the label distance to a query, "
               "they show where the images close to it in label space sit: in a gradient around the query or scattered "
               "over clusters; ρ under each map says how much of the label ordering around the query the map keeps. "
               "Click a point to see its image; drag to zoom; box or lasso select (plot toolbar) shows many. "
               "The same images are ringed on the other map.")
if link_problems:
    st.warning("Part of the link was ignored: " + "; ".join(link_problems) + ".")

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
# Both maps colour the same gallery, so one range over its values is the range of both: a
# colour means the same label distance (or yaw, room width…) on either map.
values = maps.colour_values(catalog, colour_by, ref)
value_range = maps.shared_range(values)
value_title = "label distance" if colour_by == maps.QUERY_DISTANCE else colour_by
placed = show_query and ref is not None
nearest = maps.label_nearest(catalog, ref) if placed else None
maps_row = st.columns(2, gap="large")
for side, (column, model_id) in enumerate(zip(maps_row, chosen)):
    with column:
        ui.model_header(catalog, model_id)
        marker = maps.query_position(catalog, model_id, ref) if placed else None
        fig = ui.projection_figure(catalog, model_id, colour_by, marker=marker,
                                   marker_label=ref.label() if ref is not None else "query", hover_hint=CLICK_HINT,
                                   values=values, value_range=value_range, value_title=value_title,
                                   scale=maps.colour_scale(colour_by), ringed=nearest,
                                   ringed_label=f"{maps.NEAREST} label-nearest")
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
        if ref is not None:
            rho, mean_rho = maps.map_spearman(catalog, model_id, ref), maps.mean_map_spearman(catalog, model_id)
            st.caption(f"map ρ = **{rho:.2f}** around {ref.label()} · {mean_rho:.2f} averaged over the "
                       f"{len(catalog.queries)} queries".replace("nan", "undefined"))

if ref is not None:
    st.caption(f"ρ: Spearman correlation, over the gallery, between each image's label distance to {ref.label()} and "
               "its distance to the query on the map; 1 = the map keeps the label ordering, 0 = none. "
               + (f"★ = {ref.label()}, placed among its nearest gallery points on each map; "
                  f"green rings = its {maps.NEAREST} nearest gallery images in label space (the oracle's top {maps.NEAREST})."
                  if placed else ""))
else:
    st.caption("Pick a query on the Compare page to colour the maps by each image's label distance to it.")

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
    shown_values = values if values is not None else catalog.gallery.meta[colour_by]
    page_images, page, pages = app.page_of(selection, st.session_state.get(page_key, 1), PER_PAGE)
    heading, pager = st.columns([3, 1], vertical_alignment="bottom")
    first = (page - 1) * PER_PAGE + 1
    heading.markdown(f"**{len(selection)} selected on {label}** (ringed on both maps)"
                     + (f" · images {first}–{first + len(page_images) - 1}" if pages > 1 else ""))
    if pages > 1:
        pager.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1, key=page_key)
    ui.tile_grid([app.Tile(thumbs[i], None, app.format_value(shown_values[i]), "#475569",
                           f"gallery #{i} · {value_title.replace('_', ' ')} {app.format_value(shown_values[i])}")
                  for i in page_images], min_width=84)
