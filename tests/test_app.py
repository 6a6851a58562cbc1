"""What the pages display, computed without Streamlit (dml_core.app, dml_core.app.lab)."""
import io
import re

import numpy as np
import pytest
from PIL import Image

from dml_core.app import lab
from dml_core.app.benchmarks import bench_ablation_table, bench_method_table, bench_tuning_table
from dml_core.app.lab import loss_sparkline
from dml_core.app.maps import (
    is_categorical,
    projection_frame,
    selected_indices,
    stored_query_position,
    updated_selection,
)
from dml_core.app.queries import (
    attribute_is_categorical,
    attribute_values,
    categorical_attributes,
    example_attribute,
    example_indices,
    filter_queries,
)
from dml_core.app.tables import ablation_frame, curve_frame, method_summary, metrics_table
from dml_core.app.labels import default_model_ids, image_meta, kind_label, model_label
from dml_core.app.tiles import Thumbnails, distance_fractions, hit_tiles, page_of, quality_colour, tiles_html
from dml_core.core.images import ImageInputError
from dml_core.core.store import ArtifactStore, MissingArtifact
from dml_core.core.vocabulary import method_colour, method_family
from dml_core.serve.catalog import Hit, load_catalog
from dml_core.serve.upload import query_with_image_bytes


@pytest.fixture(scope="module")
def pose(built_home):
    return load_catalog("pose", ArtifactStore(built_home))


def test_quality_colour_runs_green_to_red():
    assert quality_colour(0.0) == "#16a34a"
    assert quality_colour(1.0) == "#dc2626"
    assert quality_colour(-3) == quality_colour(0.0) and quality_colour(7) == quality_colour(1.0)
    reds = [int(quality_colour(t)[1:3], 16) for t in np.linspace(0, 1, 11)]
    assert reds == sorted(reds)  # red rises monotonically along the ramp


def test_distance_fractions_rank_within_the_query_row():
    row = np.array([0.5, 0.1, 0.9, 0.3, 0.7])
    fractions = distance_fractions(row, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(fractions, [0.0, 0.5, 1.0])


def test_method_families_and_colours_are_consistent():
    binary = ["binary_triplet", "binary_triplet_hard", "contrastive"]
    continuous = ["log_ratio", "dense_triplet"]
    assert {method_family(m) for m in binary} == {"binary"}
    assert {method_family(m) for m in continuous} == {"continuous"}
    assert method_family("imagenet") == "pretrained"
    # Warm hues for binary methods, violet for continuous ones: red channel > blue channel.
    for method in binary:
        colour = method_colour(method)
        assert int(colour[1:3], 16) > int(colour[5:7], 16), method
    for method in continuous:
        colour = method_colour(method)
        assert int(colour[5:7], 16) > int(colour[3:5], 16), method
    assert method_colour("binary_triplet_hard") != method_colour("binary_triplet")


def test_hit_tiles_and_html(pose):
    hits = pose.hits_for_query(0, ["log_ratio-d128-s0"], 4)["log_ratio-d128-s0"]
    tiles = hit_tiles(Thumbnails(pose.gallery), hits, pose.label_dist[0])
    assert [t.rank for t in tiles] == [1, 2, 3, 4]
    assert [t.badge for t in tiles] == [f"{h.label_distance:.3f}" for h in hits]
    html = tiles_html(tiles)
    assert html.count("<img") == 4 and html.count("data:image/jpeg;base64,") == 4
    assert [int(i) for i in re.findall(r"gallery #(\d+)", html)] == [h.gallery_index for h in hits]
    # Without a label row (uploads) the badge is the embedding distance, in grey.
    plain = hit_tiles(Thumbnails(pose.gallery), [Hit(3, 0.25, None)])
    assert plain[0].badge == "0.250" and plain[0].badge_colour == "#475569"


def test_thumbnails_decode_back_to_the_image(pose):
    import base64

    uri = Thumbnails(pose.gallery)[5]
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert decoded.shape == pose.gallery.images[5].shape
    assert np.abs(decoded.astype(int) - pose.gallery.images[5]).mean() < 6  # JPEG q90


@pytest.mark.parametrize("task", ["pose", "layout", "caption"])
def test_overlays_are_drawn_at_tile_width_and_prefetch_equals_on_demand(built_home, task):
    import base64

    catalog = load_catalog(task, ArtifactStore(built_home))
    on_demand = Thumbnails(catalog.gallery, catalog.task)
    for index in (0, 3):
        decoded = Image.open(io.BytesIO(base64.b64decode(on_demand.overlay(index).split(",", 1)[1])))
        assert decoded.width == Thumbnails.OVERLAY_SIZE
        drawn = catalog.task.draw_label(catalog.gallery.image(index), catalog.gallery.labels[index],
                                        image_meta(catalog.gallery, index), width=Thumbnails.OVERLAY_SIZE)
        assert drawn.size == decoded.size
    prefetched = Thumbnails(catalog.gallery, catalog.task)
    prefetched.prefetch().join(timeout=120)
    assert len(prefetched._cache) == len(catalog.gallery)
    assert all(prefetched.overlay(i) == on_demand.overlay(i) for i in range(0, len(catalog.gallery), 7))


def test_filter_queries_and_attribute_values(pose):
    value = pose.queries.meta["activity"][0]
    picked = filter_queries(pose.queries, "activity", value)
    assert 0 in picked and all(pose.queries.meta["activity"][i] == value for i in picked)
    assert filter_queries(pose.queries) == list(range(len(pose.queries)))
    assert value in attribute_values(pose.queries, "activity")
    assert "activity" in categorical_attributes(pose.task, pose.queries)
    assert "yaw" not in categorical_attributes(pose.task, pose.queries)


def test_query_with_image_bytes_matches_the_catalog(pose):
    image = pose.queries.images[1]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    models = ["binary_triplet-d128-s0", "log_ratio-d128-s0"]
    result = query_with_image_bytes(pose, buffer.getvalue(), models, k=5)
    expected, _ = pose.hits_for_image(image, models, 5)
    for model_id in models:
        assert [h.gallery_index for h in result.hits[model_id]] == [h.gallery_index for h in expected[model_id]]
        assert result.positions[model_id].shape == (2,)
    assert result.original_size == (image.shape[1], image.shape[0])
    assert result.timings_ms["total_ms"] >= result.timings_ms["backbone_ms"] > 0
    with pytest.raises(ImageInputError):
        query_with_image_bytes(pose, b"GIF89a-not-really", models)


def test_selected_indices_reads_plotly_events():
    event = {"selection": {"points": [{"customdata": [7]}, {"customdata": [3]}, {"customdata": [7]}, {"x": 1.0}]}}
    assert selected_indices(event) == [7, 3]
    assert selected_indices(None) == [] and selected_indices({}) == []


def test_projection_frame_and_query_position(pose):
    frame = projection_frame(pose, "log_ratio-d128-s0", "activity")
    assert len(frame) == len(pose.gallery) and {"x", "y", "index", "activity", "yaw"} <= set(frame.columns)
    np.testing.assert_allclose(frame[["x", "y"]].to_numpy(), pose.models["log_ratio-d128-s0"].projection.coords)
    assert projection_frame(pose, "log_ratio-d16-s0", "activity") is None
    xy = stored_query_position(pose, "log_ratio-d128-s0", 2)
    coords = pose.models["log_ratio-d128-s0"].projection.coords
    assert coords.min(0)[0] - 1 <= xy[0] <= coords.max(0)[0] + 1


def test_metric_tables_read_the_stored_metrics(pose):
    table = metrics_table(pose)
    assert set(table["model"]) == set(pose.models)
    row = table[table["model"] == "log_ratio-d128-s0"].iloc[0]
    assert row["nDCG@10"] == pose.models["log_ratio-d128-s0"].meta["metrics"]["ndcg@10"]
    summary = method_summary(pose, 128)
    assert set(summary["method"]) == {"imagenet", "contrastive", "binary_triplet", "dense_triplet", "log_ratio", "rank_n_contrast",
                                      "binary_triplet_ft", "log_ratio_ft"}
    kinds = dict(zip(summary["method"], summary["kind"]))
    assert kinds["imagenet"] == "pretrained" and kinds["log_ratio"] == "head on frozen features"
    assert kinds["log_ratio_ft"] == kinds["binary_triplet_ft"] == "fine-tuned backbone"
    curves = curve_frame(pose, 128)
    ks = sorted(curves[(curves["method"] == "log_ratio") & (curves["metric"] == "ndcg")]["K"])
    assert ks == [1, 5, 10, 20, 50, 100]
    ablation = ablation_frame(pose)
    assert sorted(ablation[ablation["method"] == "log_ratio"]["dim"]) == [16, 128]
    value = ablation[(ablation["method"] == "binary_triplet") & (ablation["dim"] == 16)]["value"].item()
    assert value == pose.models["binary_triplet-d16-s0"].meta["metrics"]["ndcg@10"]


def test_every_model_is_named_with_its_kind_and_compare_opens_on_the_fine_tuned_pair(pose):
    labels = {m: model_label(pose.models[m]) for m in pose.models}
    assert labels["imagenet"] == "ImageNet features · pretrained"
    assert labels["log_ratio-d128-s0"] == "log ratio · head on frozen features · d=128"
    assert labels["log_ratio_ft-d128-s0"] == "log ratio · fine-tuned backbone · d=128"
    assert default_model_ids(pose) == ["binary_triplet_ft-d128-s0", "log_ratio_ft-d128-s0"]
    heads_only = type("Heads", (), {"models": {m: v for m, v in pose.models.items() if "_ft" not in m},
                                    "model_ids": lambda self: [m for m in pose.model_ids() if "_ft" not in m]})()
    assert default_model_ids(heads_only) == ["binary_triplet-d128-s0", "log_ratio-d128-s0"]
    # a CNN model's stored config names its embedder; a model stored before kinds existed falls back to its method's
    cnn = {"method": "log_ratio_ft", "dim": 128, "config": {"embedder": "cnn"}}
    assert kind_label(cnn) == "CNN trained end to end" and kind_label({"method": "log_ratio", "dim": 8}) == "head on frozen features"


def test_bench_tables_format_mean_and_spread():
    bench = {"tasks": {"pose": {
        "methods": {"log_ratio": {"ndcg@10": 0.81234, "ndcg@10_std": 0.01, "ndcg@100": 0.9, "mld@10": 0.2,
                                  "spearman": 0.5, "seeds": 3}},
        "dim_ablation": {"log_ratio": {"128": {"ndcg@10": 0.8, "seeds": 1}, "16": {"ndcg@10": 0.7, "seeds": 1}}}}}}  # JSON order
    table = bench_method_table(bench, "pose")
    assert table.iloc[0]["nDCG@10"] == "0.812 ± 0.010"
    assert list(bench_ablation_table(bench, "pose").columns) == ["method", "d=16", "d=128"]
    assert bench_method_table(bench, "layout") is None


def test_loss_sparkline_is_svg_with_one_point_per_step():
    svg = loss_sparkline([1.0, 0.5, 0.25], total_steps=10)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(points) == 3
    ys = [float(p.split(",")[1]) for p in points]
    assert ys == sorted(ys)  # falling loss = rising y in SVG coordinates
    assert "<polyline" not in loss_sparkline([], total_steps=10)


def test_lab_refuses_bad_settings_and_missing_builds(tmp_path):
    with pytest.raises(ValueError):
        lab.start_job("pose", "no_such_method", home=tmp_path)
    with pytest.raises(ValueError):
        lab.start_job("pose", "log_ratio", steps=0, home=tmp_path)
    with pytest.raises(MissingArtifact):
        lab.start_job("pose", "log_ratio", steps=5, home=tmp_path)
    assert lab.resolve_method("binary_triplet", "hard") == "binary_triplet_hard"
    assert lab.resolve_method("log_ratio", "hard") == "log_ratio"
    with pytest.raises(ValueError):
        lab.resolve_method("binary_triplet", "sideways")


def test_lab_job_is_exclusive_and_stops_early(built_home, tmp_path):
    import shutil

    shutil.copytree(built_home / "pose", tmp_path / "pose")
    job = lab.start_job("pose", "contrastive", dim=16, steps=500, home=tmp_path)
    try:
        with pytest.raises(lab.LabBusy):
            lab.start_job("pose", "log_ratio", dim=16, steps=5, home=tmp_path)
        while job.running and job.step < 2:
            job.thread.join(0.05)
    finally:
        job.stop()
        job.thread.join(120)
    assert job.status == "stopped", job.error
    assert 2 <= len(job.losses) < 500 and lab.active_job() is None
    catalog = load_catalog("pose", ArtifactStore(tmp_path))
    assert catalog.models["lab-contrastive-d16-s0"].meta["origin"] == "lab"


def test_projection_colouring_is_discrete_for_categories_only(pose):
    frame = projection_frame(pose, "log_ratio-d128-s0", "activity")
    assert is_categorical(frame, "activity")
    assert not is_categorical(frame, "yaw") and not is_categorical(frame, "person")


def test_bench_tuning_table_marks_the_chosen_setting():
    from dml_core.learn.methods import TUNING_GRIDS

    grid = TUNING_GRIDS["dense_triplet"]
    bench = {"tuning": {"pose": {"dense_triplet": {"chosen": 2, "scores": [0.7, 0.71, 0.74, 0.6], "grid": grid,
                                                   "settings": grid[2]}}}}
    table = bench_tuning_table(bench, "pose")
    assert list(table["setting"]) == ["margin=0.01", "margin=0.03", "margin=0.1", "margin=0.2"]
    assert list(table["chosen"]) == ["", "", "✓", ""]
    assert bench_tuning_table(bench, "layout") is None and bench_tuning_table({}, "pose") is None


def test_declared_category_codes_are_categorical_however_many(built_home):
    layout = load_catalog("layout", ArtifactStore(built_home))
    codes = list(range(10))  # ten LSUN room types: more values than a count would have
    assert not attribute_is_categorical(codes) and attribute_is_categorical(codes, codes=True)
    assert "room_type" in layout.task.categorical
    frame = projection_frame(layout, "log_ratio-d128-s0", "room_type")
    assert is_categorical(frame, "room_type")
    assert set(frame["room_type"]) == {str(v) for v in layout.gallery.meta["room_type"]}
    assert not is_categorical(projection_frame(layout, "log_ratio-d128-s0", "yaw"), "yaw")


def test_the_newest_selection_replaces_the_other_maps_one():
    held = updated_selection(None, 0, [4, 2])
    assert held == (0, [4, 2])
    assert updated_selection(held, 1, [9]) == (1, [9])  # a selection on the other map wins
    assert updated_selection(held, 1, []) == held  # clearing the other map changes nothing
    assert updated_selection(held, 0, []) is None  # clearing the shown map clears it
    assert updated_selection(None, 1, []) is None


def test_page_of_clamps_and_counts_pages():
    items = list(range(100))
    assert page_of(items, 1, 48) == (items[:48], 1, 3)
    assert page_of(items, 3, 48) == (items[96:], 3, 3)
    assert page_of(items, 9, 48) == (items[96:], 3, 3) and page_of(items, 0, 48)[1] == 1
    assert page_of([], 1, 48) == ([], 1, 1)


def test_example_indices_show_one_image_of_each_value_first(pose):
    attribute = example_attribute(pose.task, pose.gallery)
    assert attribute == "activity"
    picks = example_indices(pose.task, pose.gallery, 6)
    values = [pose.gallery.meta[attribute][i] for i in picks]
    distinct = len(set(pose.gallery.meta[attribute]))
    assert len(picks) == len(set(picks)) == 6
    assert len(set(values)) == min(6, distinct)
    assert picks == example_indices(pose.task, pose.gallery, 6)  # deterministic
