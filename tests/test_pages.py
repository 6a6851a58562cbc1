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

from dml_core import lab
from dml_core.retrieval import load_catalog
from dml_core.store import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # first runs load torch, faiss and the catalogs; the machine may be busy


def page(name: str, **state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def html_blocks(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "bb-grid" in m.value]


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
def test_compare_shows_both_models_and_the_oracle(use_built_home):
    at = page("compare")
    no_exception(at)
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    query = at.selectbox(key="cmp_query_pose").value
    grids = html_blocks(at)
    assert len(grids) == 3  # binary triplet, log-ratio, oracle
    k = at.slider(key="cmp_k").value
    models = at.multiselect(key="cmp_models_pose").value
    assert models == ["binary_triplet-d128-s0", "log_ratio-d128-s0"]
    hits = catalog.hits_for_query(query, models, k)
    for grid, model_id in zip(grids, models):
        assert tile_indices(grid) == [h.gallery_index for h in hits[model_id]]
        assert grid.count("<img") == k
    assert tile_indices(grids[2]) == [h.gallery_index for h in catalog.oracle(query, k)]
    # Per-query metrics: the second column's delta is measured against the first.
    metrics = [m for m in at.metric if m.label == f"nDCG@{k}"]
    assert len(metrics) == 3
    scores = [catalog.query_scores(m, query, k)["ndcg"] for m in models]
    assert metrics[0].value == f"{scores[0]:.3f}" and metrics[1].value == f"{scores[1]:.3f}"
    assert metrics[1].delta == f"{scores[1] - scores[0]:+.3f}"
    assert metrics[2].value == "1.000"


def test_compare_filter_random_and_k(use_built_home):
    at = page("compare")
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    activity = catalog.queries.meta["activity"][5]
    at.selectbox(key="cmp_attr_pose").set_value("activity").run()
    at.selectbox(key="cmp_value_pose_activity").set_value(activity).run()
    no_exception(at)
    options = at.selectbox(key="cmp_query_pose").options
    assert options and all(f"activity {activity}" in o for o in options)
    at.button[0].click().run()  # random, within the filter
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
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    assert any(trace.get("name") == "your image" for trace in figure["data"])


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
    assert len(at.get("plotly_chart")) == 3  # nDCG@K, mld@K, dimension ablation


# --------------------------------------------------------------------- missing artifacts
@pytest.mark.parametrize("name", ["compare", "upload", "embedding_space", "benchmarks", "training_lab"])
def test_missing_artifacts_give_a_friendly_message(tmp_path, monkeypatch, name):
    monkeypatch.setenv("DML_HOME", str(tmp_path))
    at = page(name)
    no_exception(at)
    assert at.warning and "not built yet" in at.warning[0].value
    assert "python -m dml_core build" in at.warning[0].value


# ----------------------------------------------------------------------------- training
def test_training_lab_trains_and_the_model_appears(built_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(built_home, home)  # the lab writes a model; keep the shared build clean
    monkeypatch.setenv("DML_HOME", str(home))
    at = page("training_lab")
    no_exception(at)
    at.radio(key="lab_method").set_value("binary_triplet").run()
    at.radio(key="lab_miner").set_value("hard").run()
    at.select_slider(key="lab_dim").set_value(16).run()
    at.slider(key="lab_steps").set_value(10).run()
    at.button(key="lab_train").click().run()
    no_exception(at)
    job = lab.get_job(at.session_state["lab_job"])
    job.thread.join(timeout=300)
    assert job.status == "done", job.error
    assert job.model_id == "lab-binary_triplet_hard-d16-s0" and len(job.losses) == 10
    at.run()
    no_exception(at)
    assert any(job.model_id in s.value for s in at.success)
    table = at.dataframe[0].value
    assert job.model_id in set(table["model"]) and "binary_triplet-d16-s0" in set(table["model"])
    catalog = load_catalog("pose", ArtifactStore(home))
    assert catalog.models[job.model_id].meta["origin"] == "lab"
    # ...and the other pages offer it.
    compare = page("compare")
    assert any("lab, 10 steps" in option for option in compare.multiselect(key="cmp_models_pose").options)
