"""Upload: query the gallery with your own image (or, on the caption task, a text)."""
import io

import plotly.graph_objects as go
import streamlit as st

from dml_core import app
from dml_core.app import MAX_BYTES, MAX_PIXELS, UPLOAD_EXTENSIONS, ImageInputError
from pages import _common as ui

SOURCES = {"file": "your file", "query_set": "a query-set image"}

task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
app.warm_backbone_async()  # the first upload then does not wait for the backbone's weights

model_ids = ui.model_picker(catalog, "up_models")
k = st.sidebar.slider("Results per model (K)", 5, 20, 10, key="up_k")

ui.page_header("Upload", "Your own image as the query: which gallery images does each model think are closest?")
size = catalog.gallery.images.shape[1]
limits = (f"PNG, JPEG, WebP, BMP or GIF (first frame) · at most {MAX_BYTES / 2**20:.0f} MB and {MAX_PIXELS / 1e6:.0f} "
          f"megapixels · centre-cropped to a square and resized to {size}×{size} px, like the gallery.")
source_key, file_key, sample_key = f"up_source_{task}", f"up_file_{task}", f"up_sample_{task}"
st.session_state.setdefault(source_key, "file")


def use(source: str):
    """on_change of an input: the input just given becomes the query (the radio shows it)."""
    def callback():
        st.session_state[source_key] = source
    return callback


def typicality_figure(typicality):
    """The query set's nearest-gallery distances as dots, the image as a diamond: the score's scale."""
    reference = typicality.reference
    colour = "#dc2626" if typicality.unfamiliar else "#16a34a"
    fig = go.Figure([
        go.Scatter(x=reference, y=[0] * len(reference), mode="markers", name="query-set images",
                   marker=dict(size=7, color="rgba(107,100,128,.45)", line=dict(width=0)),
                   hovertemplate="a query-set image: %{x:.3f}<extra></extra>"),
        go.Scatter(x=[typicality.distance], y=[0], mode="markers", name="your image",
                   marker=dict(symbol="diamond", size=15, color=colour, line=dict(width=1.5, color="white")),
                   hovertemplate="this image: %{x:.3f}<extra></extra>"),
    ])
    fig.add_vline(typicality.fence, line=dict(color="#dc2626", dash="dash", width=1.2))
    fig.update_yaxes(visible=False, range=[-1, 1])
    fig.update_xaxes(title=dict(text="distance to the nearest gallery image", font=dict(size=10)), rangemode="tozero")
    fig = ui.style_figure(fig, 96, legend="bottom")
    fig.update_layout(showlegend=False, margin=dict(l=6, r=6, t=6, b=6))
    return fig


left, right = st.columns([1, 2.5], gap="large")
with left:
    source = st.radio("Query with", list(SOURCES), format_func=SOURCES.get, key=source_key, horizontal=True)
    uploaded = st.file_uploader("Your image (one file: drop or click to replace it)", type=list(UPLOAD_EXTENSIONS),
                                key=file_key, help=limits, on_change=use("file"))
    sample = st.selectbox(
        "A query-set image (never in the gallery)", [None, *range(len(catalog.queries))], key=sample_key,
        on_change=use("query_set"),
        format_func=lambda i: "—" if i is None else f"#{i} · {app.query_caption(catalog.task, catalog.queries, i)}"[:80],
    )
    query_slot = st.container()

data, name = None, None
if source == "file" and uploaded is not None:
    data, name = uploaded.getvalue(), uploaded.name
elif source == "query_set" and sample is not None:
    buffer = io.BytesIO()
    catalog.queries.image(sample).save(buffer, format="PNG")
    data, name = buffer.getvalue(), f"#{sample} · {app.query_caption(catalog.task, catalog.queries, sample)}"

result = None
if data is None:
    with query_slot:
        wanted = "an image file above" if source == "file" else "a query-set image above"
        st.markdown(f"<div class='bb-sub'>Choose {wanted}; its results appear on the right. {limits}</div>",
                    unsafe_allow_html=True)
elif not model_ids:
    with right:
        st.info("Choose at least one model in the sidebar.")
else:
    with_map = [m for m in model_ids if catalog.models[m].projection is not None][:1]
    try:
        with st.spinner("Embedding your image…"):
            result = app.query_with_image_bytes(catalog, data, model_ids, k, place_on=with_map)
    except ImageInputError as exc:
        with query_slot:
            st.error(f"**{name}** cannot be used: {exc}.")
    except Exception as exc:  # never a traceback in front of a person
        with query_slot:
            st.error(f"Something went wrong while searching with **{name}**: {type(exc).__name__}: {exc}".splitlines()[0])

if result is not None:
    typicality = result.typicality
    with query_slot:
        st.markdown(f"**Query: {SOURCES[source]}** — {name}")
        image_column, facts_column = st.columns([1, 1.25], gap="small")
        image_column.image(result.image, width="stretch",
                           caption=f"{result.original_size[0]}×{result.original_size[1]} px → {size}×{size}, as the models see it")
        if typicality is not None:
            facts_column.markdown(
                f"<div class='bb-sub'>Out-of-domain score</div><div class='bb-score'>{typicality.percentile:.0f}"
                f"<span class='bb-sub'> / 100</span></div><div class='bb-sub'>percentile among the query set's "
                f"{len(typicality.reference)} images · {typicality.times_median:.1f}× their median distance to the "
                f"gallery</div>", unsafe_allow_html=True,
                help="The share (%) of the query set's own images (generated like the gallery, never in it) whose "
                     "ImageNet features lie closer to the gallery than this image's: generated images spread over "
                     "0–100. The warning uses the distance itself: beyond Q3 + 3 IQR of the query set's distances "
                     "(the dashed line below), the image is unlike the gallery.")
            ui.chart(typicality_figure(typicality), key=f"up_typicality_{task}")
            st.caption(typicality.summary() + ".")

    thumbs = ui.thumbs(task)
    with right:
        if typicality is not None and typicality.unfamiliar:
            st.warning("**Unlike the gallery.** The gallery is procedural (generated images), and this image is farther "
                       "from all of it than the query set's images are: the results show what the models make of an "
                       "unfamiliar image, not images that match it.", icon=":material/warning:")
        for column, model_id in zip(st.columns(len(model_ids), gap="medium"), model_ids):
            with column:
                ui.model_header(catalog, model_id)
                ui.tile_grid(app.hit_tiles(thumbs, result.hits[model_id]), min_width=78)
        t = result.timings_ms
        st.caption(
            "Badges show the embedding distance (no label is known for your image). "
            f"Server time: {t['total_ms']:.0f} ms (decode {t['decode_ms']:.0f}, backbone {t['backbone_ms']:.0f}, "
            + ", ".join(f"{m} {t[f'{m}_ms']:.0f}" for m in result.hits) + ")."
        )
        query_columns = {"query": name, "source": SOURCES[source]}
        if typicality is not None:
            query_columns |= {"typicality_percentile": round(typicality.percentile, 2),
                              "nearest_gallery_feature_distance": round(typicality.distance, 6)}
        records = app.export.results_records(catalog, result.hits, query=query_columns)
        stem = f"{task}-upload-results"
        downloads = st.container(horizontal=True)
        downloads.download_button("Results as CSV", app.export.records_csv(records), f"{stem}.csv", "text/csv",
                                  key="up_csv", icon=":material/download:")
        downloads.download_button(
            "Results as JSON", app.export.records_json(
                records, task=task, query=name, source=SOURCES[source], k=k, timings_ms=t,
                typicality=None if typicality is None else typicality.to_dict(),
                models={m: app.model_label(catalog.models[m]) for m in result.hits}),
            f"{stem}.json", "application/json", key="up_json", icon=":material/download:")

    map_model = next(iter(result.positions), None)
    if map_model is not None and result.positions[map_model] is not None:
        st.markdown(f"**Where it lands** on the gallery map of *{app.model_label(catalog.models[map_model])}*")
        ui.chart(ui.projection_figure(catalog, map_model, catalog.task.attributes[0], marker=result.positions[map_model],
                                      marker_label="your image", height=380), key=f"up_map_{task}")
    else:
        st.caption("None of the chosen models has a gallery map (maps are built for d=128, seed 0).")

# ----------------------------------------------------------------------------- text query
if catalog.task.has_captions:
    st.divider()
    st.subheader("Query with text")
    text_models = catalog.text_model_ids()
    if not text_models:
        st.info(
            "Text search needs a **cross-modal** model: one that embeds captions and images into the same space "
            f"(method `cross_modal`). This build has none for this task; `python -m dml_core build --tasks {task}` "
            "makes one. Image-only models cannot place a sentence among the images, so there is nothing honest to "
            "search with yet."
        )
    else:
        example = catalog.gallery.meta["captions"][0][0] if "captions" in catalog.gallery.meta else "a red car"
        text = st.text_input("Describe the scene", placeholder=f"e.g. {example}", key="up_text", max_chars=500,
                             help="Embedded with the caption task's sentence model, then mapped into the image space by "
                                  "the cross-modal model's text head.")
        if text.strip():
            try:
                hits, timings = catalog.hits_for_text(text, text_models, k)
            except Exception as exc:  # plain words, never a traceback
                st.error(f"The text search failed: {exc}".splitlines()[0])
            else:
                thumbs = ui.thumbs(task)
                for column, model_id in zip(st.columns(max(len(text_models), 2)), text_models):
                    with column:
                        ui.model_header(catalog, model_id)
                        ui.tile_grid(app.hit_tiles(thumbs, hits[model_id]))
                st.caption(f"Badges show the embedding distance to your sentence. Server time: {timings['total_ms']:.0f} ms.")
