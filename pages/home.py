"""Home: what the lab is, example images of every built task, and where to start."""
from pathlib import Path

import streamlit as st

import pages  # noqa: F401  (a deep link as the first request: see pages/__init__.py)
from dml_core import app
from pages import _common as ui

PAGES = Path(__file__).parent
EXAMPLES = 8
START_HERE = [
    ("compare.py", "Compare", "🔍", "pick a query image and see what a binary-supervised model and a log-ratio model "
     "retrieve, each result badged with its label distance, next to the label-space oracle."),
    ("upload.py", "Upload", "📤", "query with your own image (or, on the captions task, with a sentence)."),
    ("embedding_space.py", "Embedding space", "🗺️", "the whole gallery on a map per model: clusters against gradation; "
     "click a point to see its image."),
    ("training_lab.py", "Training lab", "🧪", "train a model with your own loss, mining and dimension; it then "
     "appears on every page."),
    ("learn_1_beyond_binary.py", "Learn", "📘", "eight short interactive lessons, from *beyond binary* to "
     "verification; they need no build."),
]


@st.cache_resource(max_entries=12, show_spinner=False)
def example_tiles(task: str, root: str, gallery_stamp: float) -> list[app.Tile]:
    """A few gallery images of a built task (the gallery split alone: no models are loaded)."""
    gallery = app.stored_gallery(root, task)
    info = app.get_task(task, root)
    attribute = app.example_attribute(info, gallery)
    thumbs = app.Thumbnails(gallery)
    return [app.Tile(thumbs[i], None, app.format_value(gallery.meta[attribute][i]) if attribute else None, "#475569",
                       app.query_caption(info, gallery, i)) for i in app.example_indices(info, gallery, EXAMPLES)]


ui.page_header("Beyond Binary", "An interactive lab for deep metric learning with continuous labels.")
st.markdown(
    "Most metric learning treats similarity as **binary**: a pair is either *same* or *different*. Yet for human "
    "pose, room layout or image captions, similarity comes in **degrees**. This lab reproduces *Deep Metric Learning "
    "Beyond Binary Supervision* (Kim et al., CVPR 2019), the **log-ratio loss** with **dense triplet mining**, next "
    "to the binary methods it argues against (contrastive loss, triplet loss with hard / semi-hard / easy mining), "
    "on three retrieval tasks whose labels are continuous."
)

with st.container(border=True):
    st.markdown("**Start here**")
    for path, title, icon, what in START_HERE:
        if (PAGES / path).is_file():
            link, text = st.columns([1, 4], vertical_alignment="center")
            with link:
                st.page_link(f"pages/{path}", label=title, icon=icon)
            text.markdown(what)

root = ui.home()
built = ui.built_tasks()
if not built:
    st.info(f"**Nothing is built yet** (looked in `{root}`), so Compare, Upload, Embedding space and Benchmarks "
            f"have no images to show. The Learn pages work without a build.\n\n{ui.BUILD_HINT}")
for task in built:
    st.subheader(ui.task_title(task))
    st.caption(ui.task_blurb(task))
    try:
        tiles = example_tiles(task, root, app.gallery_stamp(root, task))
    except (app.ArtifactError, OSError, ValueError) as exc:
        st.warning(f"The {ui.task_title(task)} gallery cannot be read ({exc}). {ui.BUILD_HINT}")
        continue
    ui.tile_grid(tiles, min_width=110)
