"""Caption task: scenes, captions, labels, distance, rendering paths, COCO loader."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from dml_core.core import text
from dml_core.data.tasks import DataFormatError, get_task
from dml_core.data.tasks._caption_scene import render_scene
from dml_core.data.tasks._caption_sprites import CATEGORIES, CATEGORY_BY_NAME, COLOURS, SpriteSet, emoji_available
from dml_core.data.tasks.caption import CaptionTask, ObjectGroup, Scene

needs_emoji_font = pytest.mark.skipif(not emoji_available(), reason="Noto Color Emoji font not installed")


@pytest.fixture(scope="module")
def task():
    return CaptionTask(sprite_source="auto", text_backend="minilm")


@pytest.fixture(scope="module")
def data(task):
    return task.generate(24, seed=11)


def test_registry_returns_the_caption_task():
    assert isinstance(get_task("caption"), CaptionTask)
    assert len(CATEGORIES) >= 20 and len({c.group for c in CATEGORIES}) >= 5


def test_generate_shapes_labels_and_meta(task, data):
    assert data.images.shape == (24, 128, 128, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (24, text.MINILM_DIM) and data.labels.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(data.labels, axis=1), 1.0, atol=1e-5)
    assert set(task.attributes) <= set(data.meta)
    for i in range(len(data)):
        captions = data.meta["captions"][i]
        assert len(captions) == 5 and len(set(captions)) == 5
        assert all(c[0].isupper() and c.endswith(".") for c in captions)
        objects = data.meta["objects"][i].split(", ")
        assert objects[0] == data.meta["main_object"][i]
        assert data.meta["category"][i] == CATEGORY_BY_NAME[objects[0]].group
        assert len(objects) <= data.meta["n_objects"][i] <= 5
    assert data.images.std(axis=(1, 2, 3)).min() > 10  # no blank images
    assert len({row.tobytes() for row in data.labels}) == len(data)


def test_generated_splits_keep_the_caption_vectors_their_labels_average(task, data, tmp_path):
    from dml_core.core.store import ArtifactStore
    from dml_core.data.splits import load_split, save_split
    from dml_core.data.tasks.caption import CAPTION_VECTORS

    vectors = data.arrays[CAPTION_VECTORS]
    assert vectors.shape == (24, 5, text.MINILM_DIM) and vectors.dtype == np.float32
    flat = [c for captions in data.meta["captions"] for c in captions]
    np.testing.assert_allclose(vectors.reshape(-1, text.MINILM_DIM), text.embed_sentences(flat, backend="minilm"), atol=1e-6)
    mean = vectors.mean(axis=1)
    np.testing.assert_allclose(mean / np.linalg.norm(mean, axis=1, keepdims=True), data.labels, atol=1e-5)
    assert np.array_equal(data.subset([3, 1]).arrays[CAPTION_VECTORS], vectors[[3, 1]])

    store = ArtifactStore(tmp_path)
    save_split(store, "caption", "train", data, meta={})
    assert np.array_equal(load_split(store, "caption", "train").arrays[CAPTION_VECTORS], vectors)


def test_captions_match_the_scene(task):
    """Every caption names the main object; colour and count words are true of the scene."""
    colour_words = set(COLOURS)
    for scene, captions in task.sample_scenes(150, seed=5):
        main_nouns = {noun for pair in CATEGORY_BY_NAME[scene.main.category].nouns for noun in pair}
        scene_colours = {g.colour_word for g in scene.groups} - {None}
        for caption in captions:
            lower = caption.lower()
            for scenery in ("green lawn", "blue sky", "blue water"):  # background, not object, colours
                lower = lower.replace(scenery, "")
            assert any(re.search(rf"\b{noun}\b", lower) for noun in main_nouns), (caption, scene)
            assert set(re.findall(r"\w+", lower)) & colour_words <= scene_colours, (caption, scene)
            if re.search(r"\bthree\b|\bseveral\b", lower):
                assert any(g.count == 3 for g in scene.groups), (caption, scene)
            if re.search(r"\btwo\b|\bpair of\b|\bcouple of\b", lower):
                assert any(g.count == 2 for g in scene.groups), (caption, scene)


def test_generate_is_deterministic_and_prefix_stable(task, data):
    again = task.generate(24, seed=11)
    np.testing.assert_array_equal(again.images, data.images)
    np.testing.assert_array_equal(again.labels, data.labels)
    assert again.meta == data.meta
    text.clear_embedding_cache()  # the prefix embeds its captions afresh, in other batches
    prefix = task.generate(7, seed=11)
    np.testing.assert_array_equal(prefix.images, data.images[:7])
    assert prefix.meta == data.subset(range(7)).meta
    np.testing.assert_array_equal(prefix.labels, data.labels[:7])
    other = task.generate(7, seed=12)
    assert not np.array_equal(other.images, prefix.images)


def test_label_distance_properties(task, data):
    d = task.label_distance(data.labels, data.labels)
    assert d.shape == (24, 24) and d.dtype == np.float32
    np.testing.assert_array_equal(np.diag(d), 0.0)
    np.testing.assert_allclose(d, d.T, atol=1e-6)
    assert d.min() >= 0 and d.max() <= 2
    off_diagonal = d[~np.eye(24, dtype=bool)]
    assert off_diagonal.min() > 0.005
    half = task.label_distance(data.labels[:5], data.labels[10:])
    np.testing.assert_allclose(half, d[:5, 10:], atol=1e-7)
    # the formula: 1 - cosine of the mean caption embeddings
    cosine = data.labels.astype(np.float64) @ data.labels.T.astype(np.float64)
    np.testing.assert_allclose(off_diagonal, (1 - cosine)[~np.eye(24, dtype=bool)], atol=1e-6)


def _scenes_sharing_objects():
    dog_balls = Scene((ObjectGroup("dog", 1, None, "large", "left"), ObjectGroup("ball", 2, "red", "small", "right")), "grass", layout_seed=1)
    dog_balls_2 = Scene((ObjectGroup("dog", 2, None, "small", "right"), ObjectGroup("ball", 1, "blue", "large", "left")), "beach", layout_seed=2)
    vehicles = Scene((ObjectGroup("bus", 1, None, "large", "top"), ObjectGroup("bicycle", 2, None, "small", "bottom")), "street", layout_seed=3)
    food = Scene((ObjectGroup("pizza", 3, None, "small", "centre"),), "table", layout_seed=4)
    return [dog_balls, dog_balls_2, vehicles, food]


@pytest.mark.parametrize("backend", ["minilm", "lexical"])
def test_scenes_sharing_objects_are_closer(backend):
    task = CaptionTask(sprite_source="drawn", text_backend=backend)
    data = task.from_scenes(_scenes_sharing_objects(), size=64, seed=0)
    d = task.label_distance(data.labels, data.labels)
    assert d[0, 1] < d[0, 2] and d[0, 1] < d[0, 3]
    assert d[1, 0] < d[1, 2] and d[1, 0] < d[1, 3]
    assert d[2, 0] > d[0, 1] and d[3, 2] > d[0, 1]


def test_text_query_ranks_matching_scene_first(task):
    data = task.from_scenes(_scenes_sharing_objects(), size=64, seed=0)
    query = task.embed_query_text("a bus and bicycles on a city street")
    assert query.shape == (text.MINILM_DIM,)
    d = task.label_distance(query[None], data.labels)[0]
    assert int(np.argmin(d)) == 2
    with pytest.raises(ValueError, match="empty"):
        task.embed_query_text("  ")


def test_label_from_captions_averages_any_number_of_captions(task):
    labels = task.label_from_captions([["A dog."], ["A dog.", "A cat.", "A cat on a mat."]])
    np.testing.assert_allclose(np.linalg.norm(labels, axis=1), 1.0, atol=1e-6)
    single = text.embed_sentences(["A dog."], backend="minilm")[0]
    np.testing.assert_allclose(labels[0], single, atol=1e-6)
    e = text.embed_sentences(["A dog.", "A cat.", "A cat on a mat."], backend="minilm").astype(np.float64).mean(0)
    np.testing.assert_allclose(labels[1], e / np.linalg.norm(e), atol=1e-6)
    with pytest.raises(ValueError, match="no caption"):
        task.label_from_captions([["A dog."], []])


def test_scene_validation():
    with pytest.raises(ValueError, match="cannot be coloured"):
        ObjectGroup("dog", colour="red")
    with pytest.raises(ValueError, match="at most 5"):
        Scene((ObjectGroup("dog", 3), ObjectGroup("cat", 3)))
    with pytest.raises(ValueError, match="distinct"):
        Scene((ObjectGroup("dog"), ObjectGroup("dog")))


def _coloured_hue(image: np.ndarray) -> float:
    hsv = np.asarray(Image.fromarray(image).convert("HSV")).reshape(-1, 3).astype(float)
    strong = hsv[(hsv[:, 1] > 150) & (hsv[:, 2] > 100)]
    return float(np.median(strong[:, 0]) * 360 / 255)


@pytest.mark.parametrize("source", ["drawn", pytest.param("emoji", marks=needs_emoji_font)])
def test_sprite_paths_render_recognisable_recolourable_objects(source):
    sprites = SpriteSet(source)
    assert sprites.source == source
    for category in CATEGORIES:
        sprite = sprites.base(category.name)
        alpha = np.asarray(sprite.getchannel("A"))
        assert sprite.mode == "RGBA" and max(sprite.size) >= 100
        assert 0.15 < (alpha > 128).mean() <= 1.0, category.name
    hues = {}
    for colour in ("red", "green", "blue"):
        scene = Scene((ObjectGroup("car", 1, colour, "large", "centre"),), "snow", layout_seed=9)
        hues[colour] = _coloured_hue(render_scene(scene, 96, sprites))
    assert hues["red"] < 20 or hues["red"] > 340
    assert 90 < hues["green"] < 150 and 190 < hues["blue"] < 250


@needs_emoji_font
def test_emoji_and_drawn_paths_differ_on_the_same_scene():
    scene = _scenes_sharing_objects()[0]
    emoji = render_scene(scene, 128, SpriteSet("emoji"))
    drawn = render_scene(scene, 128, SpriteSet("drawn"))
    background = render_scene(Scene((ObjectGroup("star", 1, "yellow", "small", "top"),), "grass", layout_seed=1), 128, SpriteSet("drawn"))
    assert np.abs(emoji.astype(int) - drawn.astype(int)).mean() > 2
    assert np.abs(emoji.astype(int) - background.astype(int)).mean() > 2


def test_missing_font_selects_drawn_fallback(tmp_path):
    missing = tmp_path / "NoFont.ttf"
    assert SpriteSet("auto", font_path=missing).source == "drawn"
    with pytest.raises(FileNotFoundError, match="NoFont.ttf"):
        SpriteSet("emoji", font_path=missing)
    task = CaptionTask(sprite_source="auto", text_backend="lexical", font_path=str(missing))
    data = task.generate(3, seed=1, size=64)
    assert task.sprite_source == "drawn" and data.images.shape == (3, 64, 64, 3)


def test_draw_label_puts_wrapped_caption_under_upsampled_image(task, data):
    meta = {key: values[0] for key, values in data.meta.items()}
    drawn = task.draw_label(data.image(0), data.labels[0], meta)
    assert drawn.width == 256 and drawn.height > 256 + 12
    band = np.asarray(drawn)[260:]
    assert (band < 100).any(), "caption text missing"
    top = np.asarray(drawn.crop((0, 0, 256, 256)).resize((128, 128), Image.Resampling.BOX)).astype(int)
    assert np.abs(top - data.images[0]).mean() < 6


# ---------------------------------------------------------------------------- COCO loader
def _write_coco(root, captions_per_image=(3, 6, 0, 1), sizes=((90, 60), (50, 80), (40, 40), (64, 64))):
    (root / "annotations").mkdir()
    (root / "val2017").mkdir()
    images, annotations = [], []
    texts = ["A dog runs on the grass.", "A red car parked on a street.", "Two cats on a sofa.", "A plate with pizza."]
    for k, ((w, h), n) in enumerate(zip(sizes, captions_per_image)):
        pixels = np.zeros((h, w, 3), np.uint8)
        pixels[:, : w // 3] = (255, 0, 0)
        pixels[:, w // 3 : 2 * w // 3] = (0, 255, 0)
        pixels[:, 2 * w // 3 :] = (0, 0, 255)
        Image.fromarray(pixels).save(root / "val2017" / f"{k:012d}.png")
        images.append({"id": 100 + k, "file_name": f"{k:012d}.png", "height": h, "width": w})
        annotations += [{"image_id": 100 + k, "id": 1000 + 10 * k + j, "caption": f"{texts[k]} ({j})"} for j in range(n)]
    path = root / "annotations" / "captions_val2017.json"
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": annotations}))
    return path


def test_load_real_reads_coco_captions(tmp_path):
    task = CaptionTask(text_backend="lexical")
    path = _write_coco(tmp_path)
    data = task.load_real(path, size=32)
    assert data.images.shape == (3, 32, 32, 3)
    assert data.meta["image_id"] == [100, 101, 103]  # image 102 has no caption
    assert [len(c) for c in data.meta["captions"]] == [3, 6, 1]
    np.testing.assert_array_equal(data.labels, task.label_from_captions(data.meta["captions"]))
    assert data.meta["main_object"] == ["dog", "car", "pizza"]
    assert data.meta["category"] == ["animal", "vehicle", "food"]
    # wide image (90x60): the centre crop keeps mostly the green middle third
    assert data.images[0, :, :, 1].mean() > 200 * 0.5 and data.images[0, 16, 16, 1] > 200
    # tall image (50x80): the centre crop keeps all three stripes
    assert data.images[1, 16, 2, 0] > 200 and data.images[1, 16, 29, 2] > 200
    assert len(task.load_real(path, size=32, max_images=2)) == 2


def test_load_real_image_folder_resolution(tmp_path):
    task = CaptionTask(text_backend="lexical")
    path = _write_coco(tmp_path)
    moved = tmp_path / "elsewhere"
    (tmp_path / "val2017").rename(moved)
    with pytest.raises(DataFormatError, match="image folder not found"):
        task.load_real(path, size=16)
    assert len(task.load_real(path, size=16, images_dir=moved)) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "file not found"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "'images' and 'annotations'"),
        ({"images": [{"id": 1}], "annotations": []}, r"images\[0\] needs"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 2, "caption": "x"}]}, "unknown image id 2"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": [{"image_id": 1, "caption": 5}]}, r"annotations\[0\] needs"),
        ({"images": [{"id": 1, "file_name": "a.png"}], "annotations": []}, "no image has a caption"),
        ({"images": [{"id": 1, "file_name": "a.png"}, {"id": 1, "file_name": "b.png"}], "annotations": []}, "duplicate image id 1"),
        ({"images": [{"id": 1, "file_name": "missing.png"}], "annotations": [{"image_id": 1, "caption": "A cat."}]}, "cannot read image"),
    ],
)
def test_load_real_rejects_bad_input(tmp_path, content, message):
    (tmp_path / "val2017").mkdir()
    path = tmp_path / "captions_val2017.json"
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataFormatError, match=message) as caught:
        CaptionTask(text_backend="lexical").load_real(path, size=16)
    assert "\n" not in str(caught.value)
    assert ("missing.png" if "cannot read" in message else "captions_val2017.json") in str(caught.value)


def test_load_real_rejects_corrupt_image(tmp_path):
    path = _write_coco(tmp_path)
    (tmp_path / "val2017" / f"{1:012d}.png").write_bytes(b"not a png")
    with pytest.raises(DataFormatError, match=r"000000000001\.png: cannot read image"):
        CaptionTask(text_backend="lexical").load_real(path, size=16)


def test_a_generated_split_is_byte_identical_whatever_the_workers_chunks_and_cache(monkeypatch):
    """Labels and caption vectors of a split are a function of (task, split, n) alone: not of the
    number of worker processes, the order chunks finish in, nor the sentences a process's cache
    already held (once a repeated sentence embedded in another batch moved labels by ~2e-8)."""
    from dml_core.data import splits

    monkeypatch.setattr(splits, "CHUNK", 16)  # three chunks of a 40-image split
    text.clear_embedding_cache()
    fresh = splits.generate_split("caption", "gallery", 40, workers=1)
    flat = [c for captions in fresh.meta["captions"] for c in captions]
    text.clear_embedding_cache()
    for sentence in flat[::3]:  # a process history: some of the split's captions embedded before, alone
        text.embed_sentences([sentence])
    cached = splits.generate_split("caption", "gallery", 40, workers=1)
    parallel = splits.generate_split("caption", "gallery", 40, workers=2)
    for other in (cached, parallel):
        assert np.array_equal(other.images, fresh.images)
        assert np.array_equal(other.labels, fresh.labels)
        assert other.meta == fresh.meta
        assert other.arrays.keys() == fresh.arrays.keys() and fresh.arrays
        for name, array in fresh.arrays.items():
            assert np.array_equal(other.arrays[name], array), name
