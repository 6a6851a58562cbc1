"""Upload: query the gallery with your own image (or, on the caption task, a text)."""
import io

import streamlit as st

from dml_core import views
from dml_core.images import MAX_BYTES, MAX_PIXELS, UPLOAD_EXTENSIONS, ImageInputError
from pages import _common as ui


task = ui.task_selector()
catalog = ui.catalog_or_none(task)
if catalog is None:
    st.stop()
views.warm_backbone_async()  # the first upload then does not wait for the backbone's weights

model_ids = ui.model_picker(catalog, "up_models")
k = st.sidebar.slider("Results per model (K)", 5, 20, 10, key="up_k")

ui.page_header("Upload", "Your own image as the query: which gallery images does each model think are closest?")
size = catalog.gallery.images.shape[1]
limits = (f"PNG, JPEG, WebP, BMP or GIF (first frame) · at most {MAX_BYTES / 2**20:.0f} MB and {MAX_PIXELS / 1e6:.0f} megapixels · "
          f"centre-cropped to a square and resized to {size}×{size} px, like the gallery.")

left, middle, right = st.columns([1.25, 0.8, 1.6], gap="large")
with left:
    uploaded = st.file_uploader("Query image", type=list(UPLOAD_EXTENSIONS), key=f"up_file_{task}", help=limits)
    st.caption(limits)
    sample = st.selectbox(
        "…or try a query-set image (never in the gallery)", [None, *range(len(catalog.queries))], key=f"up_sample_{task}",
        format_func=lambda i: "—" if i is None else f"#{i} · {views.query_caption(catalog.task, catalog.queries, i)}"[:80],
    )

data, name = None, None
if uploaded is not None:
    data, name = uploaded.getvalue(), uploaded.name
elif sample is not None:
    buffer = io.BytesIO()
    catalog.queries.image(sample).save(buffer, format="PNG")
    data, name = buffer.getvalue(), f"query #{sample}"

if data is None:
    with middle:
        st.markdown("<div class='bb-sub' style='margin-top:2rem'>Your image will appear here.</div>", unsafe_allow_html=True)
    result = None
elif not model_ids:
    st.info("Choose at least one model in the sidebar.")
    result = None
else:
    with_map = [m for m in model_ids if catalog.models[m].projection is not None][:1]
    try:
        with st.spinner("Embedding your image…"):
            result = views.query_with_image_bytes(catalog, data, model_ids, k, place_on=with_map)
    except ImageInputError as exc:
        st.error(f"**{name}** cannot be used: {exc}.")
        result = None
    except Exception as exc:  # never a traceback in front of a person
        st.error(f"Something went wrong while searching with **{name}**: {type(exc).__name__}: {exc}".splitlines()[0])
        result = None

if result is not None:
    with middle:
        st.image(result.image, caption=f"{name} · {result.original_size[0]}×{result.original_size[1]} px, as the models see it",
                 width="stretch")
    with right:
        map_model = next(iter(result.positions), None)
        if map_model is not None and result.positions[map_model] is not None:
            colour_by = catalog.task.attributes[0]
            st.markdown(f"**Where it lands** on the gallery map of *{views.model_label(catalog.models[map_model])}*")
            ui.chart(ui.projection_figure(catalog, map_model, colour_by, marker=result.positions[map_model],
                                          marker_label="your image", height=330), key=f"up_map_{task}")
        else:
            st.caption("None of the chosen models has a gallery map (maps are built for d=128, seed 0).")

    thumbs = ui.thumbs(task)
    columns = st.columns(len(model_ids), gap="medium")
    for column, model_id in zip(columns, model_ids):
        with column:
            ui.model_header(catalog, model_id)
            ui.tile_grid(views.hit_tiles(thumbs, result.hits[model_id]))
    t = result.timings_ms
    st.caption(
        f"Badges show the embedding distance (no label is known for your image). "
        f"Server time: {t['total_ms']:.0f} ms (decode {t['decode_ms']:.0f}, backbone {t['backbone_ms']:.0f}, "
        + ", ".join(f"{m} {t[f'{m}_ms']:.0f}" for m in result.hits) + ")."
    )

# ----------------------------------------------------------------------------- text query
if task == "caption":
    st.divider()
    st.subheader("Query with text")
    text_models = views.text_model_ids(catalog)
    if not text_models:
        st.info(
            "Text search needs a **cross-modal** model: one that embeds captions and images into the same space "
            "(method `cross_modal`). This build has none for the caption task; `python -m dml_core build` makes "
            "one. Image-only models cannot place a sentence among the images, so there is nothing honest to "
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
                        ui.tile_grid(views.hit_tiles(thumbs, hits[model_id]))
                st.caption(f"Badges show the embedding distance to your sentence. Server time: {timings['total_ms']:.0f} ms.")
