"""Maps read against a query (Embedding space): the colouring is the query's label-distance row,
one colour range serves both maps, the rings are the label-space nearest, the map's rho means
what it says; and the page opened by a deep link colours by the query.

Library checks run on the session's tiny build (tests/conftest.py); the page runs in AppTest.
"""
import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr
from streamlit.testing.v1 import AppTest

from dml_core.app import maps
from dml_core.core.store import ArtifactStore
from dml_core.evaluate.ordering import QueryRef
from dml_core.serve.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
MODELS = ("binary_triplet-d128-s0", "log_ratio-d128-s0")


@pytest.fixture(scope="module")
def pose(built_home):
    return load_catalog("pose", ArtifactStore(built_home))


@pytest.fixture(scope="module")
def layout(built_home):
    return load_catalog("layout", ArtifactStore(built_home))


def brute_label_row(catalog, ref: QueryRef) -> np.ndarray:
    """The task's label distance from the query's label to every gallery label, computed anew."""
    source = catalog.gallery if ref.split == "gallery" else catalog.queries
    query_label = source.labels[ref.index:ref.index + 1]
    return np.array([float(catalog.task.label_distance(query_label, catalog.gallery.labels[g:g + 1])[0, 0])
                     for g in range(len(catalog.gallery))])


# ---------------------------------------------------------------------------- colouring
@pytest.mark.parametrize("token", ["0", "7", "g3", "g41"])
def test_the_map_colouring_is_the_label_distance_row_of_the_query(pose, token):
    ref = QueryRef.parse(token, pose)
    colours = maps.colour_values(pose, maps.QUERY_DISTANCE, ref)
    assert colours.shape == (len(pose.gallery),)
    np.testing.assert_allclose(colours, brute_label_row(pose, ref), rtol=1e-5, atol=1e-6)
    if ref.split == "gallery":
        assert colours[ref.index] == pytest.approx(0.0, abs=1e-6)


def test_query_distance_is_offered_first_only_when_there_is_a_query(pose):
    assert maps.colour_choices(pose, has_query=True)[0] == maps.QUERY_DISTANCE
    assert maps.QUERY_DISTANCE not in maps.colour_choices(pose, has_query=False)
    assert maps.colour_values(pose, maps.QUERY_DISTANCE, None) is None


def test_numeric_attributes_get_a_continuous_scale_and_categories_discrete_colours(pose, layout):
    # pose: yaw is a number per image; activity is a category
    assert maps.colour_is_continuous(pose, "yaw") and not maps.colour_is_continuous(pose, "activity")
    np.testing.assert_array_equal(maps.colour_values(pose, "yaw"), np.asarray(pose.gallery.meta["yaw"], float))
    assert maps.colour_values(pose, "activity") is None
    # layout: room dimensions are label columns outside the task's attributes, offered as numbers;
    # room_type's integers are category codes
    choices = maps.colour_choices(layout, has_query=False)
    assert {"room_width", "room_depth", "room_height"} <= set(choices)
    assert maps.colour_is_continuous(layout, "room_width") and not maps.colour_is_continuous(layout, "room_type")
    frame = maps.projection_frame(layout, MODELS[1], "room_width")
    np.testing.assert_allclose(frame["room_width"], np.asarray(layout.gallery.meta["room_width"], float), atol=6e-4)
    assert "room_width" not in maps.projection_frame(layout, MODELS[1], "yaw")  # added only when it colours


def test_text_and_flag_columns_are_not_numeric():
    assert maps.is_numeric_column([1.0, 2.5, 3]) and not maps.is_numeric_column([2.0, 2.0])
    assert not maps.is_numeric_column(["a", "b"]) and not maps.is_numeric_column([True, False])
    assert not maps.is_numeric_column([1.0, float("nan")]) and not maps.is_numeric_column([])


def test_the_shared_range_covers_both_maps():
    left, right = np.array([0.4, 1.2, 0.9]), np.array([0.1, 0.8, 2.5])
    low, high = maps.shared_range(left, right)
    assert (low, high) == (0.1, 2.5)
    for values in (left, right):
        assert low <= values.min() and values.max() <= high
    assert maps.shared_range(np.array([3.0, 3.0])) == (3.0, 4.0)  # a constant still gets a scale
    assert maps.shared_range(None) is None


# -------------------------------------------------------------------------------- rings
@pytest.mark.parametrize("token", ["4", "g10"])
def test_the_ringed_images_are_the_ten_smallest_label_distances(pose, token):
    ref = QueryRef.parse(token, pose)
    row = brute_label_row(pose, ref)
    candidates = [g for g in range(len(pose.gallery)) if not (ref.split == "gallery" and g == ref.index)]
    expected = sorted(candidates, key=lambda g: (row[g], g))[:maps.NEAREST]
    ringed = maps.label_nearest(pose, ref)
    assert list(ringed) == expected
    others = np.setdiff1d(candidates, ringed)
    assert row[ringed].max() <= row[others].min() + 1e-6


# ---------------------------------------------------------------------------- the map's ρ
class LineCatalog:
    """A gallery of 1-D labels on a line, its map given; label distance = |a - b|."""

    def __init__(self, labels, coords):
        labels = np.asarray(labels, float)
        self.gallery = type("Gallery", (), {"labels": labels[:, None], "__len__": lambda s: len(labels)})()
        self.task = SimpleNamespace(label_distance=lambda a, b: np.abs(a[:, None, 0] - b[None, :, 0]))
        self.models = {"m": SimpleNamespace(projection=SimpleNamespace(coords=np.asarray(coords, float)))}
        self.cache = {}


def test_the_map_rho_is_one_when_the_map_keeps_the_label_ordering_and_near_zero_when_it_does_not():
    labels = np.linspace(0, 1, 40)
    kept = LineCatalog(labels, np.stack([3 * labels, np.zeros_like(labels)], 1))
    assert maps.map_spearman(kept, "m", QueryRef("gallery", 0)) == pytest.approx(1.0)
    # around an inner image the map and the labels tie differently in floating point: nearly 1
    assert maps.map_spearman(kept, "m", QueryRef("gallery", 5)) == pytest.approx(1.0, abs=1e-3)
    shuffled = np.random.default_rng(0).permutation(labels)
    lost = LineCatalog(labels, np.stack([shuffled, np.zeros_like(labels)], 1))
    rho = maps.map_spearman(lost, "m", QueryRef("gallery", 5))
    assert abs(rho) < 0.4


@pytest.mark.parametrize("token", ["2", "g7"])
def test_the_map_rho_on_a_built_map_is_spearman_of_label_and_map_distance(pose, token):
    ref = QueryRef.parse(token, pose)
    position = maps.query_position(pose, MODELS[0], ref)
    coords = np.asarray(pose.models[MODELS[0]].projection.coords, float)
    keep = np.arange(len(coords)) != (ref.index if ref.split == "gallery" else -1)
    expected = spearmanr(np.linalg.norm(coords[keep] - position, axis=1), brute_label_row(pose, ref)[keep]).statistic
    assert maps.map_spearman(pose, MODELS[0], ref) == pytest.approx(expected, abs=1e-9)
    if ref.split == "gallery":
        np.testing.assert_allclose(position, coords[ref.index])
    mean = maps.mean_map_spearman(pose, MODELS[0])
    per_query = [maps.map_spearman(pose, MODELS[0], QueryRef("query", q)) for q in range(len(pose.queries))]
    assert mean == pytest.approx(np.nanmean(per_query), abs=1e-6)


# --------------------------------------------------------------------------------- page
def open_link(params: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "embedding_space.py"), default_timeout=TIMEOUT)
    at.query_params.update(params)
    return at.run()


def numbers(values) -> np.ndarray:
    """A plotly array as floats (a plain list, or plotly's base64 typed array)."""
    if isinstance(values, dict) and "bdata" in values:
        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"]))
    return np.asarray(values, float)


def gallery_colours(figure: dict) -> np.ndarray:
    [trace] = [t for t in figure["data"] if t.get("customdata") is not None]
    return numbers(trace["marker"]["color"])


def trace_xy(figure: dict, name: str) -> np.ndarray:
    [trace] = [t for t in figure["data"] if t.get("name") == name]
    return np.stack([numbers(trace["x"]), numbers(trace["y"])], 1)


def test_a_deep_link_to_a_pose_query_colours_both_maps_by_its_label_distance(use_built_home, pose):
    at = open_link({"task": "pose", "query": "7", "colour": "query_distance"})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.warning
    assert at.selectbox(key="task").value == "pose"
    assert at.selectbox(key="emb_colour_pose").value == maps.QUERY_DISTANCE
    row = brute_label_row(pose, QueryRef("query", 7))
    nearest = maps.label_nearest(pose, QueryRef("query", 7))
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2
    ranges = set()
    for chart, model_id in zip(charts, [at.selectbox(key=f"emb_model_{s}_pose").value for s in (0, 1)]):
        np.testing.assert_allclose(gallery_colours(chart), row, atol=1e-3)  # rounded to 3 decimals for hover
        axis = chart["layout"]["coloraxis"]
        ranges.add((axis["cmin"], axis["cmax"]))
        assert any(t.get("name") == "query #7" for t in chart["data"])
        coords = np.asarray(pose.models[model_id].projection.coords, float)
        np.testing.assert_allclose(trace_xy(chart, f"{maps.NEAREST} label-nearest"), coords[nearest], rtol=1e-5)
    [(low, high)] = ranges  # one range for both maps, covering the whole row
    assert low == pytest.approx(row.min(), abs=1e-6) and high == pytest.approx(row.max(), abs=1e-6)
    assert sum("map ρ" in c.value for c in at.caption) == 2
    assert at.query_params["query"] == "7" and at.query_params["colour"] == maps.QUERY_DISTANCE


def test_a_deep_link_to_a_gallery_image_places_it_where_its_map_put_it(use_built_home, pose):
    at = open_link({"task": "pose", "query": "g4", "colour": "query_distance"})
    assert not at.exception, [e.value for e in at.exception]
    model_id = at.selectbox(key="emb_model_0_pose").value
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    np.testing.assert_allclose(trace_xy(chart, "gallery #4")[0], pose.models[model_id].projection.coords[4], rtol=1e-5)
    np.testing.assert_allclose(gallery_colours(chart), brute_label_row(pose, QueryRef("gallery", 4)), atol=1e-3)


def test_a_deep_link_colours_layout_by_a_room_dimension_on_a_continuous_scale(use_built_home, layout):
    at = open_link({"task": "layout", "colour": "room_width"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="emb_colour_layout").value == "room_width"
    widths = np.asarray(layout.gallery.meta["room_width"], float)
    for chart in (json.loads(c.proto.spec) for c in at.get("plotly_chart")):
        np.testing.assert_allclose(gallery_colours(chart), widths, atol=1e-3)
        assert chart["layout"]["coloraxis"]["cmin"] == pytest.approx(widths.min())


@pytest.mark.parametrize("params", [{"task": "pose", "query": "12", "colour": "query_distance"},  # tiny has 12 queries
                                    {"task": "pose", "query": "../../etc/passwd"},
                                    {"task": "pose", "colour": "/etc/shadow"}])
def test_a_bad_link_value_falls_back_to_the_default_in_plain_words(use_built_home, params):
    at = open_link(params)
    assert not at.exception, [e.value for e in at.exception]
    assert any("Part of the link was ignored" in w.value for w in at.warning)
    # no query: the colouring falls back to the first attribute, the maps still drawn
    assert at.selectbox(key="emb_colour_pose").value == "activity"
    assert len(at.get("plotly_chart")) == 2
