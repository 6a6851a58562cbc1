"""Where two models disagree (Compare): the movers' ranks on hand-made examples, their ties, their
export, and the Compare page showing them under AppTest."""
import base64
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dml_core.app import movers as mv
from dml_core.core.store import ArtifactStore
from dml_core.evaluate import ordering as O
from dml_core.serve.catalog import load_catalog
from dml_core.serve.export import records_csv

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120

# Six gallery images (indices 10..15). A ranks them 1..6 in order; B moves #10 from 1 to 6 and
# #12 from 3 to 1. Label distances make #10 the label-nearest, then #12, #14, #15, #11, #13.
GALLERY = np.array([10, 11, 12, 13, 14, 15])
RANK_A = np.array([1, 2, 3, 4, 5, 6])
RANK_B = np.array([6, 2, 1, 3, 4, 5])
LABELS = np.array([0.1, 0.5, 0.2, 0.9, 0.3, 0.4])


def summary(movers: list) -> list[tuple]:
    return [(m.gallery, m.rank_a, m.rank_b, m.label_rank, m.label_distance) for m in movers]


def test_ordinal_ranks_are_one_based_and_break_ties_by_position():
    assert mv.ordinal_ranks([0.3, 0.1, 0.3, 0.2, 0.1]).tolist() == [4, 1, 5, 3, 2]


def test_the_image_that_moves_most_each_way_with_exact_ranks():
    found = mv.find_movers(GALLERY, RANK_A, RANK_B, LABELS, count=6, pool=50)
    # A ranks only #10 nearer than B does (1 vs 6: shift log2 6)
    assert summary(found.a_higher) == [(10, 1, 6, 1, 0.1)]
    assert found.a_higher[0].shift == pytest.approx(np.log2(6))
    # B ranks nearer: #12 (3 → 1, ×3), #13 (4 → 3), #14 (5 → 4), #15 (6 → 5); #11 (2 = 2) moves neither way
    assert summary(found.b_higher) == [(12, 3, 1, 2, 0.2), (13, 4, 3, 6, 0.9), (14, 5, 4, 3, 0.3), (15, 6, 5, 4, 0.4)]
    assert [m.shift for m in found.b_higher] == pytest.approx(np.log2([1 / 3, 3 / 4, 4 / 5, 5 / 6]))
    assert found.candidates == 6 and found.pool == 50
    assert summary(mv.find_movers(GALLERY, RANK_A, RANK_B, LABELS, count=2).b_higher) == \
        [(12, 3, 1, 2, 0.2), (13, 4, 3, 6, 0.9)]


def test_only_candidates_in_either_top_pool_or_the_label_nearest_are_considered():
    # pool 2: A's top 2 (#10, #11), B's top 2 (#12, #11), the 2 label-nearest (#10, #12)
    found = mv.find_movers(GALLERY, RANK_A, RANK_B, LABELS, pool=2)
    assert found.candidates == 3
    assert [m.gallery for m in found.a_higher] == [10] and [m.gallery for m in found.b_higher] == [12]
    # a far image that moves a lot but is near nowhere is left out: #13 from A's 4 to B's 3 is out of a pool of 2
    assert 13 not in [m.gallery for m in found.b_higher]


def test_equal_shifts_are_ordered_by_gallery_index():
    # #3 (1 → 2) and #7 (2 → 4) both halve; #7 moves more places, but equal factors keep gallery order
    gallery, rank_a, rank_b = np.array([3, 7, 9, 12]), np.array([1, 2, 3, 4]), np.array([2, 4, 1, 3])
    labels = np.array([0.5, 0.5, 0.2, 0.5])  # equal label distances: label ranks by gallery index
    found = mv.find_movers(gallery, rank_a, rank_b, labels)
    assert summary(found.a_higher) == [(3, 1, 2, 2, 0.5), (7, 2, 4, 3, 0.5)]
    assert summary(found.b_higher) == [(9, 3, 1, 1, 0.2), (12, 4, 3, 4, 0.5)]
    again = mv.find_movers(gallery, rank_a, rank_b, labels)
    assert again == found


def test_ties_in_embedding_distance_rank_by_gallery_index_through_ordering():
    """Two 1-D models over a fake catalog: the whole path ``ordering`` → ``movers_between``."""
    query = np.zeros((1, 1))
    # A: gallery 0..4 at distance 1, 2, 3, 4, 5 from the query. B: #4 nearest, #0 and #1 tied (equal distance).
    model_a = SimpleNamespace(query=query, gallery=np.array([[1.0], [2.0], [3.0], [4.0], [5.0]]), meta={"metric": "l2"})
    model_b = SimpleNamespace(query=query, gallery=np.array([[3.0], [3.0], [4.0], [5.0], [1.0]]), meta={"metric": "l2"})
    gallery_labels = np.array([[0.0], [0.1], [0.2], [0.3], [0.4]])  # the query's label is 0

    class Gallery:
        labels = gallery_labels

        def __len__(self):
            return len(gallery_labels)

    catalog = SimpleNamespace(models={"a": model_a, "b": model_b}, gallery=Gallery(), label_dist=gallery_labels.T,
                              task=SimpleNamespace(label_distance=lambda a, b: np.abs(a - b.T)))
    ref = O.QueryRef("query", 0)
    first, second = O.ordering(catalog, "a", ref, 3), O.ordering(catalog, "b", ref, 3)
    assert second.rank.tolist() == [2, 3, 4, 5, 1]  # #0 before #1 at equal distance
    found = mv.movers_between(first, second)
    assert summary(found.b_higher) == [(4, 5, 1, 5, 0.4)]
    assert summary(found.a_higher) == [(0, 1, 2, 1, 0.0), (1, 2, 3, 2, 0.1), (2, 3, 4, 3, 0.2), (3, 4, 5, 4, 0.3)]
    points = mv.agreement_between(first, second, nearest=3)
    assert points["gallery"].tolist() == [0, 1, 2] and points["rank_b"].tolist() == [2, 3, 4]
    assert points["label_rank"].tolist() == [1, 2, 3]
    # gallery #4 as the query: it is not ranked against itself; label distances are to its label 0.4
    own = mv.movers_between(O.ordering(catalog, "a", O.QueryRef("gallery", 4), 3),
                            O.ordering(catalog, "b", O.QueryRef("gallery", 4), 3))
    assert all(m.gallery != 4 for m in own.a_higher + own.b_higher)
    assert summary(own.a_higher) == [(3, 1, 4, 1, pytest.approx(0.1)), (2, 2, 3, 2, pytest.approx(0.2))]
    with pytest.raises(ValueError, match="not of the same query"):
        mv.movers_between(first, O.ordering(catalog, "b", O.QueryRef("gallery", 0), 3))


def test_agreement_points_are_the_label_nearest_with_both_ranks():
    points = mv.agreement_points(GALLERY, RANK_A, RANK_B, LABELS, nearest=3)
    assert points["gallery"].tolist() == [10, 12, 14]
    assert points["rank_a"].tolist() == [1, 3, 5] and points["rank_b"].tolist() == [6, 1, 4]
    assert points["label_rank"].tolist() == [1, 2, 3]
    assert mv.rank_correlation(points) == pytest.approx(-0.5)
    same = mv.agreement_points(GALLERY, RANK_A, RANK_A, LABELS)
    assert mv.rank_correlation(same) == pytest.approx(1.0)


def test_bad_inputs_are_refused_in_plain_words():
    with pytest.raises(ValueError, match="one length"):
        mv.find_movers(GALLERY, RANK_A[:3], RANK_B, LABELS)
    with pytest.raises(ValueError, match="increasing"):
        mv.find_movers(GALLERY[::-1], RANK_A, RANK_B, LABELS)
    with pytest.raises(ValueError, match="direction"):
        mv.find_movers(GALLERY, RANK_A, RANK_B, LABELS).direction("sideways")


def test_the_exported_records_carry_both_ranks_the_label_rank_and_distance():
    found = mv.find_movers(GALLERY, RANK_A, RANK_B, LABELS, count=2)
    records = mv.mover_records("g3", "model-a", "model-b", found)
    assert [(r["direction"], r["gallery"], r["rank_a"], r["rank_b"], r["label_rank"], r["label_distance"]) for r in records] == \
        [("a_higher", 10, 1, 6, 1, 0.1), ("b_higher", 12, 3, 1, 2, 0.2), ("b_higher", 13, 4, 3, 6, 0.9)]
    assert all(r["query"] == "g3" and r["model_a"] == "model-a" and r["model_b"] == "model-b" for r in records)
    document = mv.movers_export("g3", "model-a", "model-b", found)
    assert document["records"] == records and "top 50" in document["definition"] and document["candidates"] == 6
    assert json.loads(json.dumps(document))["records"][0]["rank_b"] == 6
    csv = records_csv(records).splitlines()
    assert csv[0] == "query,model_a,model_b,direction,gallery,rank_a,rank_b,label_rank,label_distance,shift"
    assert csv[1].startswith("g3,model-a,model-b,a_higher,10,1,6,1,0.1,")


def test_mover_tiles_show_both_ranks_and_link_to_the_image_as_query():
    class Thumbs:
        def __getitem__(self, index):
            return f"uri{index}"

        def overlay(self, index):
            return f"drawn{index}"

    found = mv.find_movers(GALLERY, RANK_A, RANK_B, LABELS)
    row = np.linspace(0, 1, 20)
    tiles = mv.mover_tiles(Thumbs(), found.b_higher[:1], row, names=("log ratio", "binary"), link=lambda g: f"?query=g{g}")
    assert len(tiles) == 1 and tiles[0].uri == "uri12" and tiles[0].rank == 2 and tiles[0].badge == "A 3 · B 1"
    assert tiles[0].link == "?query=g12"
    assert "rank 3 under log ratio, 1 under binary" in tiles[0].tooltip and "label distance 0.2000" in tiles[0].tooltip
    assert mv.mover_tiles(Thumbs(), found.b_higher[:1], row, overlay=True)[0].uri == "drawn12"
    assert mv.mover_rows(found.a_higher) == [{"image": "#10", "A": 1, "B": 6, "label rank": 1, "label dist": 0.1}]
    assert mv.log_ticks(500) == [1, 2, 5, 10, 20, 50, 100, 200, 500] and mv.log_ticks(30) == [1, 2, 5, 10, 20]


# --------------------------------------------------------------------------------- page
def compare_page(**state) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    return at.run()


def tile_indices(block: str) -> list[int]:
    return [int(i) for i in re.findall(r'title="gallery #(\d+)', block)]


def trace_values(values) -> list:
    """A plotly trace array as a list (plain list, or plotly's base64 typed array)."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return list(values)


def movers_blocks(at: AppTest) -> list[str]:
    """The two movers grids (heading and tiles in one block), A-higher first."""
    return [m.value for m in at.markdown if m.value.startswith("<div class='bb-movers'>")]


def test_compare_shows_the_movers_of_its_two_models(use_built_home):
    at = compare_page()
    assert not at.exception, [e.value for e in at.exception]
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    query, k = at.selectbox(key="cmp_query_pose").value, at.slider(key="cmp_k").value
    model_a, model_b = at.selectbox(key="cmp_find_a_pose").value, at.selectbox(key="cmp_find_b_pose").value
    assert model_a != model_b and {model_a, model_b} == set(at.multiselect(key="cmp_models_pose").value)
    ref = O.QueryRef("query", query)
    expected = mv.movers_between(O.ordering(catalog, model_a, ref, k), O.ordering(catalog, model_b, ref, k))
    assert any("rank most differently" in m.value for m in at.markdown)
    blocks = movers_blocks(at)
    assert len(blocks) == 2
    for block, direction in zip(blocks, mv.DIRECTIONS):
        chosen = expected.direction(direction)
        assert tile_indices(block) == [m.gallery for m in chosen]
        assert block.count('href="?') == len(chosen)  # each mover links to itself as the query
    frames = [d.value for d in at.dataframe]
    for direction in mv.DIRECTIONS:
        chosen = expected.direction(direction)
        if chosen:
            assert any(f["A"].tolist() == [m.rank_a for m in chosen] and f["B"].tolist() == [m.rank_b for m in chosen]
                       and f["label rank"].tolist() == [m.label_rank for m in chosen] for f in frames if "label rank" in f)
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    agreement = [c for c in charts if any(t.get("name") == "label-nearest" for t in c["data"])]
    assert len(agreement) == 1
    assert agreement[0]["layout"]["xaxis"]["type"] == "log" and agreement[0]["layout"]["yaxis"]["type"] == "log"
    points = next(t for t in agreement[0]["data"] if t.get("name") == "label-nearest")
    nearest = mv.agreement_between(O.ordering(catalog, model_a, ref, k), O.ordering(catalog, model_b, ref, k))
    assert trace_values(points["x"]) == nearest["rank_a"].tolist() and trace_values(points["y"]) == nearest["rank_b"].tolist()


def test_with_three_models_the_person_picks_the_pair(use_built_home):
    at = compare_page()
    models = ["binary_triplet-d128-s0", "log_ratio-d128-s0", "contrastive-d128-s0"]
    at.multiselect(key="cmp_models_pose").set_value(models).run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="cmp_find_a_pose").set_value("contrastive-d128-s0").run()
    at.selectbox(key="cmp_find_b_pose").set_value("log_ratio-d128-s0").run()
    assert not at.exception, [e.value for e in at.exception]
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    ref = O.QueryRef("query", at.selectbox(key="cmp_query_pose").value)
    k = at.slider(key="cmp_k").value
    expected = mv.movers_between(O.ordering(catalog, "contrastive-d128-s0", ref, k), O.ordering(catalog, "log_ratio-d128-s0", ref, k))
    first = movers_blocks(at)[0]
    assert tile_indices(first) == [m.gallery for m in expected.a_higher]


def test_with_one_model_there_are_no_movers_and_no_error(use_built_home):
    at = compare_page()
    at.multiselect(key="cmp_models_pose").set_value(["log_ratio-d128-s0"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not movers_blocks(at)
    assert any("Choose two models" in i.value for i in at.info)
