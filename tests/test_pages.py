"""Every page runs in AppTest against the tiny build and shows its key elements.

Pages are run one file at a time (``AppTest.from_file("pages/x.py")``) with DML_HOME pointing
at the session's tiny build; the checks compare what a page shows with what the library says.
"""
import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from dml_core import app
from dml_core.app import lab
from dml_core.bench.run import reference_scores
from dml_core.core.store import ArtifactStore
from dml_core.serve import ood
from dml_core.serve.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # first runs load torch, faiss and the catalogs; the machine may be busy


def page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def html_blocks(at: AppTest) -> list[str]:
    """The tile grids (not the app's style sheet, which names the class too)."""
    return [m.value for m in at.markdown if m.value.startswith('<div class="bb-grid"')]


def tile_indices(block: str) -> list[int]:
    """Gallery indices of a tile grid, in display order (from each tile's tooltip)."""
    return [int(i) for i in re.findall(r'title="gallery #(\d+)', block)]


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def trace_length(values) -> int:
    """Points in a plotly trace array (plain list, or plotly's base64 typed array)."""
    if isinstance(values, dict) and "bdata" in values:
        return len(np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])))
    return len(values)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


# ------------------------------------------------------------------------------ compare
def test_compare_shows_both_models_the_oracle_and_each_ordering(use_built_home):
    from dml_core.evaluate import ordering as O

    at = page("compare")
    no_exception(at)
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    query = at.selectbox(key="cmp_query_pose").value
    grids = html_blocks(at)
    assert len(grids) == 3  # binary triplet, log-ratio, oracle
    k = at.slider(key="cmp_k").value
    models = at.multiselect(key="cmp_models_pose").value
    assert models == ["binary_triplet_ft-d128-s0", "log_ratio_ft-d128-s0"]  # the fine-tuned pair, where built
    hits = catalog.hits_for_query(query, models, k)
    for grid, model_id in zip(grids, models):
        assert tile_indices(grid) == [h.gallery_index for h in hits[model_id]]   # the index's search = the ordering's top K
        assert grid.count("<img") == k and grid.count('href="?') == k             # each result links to itself as the query
    assert tile_indices(grids[2]) == [h.gallery_index for h in catalog.oracle(query, k)]
    # Scores with their scale: nDCG, its delta against the first column, and gap closed.
    scores = [O.ordering(catalog, m, O.QueryRef("query", query), k) for m in models]
    text = "\n".join(m.value for m in at.markdown)
    assert f"<span class=\"bb-score-value\">{scores[0].ndcg:.3f}</span>" in text
    assert f"{scores[1].ndcg - scores[0].ndcg:+.3f}" in text
    assert f"gap closed {100 * scores[1].gap_closed:.0f}%" in text and f"random {scores[1].random_mld:.3f}" in text
    # One whole-gallery scatter per model: every gallery image, the top K highlighted, rho shown.
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    orderings = [c for c in charts if any(t.get("name", "").startswith("top ") for t in c["data"])]
    assert len(orderings) == 2
    for chart, result in zip(orderings, scores):
        points = sum(trace_length(t["x"]) for t in chart["data"] if t.get("name") in ("gallery", f"top {k}"))
        assert points == len(catalog.gallery)
        assert f"Spearman ρ = {result.spearman:.2f}" in json.dumps(chart["layout"], ensure_ascii=False)
    assert at.query_params["query"] == str(query) and at.query_params["models"] == models


def test_a_deep_link_opens_its_query_models_and_k(use_built_home):
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=TIMEOUT)
    at.query_params.update({"task": "layout", "query": "4", "models": ["log_ratio-d128-s0", "contrastive-d128-s0"], "k": "6"})
    at.run()
    no_exception(at)
    assert at.selectbox(key="task").value == "layout" and at.selectbox(key="cmp_query_layout").value == 4
    assert at.multiselect(key="cmp_models_layout").value == ["log_ratio-d128-s0", "contrastive-d128-s0"]
    assert at.slider(key="cmp_k").value == 6 and all(g.count("<img") == 6 for g in html_blocks(at))
    # a result's link: a gallery image as the query, never ranked against itself
    at.query_params["query"] = "g2"
    at.run()
    no_exception(at)
    assert any("gallery #2" in i.value for i in at.info)
    assert all(2 not in tile_indices(g) for g in html_blocks(at)[:2])


@pytest.mark.parametrize("params", [{"task": "../../etc/passwd"}, {"task": "pose", "query": "../../../etc/passwd"},
                                    {"task": "pose", "models": "/etc/shadow", "k": "lots"}])
def test_a_link_with_escaping_or_bad_values_is_refused_in_plain_words(use_built_home, params):
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    no_exception(at)
    assert any("Part of the link was ignored" in w.value for w in at.warning)
    assert at.selectbox(key="task").value == "pose" and len(html_blocks(at)) == 3


def test_the_query_finder_counts_every_query_and_opens_one(use_built_home):
    from dml_core.evaluate import ordering as O

    at = page("compare")
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    a, b = at.selectbox(key="cmp_find_a_pose").value, at.selectbox(key="cmp_find_b_pose").value
    counts = O.win_tie_loss(O.query_differences(catalog, a, b, "ndcg", 10)["advantage"], O.DEFAULT_TIE)
    summary = next(m.value for m in at.markdown if "Over all" in m.value)
    assert f"on **{counts['wins']}**" in summary and f"on **{counts['losses']}**" in summary and f"**{counts['ties']}**" in summary
    best = int(O.sorted_by_advantage(O.query_differences(catalog, a, b, "ndcg", 10), "a")["query"][0])
    at.button(key=f"cmp_open_a_{best}").click().run()
    no_exception(at)
    assert at.selectbox(key="cmp_query_pose").value == best


def test_compare_filter_random_and_k(use_built_home):
    at = page("compare")
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    activity = catalog.queries.meta["activity"][5]
    at.selectbox(key="cmp_attr_pose").set_value("activity").run()
    at.selectbox(key="cmp_value_pose_activity").set_value(activity).run()
    no_exception(at)
    options = at.selectbox(key="cmp_query_pose").options
    assert options and all(f"activity {activity}" in o for o in options)
    next(b for b in at.button if b.label == "🎲").click().run()  # random, within the filter
    query = at.selectbox(key="cmp_query_pose").value
    assert catalog.queries.meta["activity"][query] == activity
    at.slider(key="cmp_k").set_value(5).run()
    assert all(g.count("<img") == 5 for g in html_blocks(at))


def test_compare_caption_task_shows_the_captions(use_built_home):
    at = page("compare", _keep_task="caption")
    no_exception(at)
    catalog = load_catalog("caption", ArtifactStore(use_built_home))
    query = at.selectbox(key="cmp_query_caption").value
    text = "\n".join(m.value for m in at.markdown)
    for caption in catalog.queries.meta["captions"][query]:
        assert caption in text
    assert len(html_blocks(at)) == 3


# ------------------------------------------------------------------------------- upload
def test_upload_real_image_gives_the_catalog_results(use_built_home):
    catalog = load_catalog("layout", ArtifactStore(use_built_home))
    at = page("upload", _keep_task="layout")
    no_exception(at)
    image = catalog.queries.images[2]
    at.file_uploader[0].set_value(("room.png", png_bytes(image), "image/png")).run()
    no_exception(at)
    assert not at.error
    models = at.multiselect(key="up_models_layout").value
    k = at.slider(key="up_k").value
    grids = html_blocks(at)
    assert len(grids) == len(models) == 2
    expected, _ = catalog.hits_for_image(image, models, k)
    for grid, model_id in zip(grids, models):
        assert tile_indices(grid) == [h.gallery_index for h in expected[model_id]]
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    maps = [f for f in figures if any(t.get("customdata") is not None for t in f["data"])]  # gallery points carry ids
    assert len(figures) == 2 and len(maps) == 1  # the typicality scale and the gallery map
    assert any(trace.get("name") == "your image" for trace in maps[0]["data"])


def photo_jpeg(crop=None) -> bytes:
    """scikit-learn's china.jpg (a real photograph), optionally cropped, as JPEG bytes."""
    from sklearn.datasets import load_sample_images

    image = Image.fromarray(load_sample_images().images[0])
    buffer = io.BytesIO()
    (image.crop(crop) if crop else image).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def typicality_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.warning if "Unlike the gallery" in w.value]


def ood_score(at: AppTest) -> int:
    """The out-of-domain score the Upload page shows (0-100)."""
    return int(next(re.search(r"bb-score'>(\d+)", m.value).group(1) for m in at.markdown if "Out-of-domain score" in m.value))


def test_upload_warns_for_a_real_photo_and_not_for_a_generated_image(use_built_home):
    at = page("upload")
    at.file_uploader[0].set_value(("china.jpg", photo_jpeg(), "image/jpeg")).run()
    no_exception(at)
    assert len(typicality_warnings(at)) == 1 and "procedural" in typicality_warnings(at)[0]
    assert ood_score(at) == 100
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    baseline = catalog.models["imagenet"]
    distances, _ = ood.nearest_distances(baseline.query, baseline.gallery)
    median = int(np.argsort(distances)[len(distances) // 2])  # a generated image of middling typicality
    at.file_uploader[0].set_value(("figure.png", png_bytes(catalog.queries.images[median]), "image/png")).run()
    no_exception(at)
    assert not typicality_warnings(at)
    assert ood_score(at) < 100


def test_upload_source_choice_is_honoured(use_built_home):
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    at = page("upload")
    models, k = at.multiselect(key="up_models_pose").value, at.slider(key="up_k").value
    photo = photo_jpeg(crop=(100, 0, 527, 427))
    at.file_uploader[0].set_value(("crop.jpg", photo, "image/jpeg")).run()
    assert at.radio(key="up_source_pose").value == "file"
    from_file = [tile_indices(g) for g in html_blocks(at)]
    # picking a query-set image makes it the query, the radio says so, and the file is kept
    at.selectbox(key="up_sample_pose").set_value(7).run()
    no_exception(at)
    assert at.radio(key="up_source_pose").value == "query_set"
    assert any("Query: a query-set image" in m.value and "#7 · " in m.value for m in at.markdown)
    expected, _ = catalog.hits_for_image(np.asarray(catalog.queries.images[7]), models, k)
    assert [tile_indices(g) for g in html_blocks(at)] == [[h.gallery_index for h in expected[m]] for m in models]
    # and choosing "your file" again queries with the file, not the selected query-set image
    at.radio(key="up_source_pose").set_value("file").run()
    assert any("Query: your file" in m.value and "crop.jpg" in m.value for m in at.markdown)
    assert [tile_indices(g) for g in html_blocks(at)] == from_file != [[h.gallery_index for h in expected[m]] for m in models]


def test_upload_offers_results_as_csv_and_json(use_built_home):
    at = page("upload")
    assert not at.get("download_button")  # nothing to download before a query
    at.selectbox(key="up_sample_pose").set_value(2).run()
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Results as CSV", "Results as JSON"]


@pytest.mark.parametrize("payload, words", [
    (b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20, "cannot be used"),
    (b"", "cannot be used"),
])
def test_upload_bad_bytes_give_a_friendly_message(use_built_home, payload, words):
    at = page("upload")
    at.file_uploader[0].set_value(("broken.png", payload, "image/png")).run()
    no_exception(at)
    assert at.error and words in at.error[0].value and "broken.png" in at.error[0].value
    assert "Traceback" not in at.error[0].value
    assert not html_blocks(at)


def test_upload_text_query_on_the_caption_task(use_built_home):
    catalog = load_catalog("caption", ArtifactStore(use_built_home))
    text_models = catalog.text_model_ids()
    assert text_models, "the tiny build makes a cross-modal caption model"
    at = page("upload", _keep_task="caption")
    no_exception(at)
    sentence = catalog.gallery.meta["captions"][4][0]
    at.text_input(key="up_text").set_value(sentence).run()
    no_exception(at)
    grids = html_blocks(at)
    assert len(grids) == len(text_models)
    expected, _ = catalog.hits_for_text(sentence, text_models, at.slider(key="up_k").value)
    assert tile_indices(grids[0]) == [h.gallery_index for h in expected[text_models[0]]]


def test_upload_text_query_without_a_cross_modal_model_says_so(built_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(built_home / "caption", home / "caption",
                    ignore=lambda directory, names: [n for n in names if n.startswith("cross_modal")])
    monkeypatch.setenv("DML_HOME", str(home))
    at = page("upload", _keep_task="caption")
    no_exception(at)
    assert any("cross-modal" in i.value for i in at.info)
    assert not at.text_input


# ---------------------------------------------------------------------- embedding space
def test_embedding_space_maps_and_the_compare_query(use_built_home):
    at = page("embedding_space", _keep_queries={"pose": 3})
    no_exception(at)
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    for chart in charts:
        figure = json.loads(chart.proto.spec)
        gallery_points = sum(trace_length(t["x"]) for t in figure["data"] if t.get("customdata") is not None)
        assert gallery_points == len(catalog.gallery)
        assert any(t.get("name") == "query #3" for t in figure["data"])
    at.selectbox(key="emb_colour_pose").set_value("yaw").run()
    no_exception(at)


def test_embedding_space_colours_room_types_as_categories(use_built_home):
    at = page("embedding_space", _keep_task="layout", _keep_emb_colour_layout="room_type")
    no_exception(at)
    catalog = load_catalog("layout", ArtifactStore(use_built_home))
    for chart in at.get("plotly_chart"):
        figure = json.loads(chart.proto.spec)
        gallery_traces = [t for t in figure["data"] if t.get("customdata") is not None]
        # One trace (legend entry) per room type, no continuous colour bar.
        assert {t["name"] for t in gallery_traces} == {str(v) for v in catalog.gallery.meta["room_type"]}
        assert "coloraxis" not in figure["layout"]
        assert figure["layout"]["legend"]["title"]["text"] == "room type"


def test_embedding_space_pages_through_a_large_selection(use_built_home):
    selection = list(range(len(load_catalog("pose", ArtifactStore(use_built_home)).gallery)))[::-1]
    assert len(selection) > 48
    at = page("embedding_space", emb_selection_pose=(1, selection))
    no_exception(at)
    [grid] = html_blocks(at)
    assert tile_indices(grid) == selection[:48]
    assert any(f"{len(selection)} selected" in m.value and "images 1–48" in m.value for m in at.markdown)
    at.number_input(key="emb_page_pose").set_value(2).run()
    no_exception(at)
    [grid] = html_blocks(at)
    assert tile_indices(grid) == selection[48:96]
    # Both maps ring the selection: where it was made and where the same images land.
    names = [{t.get("name") for t in json.loads(c.proto.spec)["data"]} for c in at.get("plotly_chart")]
    assert "selected on the other map" in names[0] and "selected here" in names[1]


def test_embedding_space_shows_a_clicked_point_at_once(use_built_home):
    at = page("embedding_space", emb_selection_pose=(0, [5]))
    no_exception(at)
    assert not html_blocks(at) and len(at.get("image")) == 1
    assert any(m.value.startswith("**Gallery #5**") for m in at.markdown)
    for chart in at.get("plotly_chart"):
        assert any("click: show this image" in (t.get("hovertemplate") or "") for t in json.loads(chart.proto.spec)["data"])


# --------------------------------------------------------------------------------- home
def app_home() -> AppTest:
    """Home as the app serves it (app.py's navigation: its page links need the other pages)."""
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()


def test_home_shows_examples_of_every_built_task_and_the_ways_in(use_built_home):
    at = app_home()
    no_exception(at)
    assert [s.value for s in at.subheader] == ["Human pose", "Room layout", "Image captions"]
    grids = html_blocks(at)
    assert len(grids) == 3 and all(grid.count("<img") == 8 for grid in grids)
    links = {link.proto.label: link.proto.page for link in at.get("page_link")}
    assert links == {"Compare": "compare", "Upload": "upload", "Embedding space": "embedding_space",
                     "Training lab": "training_lab", "Learn": "learn_1_beyond_binary"}


def test_home_without_a_build_says_how_to_build_and_still_links(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_HOME", str(tmp_path))
    at = app_home()
    no_exception(at)
    assert not html_blocks(at) and not at.subheader
    assert "Nothing is built yet" in at.info[0].value and "python -m dml_core build" in at.info[0].value
    assert len(at.get("page_link")) == 5


# --------------------------------------------------------------------------- benchmarks
def test_benchmarks_tables_and_plots(use_built_home):
    at = page("benchmarks")
    no_exception(at)
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    tables = at.dataframe
    assert len(tables) >= 2
    summary = tables[0].value
    log_ratio = catalog.models["log_ratio-d128-s0"].meta["metrics"]
    row = summary[summary["method"] == "log_ratio"].iloc[0]
    assert row["nDCG@10"] == pytest.approx(log_ratio["ndcg@10"])
    assert row["mld@10"] == pytest.approx(log_ratio["mld@10"])
    assert row["gap closed@10"] == pytest.approx(log_ratio["gap_closed@10"])
    # the scale: random retrieval and the oracle as the table's last rows, computed from the labels
    reference = reference_scores(ArtifactStore(use_built_home), "pose")
    scale = summary.set_index("method").loc[["random retrieval", "oracle"]]
    assert scale["nDCG@10"].tolist() == pytest.approx([reference["random"]["ndcg@10"], 1.0])
    assert scale["mld@10"].tolist() == pytest.approx([reference["random"]["mld@10"], reference["oracle"]["mld@10"]])
    assert scale["gap closed@10"].tolist() == [0.0, 1.0]
    assert reference["random"]["ndcg@10"] < log_ratio["ndcg@10"] < 1
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert len(figures) == 4  # where each method stands, nDCG@K, mld@K, dimension ablation
    names = [{t.get("name") for t in f["data"]} for f in figures]
    assert sum({"random retrieval", "oracle"} <= n for n in names) == 2  # both curves carry the scale
    ablation = next(f for f in figures if "random retrieval" in f["layout"].get("title", {}).get("text", ""))
    low, high = ablation["layout"]["yaxis"]["range"]
    assert low < reference["random"]["ndcg@10"] and 1 < high < 1.05  # from random retrieval to the oracle
    every = next(t.value for t in tables if "model" in t.value.columns)
    assert set(catalog.models) <= set(every["model"]) and len(every) == len(catalog.models) + 2
    assert [b.proto.label for b in at.get("download_button")] == ["Table as CSV", "Every model as CSV", "Projector files (zip)"]


def test_benchmarks_label_the_shipped_results_as_another_run(use_built_home):
    at = page("benchmarks")
    no_exception(at)
    tabs = [t.label for t in at.tabs]
    assert tabs[0].startswith("This build · profile tiny") and "BENCHMARKS.json" in tabs[1]
    shipped = json.loads((ROOT / "BENCHMARKS.json").read_text())
    text = "\n".join(m.value for m in at.markdown)
    assert "not this build" in text and f"profile <code>{shipped['profile']}</code>" in text
    assert "This machine:" in text
    assert any("Not measured here" in c.value for c in at.caption)


# --------------------------------------------------------------------- missing artifacts
@pytest.mark.parametrize("name", ["compare", "upload", "embedding_space", "benchmarks", "training_lab"])
def test_missing_artifacts_give_a_friendly_message(tmp_path, monkeypatch, name):
    monkeypatch.setenv("DML_HOME", str(tmp_path))
    at = page(name)
    no_exception(at)
    assert at.warning and "not built yet" in at.warning[0].value
    assert "python -m dml_core build" in at.warning[0].value


# ----------------------------------------------------------------------------- training
@pytest.fixture
def lab_home(built_home, tmp_path, monkeypatch):
    """A copy of the tiny build as DML_HOME: the lab writes a model; keep the shared build clean."""
    home = tmp_path / "home"
    shutil.copytree(built_home, home)
    monkeypatch.setenv("DML_HOME", str(home))
    return home


def train_in_lab(at: AppTest, dim: int = 16, steps: int = 10):
    """Train the page's current choice for ``steps`` steps at ``dim``; the finished job, page rerun."""
    at.select_slider(key="lab_dim").set_value(dim).run()
    at.slider(key="lab_steps").set_value(steps).run()
    at.button(key="lab_train").click().run()
    no_exception(at)
    job = lab.get_job(at.session_state["lab_job"])
    job.thread.join(timeout=300)
    assert job.status == "done", job.error
    at.run()
    no_exception(at)
    return job


def test_training_lab_trains_and_the_model_appears(lab_home):
    home = lab_home
    at = page("training_lab")
    no_exception(at)
    at.radio(key="lab_method").set_value("binary_triplet").run()
    at.radio(key="lab_miner").set_value("hard").run()
    job = train_in_lab(at)
    assert job.model_id == "lab-binary_triplet_hard-d16-s0" and len(job.losses) == 10
    assert any(job.model_id in s.value for s in at.success)
    table = at.dataframe[0].value
    assert job.model_id in set(table["model"]) and "binary_triplet-d16-s0" in set(table["model"])
    catalog = load_catalog("pose", ArtifactStore(home))
    assert catalog.models[job.model_id].meta["origin"] == "lab"
    # ...and the other pages offer it.
    compare = page("compare")
    assert any("lab, 10 steps" in option for option in compare.multiselect(key="cmp_models_pose").options)


def test_training_lab_fine_tunes_the_backbones_top_on_any_task(lab_home):
    at = page("training_lab")
    at.radio(key="lab_embedder").set_value("top_blocks").run()
    no_exception(at)
    assert at.radio(key="lab_method").options == ["Log-ratio (dense)", "Binary triplet"]
    assert any("top block" in i.value for i in at.info)
    at.radio(key="lab_method").set_value("binary_triplet").run()
    job = train_in_lab(at)
    assert job.model_id == "lab-top_blocks-binary_triplet_ft-d16-s0"
    model = load_catalog("pose", ArtifactStore(lab_home)).models[job.model_id]
    assert model.meta["feature_mode"] == "block14" and model.meta["config"]["embedder"] == "top_blocks"
    assert "fine-tuned backbone" in app.model_label(model)


def test_training_lab_offers_rank_n_contrast_and_the_cnn_embedder(lab_home):
    home = lab_home
    at = page("training_lab")
    no_exception(at)
    assert "Rank-N-Contrast" in at.radio(key="lab_method").options
    assert not at.info  # the CNN's note only shows for the CNN
    at.radio(key="lab_embedder").set_value("cnn").run()
    no_exception(at)
    train_images = len(np.load(home / "pose" / "data" / "train" / "labels.npy"))
    assert any(f"{train_images:,} training images" in i.value and "too few" in i.value for i in at.info)
    assert at.radio(key="lab_method").options == ["Log-ratio (dense)", "Binary triplet"]
    at.radio(key="lab_method").set_value("log_ratio").run()
    job = train_in_lab(at)
    assert job.model_id == "lab-cnn-log_ratio_ft-d16-s0"
    catalog = load_catalog("pose", ArtifactStore(home))
    assert catalog.models[job.model_id].meta["feature_mode"].startswith("images")
    # the comparison's axis runs from random retrieval's nDCG@10 to the oracle's, not from 0
    random_ndcg = reference_scores(ArtifactStore(home), "pose")["random"]["ndcg@10"]
    bars = json.loads(at.get("plotly_chart")[-1].proto.spec)
    low, high = bars["layout"]["xaxis"]["range"]
    assert random_ndcg - 0.05 < low < random_ndcg and 1 < high < 1.05
    assert bars["data"][0]["base"] == pytest.approx(random_ndcg)
