"""Tests of the room layout task: generator, label, label distance, LSUN loader, drawing."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image
from scipy import io as sio

from dml_core.data.tasks import DataFormatError, _layout_render as R, get_task
from dml_core.data.tasks.layout import CEILING, FLOOR, FRONT, LABEL_SIZE, LEFT, RIGHT, TASK, room_type

SIZE = 48  # small renders keep the file fast


@pytest.fixture(scope="module")
def batch():
    return TASK.generate(8, seed=3, size=SIZE)


def test_registered_under_its_name():
    assert get_task("layout") is TASK


def test_shapes_dtypes_and_meta(batch):
    assert batch.images.shape == (8, SIZE, SIZE, 3) and batch.images.dtype == np.uint8
    assert batch.labels.shape == (8, LABEL_SIZE, LABEL_SIZE) and batch.labels.dtype == np.uint8
    for key in ("room_type", "yaw", "pitch", "fov", "room", "view"):
        assert len(batch.meta[key]) == 8
    for yaw, pitch, fov in zip(batch.meta["yaw"], batch.meta["pitch"], batch.meta["fov"]):
        # the wall behind the camera can never be seen
        assert abs(yaw) + fov / 2 < 90 and abs(pitch) + fov / 2 < 90
    assert set(batch.meta["room"]) <= set(R.ROOM_KINDS)
    # the stored type is the one the label shows
    assert batch.meta["room_type"] == [room_type(label) for label in batch.labels]
    assert json.loads(json.dumps(batch.meta)) == batch.meta  # splits store meta as JSON


def test_every_label_pixel_is_a_valid_class(batch):
    assert batch.labels.max() < 5
    for label in batch.labels:
        present = np.unique(label)
        assert FRONT in present and len(present) >= 2


def test_deterministic_and_seed_dependent(batch):
    again = TASK.generate(8, seed=3, size=SIZE)
    assert np.array_equal(again.images, batch.images) and np.array_equal(again.labels, batch.labels)
    assert again.meta == batch.meta
    other = TASK.generate(8, seed=4, size=SIZE)
    assert not np.array_equal(other.labels, batch.labels)


def test_prefix_property(batch):
    head = TASK.generate(3, seed=3, size=SIZE)
    assert np.array_equal(head.images, batch.images[:3])
    assert np.array_equal(head.labels, batch.labels[:3])
    assert head.meta == {k: v[:3] for k, v in batch.meta.items()}


def test_label_distance_properties(batch):
    d = TASK.label_distance(batch.labels, batch.labels)
    assert d.dtype == np.float32 and d.shape == (8, 8)
    assert np.array_equal(d, d.T)
    assert np.all(np.diag(d) == 0)
    assert d.min() >= 0 and d.max() <= 1
    # it is the fraction of cells whose class differs
    for i, j in [(0, 1), (2, 5), (3, 7)]:
        assert d[i, j] == pytest.approx(np.mean(batch.labels[i] != batch.labels[j]), abs=1e-6)
    # rectangular blocks and a single map work too
    assert TASK.label_distance(batch.labels[:3], batch.labels).shape == (3, 8)
    assert TASK.label_distance(batch.labels[0], batch.labels[1]).shape == (1, 1)


def test_label_distance_rejects_bad_labels(batch):
    bad = batch.labels[:2].copy()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match="classes"):
        TASK.label_distance(bad, batch.labels)
    with pytest.raises(ValueError, match="size"):
        TASK.label_distance(batch.labels[:, :16, :16], batch.labels)


def test_matched_distance_ignores_label_names(batch):
    labels = batch.labels[:4]
    renamed = np.array([4, 3, 0, 1, 2], np.uint8)[labels]  # same regions, other class ids
    plain = TASK.label_distance(labels, renamed)
    matched = TASK.label_distance(labels, renamed, matched=True)
    assert np.all(np.diag(plain) > 0)
    assert np.allclose(np.diag(matched), 0)
    full_plain = TASK.label_distance(labels, batch.labels)
    full_matched = TASK.label_distance(labels, batch.labels, matched=True)
    assert np.all(full_matched <= full_plain + 1e-6)


def _with_furniture(seed: int):
    """An appearance with several pieces of furniture, found by scanning indices."""
    for index in range(200):
        _, appearance, _ = TASK.sample(seed, index)
        if len(appearance.furniture) >= 3:
            return appearance
    raise AssertionError("no furnished appearance found")


def test_same_room_other_look_keeps_the_layout():
    geometry, look_a, _ = TASK.sample(21, 0)
    geometry = dataclasses.replace(geometry, yaw=0.0, pitch=-8.0, fov=70.0, camera_z=0.5)
    look_b = _with_furniture(22)
    look_c = dataclasses.replace(_with_furniture(23), furniture=())
    images = [TASK.render(geometry, look, SIZE) for look in (look_a, look_b, look_c)]
    assert np.abs(images[0].astype(int) - images[1].astype(int)).mean() > 5
    assert np.abs(images[1].astype(int) - images[2].astype(int)).mean() > 5
    label = TASK.layout(geometry)
    # The label is what the empty room shows, wherever furniture does not hide it.
    seen = [R.surface_map(geometry, look, LABEL_SIZE) for look in (look_b, look_c)]
    assert (seen[0] < 0).any(), "the furnished room should hide part of the layout"
    assert not (seen[1] < 0).any()
    for surfaces in seen:
        visible = surfaces >= 0
        assert np.array_equal(surfaces[visible], label[visible])
    assert TASK.label_distance(label, TASK.layout(geometry))[0, 0] == 0


def test_different_camera_changes_the_layout():
    geometry, _, _ = TASK.sample(5, 1)
    geometry = dataclasses.replace(geometry, yaw=0.0, pitch=0.0, fov=70.0)
    base = TASK.layout(geometry)
    small = TASK.layout(dataclasses.replace(geometry, yaw=2.0))
    large = TASK.layout(dataclasses.replace(geometry, yaw=12.0))
    d = TASK.label_distance(np.stack([base]), np.stack([small, large]))[0]
    assert 0 < d[0] < d[1]
    assert TASK.label_distance(base, TASK.layout(dataclasses.replace(geometry, camera_y=geometry.camera_y - 0.3)))[0, 0] > 0


def test_surface_classes_are_where_the_walls_are():
    # Camera in the middle looking straight ahead: ceiling on top, floor below, walls aside.
    geometry = R.RoomGeometry(4.0, 6.0, 2.8, 2.0, 1.4, 1.0, 0.0, 0.0, 80.0)
    label = TASK.layout(geometry)
    mid = LABEL_SIZE // 2
    assert label[0, mid] == CEILING and label[-1, mid] == FLOOR
    assert label[mid, 0] == LEFT and label[mid, -1] == RIGHT and label[mid, mid] == FRONT
    assert room_type(label) == 0
    assert room_type(label[mid - 2:]) == 1  # cut off the ceiling rows
    assert room_type(np.where(label == RIGHT, FRONT, label)) == 5


def test_room_types_cover_lsun_types():
    labels = np.stack([TASK.layout(TASK.sample(0, i)[0]) for i in range(150)])
    kinds = {room_type(label) for label in labels}
    assert kinds <= set(range(11))
    assert len(kinds) >= 6


def test_draw_label(batch):
    meta = {k: v[0] for k, v in batch.meta.items()}
    drawn = TASK.draw_label(batch.image(0), batch.labels[0], meta)
    assert drawn.size == (256, 256) and drawn.mode == "RGB"
    plain = np.asarray(batch.image(0).resize((256, 256), Image.Resampling.BICUBIC)).astype(int)
    assert np.abs(np.asarray(drawn).astype(int) - plain).max() > 100  # edges are drawn
    # Without geometry in meta (real photos) the label map itself is drawn.
    fallback = TASK.draw_label(batch.image(0), batch.labels[0], {})
    assert fallback.size == (256, 256)


# ------------------------------------------------------------------ LSUN loader fixtures
H, W = 64, 96  # fixture image size; 2 x 3 pixels per label cell at L = 32


def _block_layout(h: int, w: int) -> np.ndarray:
    """A three-wall room with ceiling and floor, boundaries on label-cell borders (0-based classes)."""
    rows = (np.arange(h) + 0.5) / h
    cols = (np.arange(w) + 0.5) / w
    out = np.full((h, w), FRONT, np.uint8)
    out[:, cols < 0.25] = LEFT
    out[:, cols > 0.75] = RIGHT
    out[rows < 0.25] = CEILING
    out[rows > 0.75] = FLOOR
    return out


def _write_image(path, seed: int):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path, quality=90)


def _write_index(path, name: str, records):
    dtype = [("image", "O"), ("scene", "O"), ("type", "O"), ("point", "O"), ("resolution", "O")]
    table = np.zeros((1, len(records)), dtype=dtype)
    for i, (image, scene, kind, points) in enumerate(records):
        table[0, i] = (image, scene, np.array([[kind]], np.uint8), np.asarray(points, np.float64), np.array([[H, W]], np.float64))
    sio.savemat(str(path), {name: table})


@pytest.fixture()
def lsun_dir(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "layout_seg").mkdir()
    for k, name in enumerate(["room_b", "room_a"]):
        _write_image(tmp_path / "images" / f"{name}.jpg", k)
        layout = _block_layout(H, W).astype(np.float64) + 1  # semantic 1..5, MATLAB doubles
        if name == "room_a":
            layout[layout == 5] = 1  # no ceiling: the front wall reaches the top
        sio.savemat(str(tmp_path / "layout_seg" / f"{name}.mat"), {"layout": layout})
    return tmp_path


def test_load_real_semantic(lsun_dir):
    data = TASK.load_real(lsun_dir, size=40)
    assert data.images.shape == (2, 40, 40, 3) and data.labels.shape == (2, LABEL_SIZE, LABEL_SIZE)
    assert data.meta["name"] == ["room_a", "room_b"]  # sorted
    expected = _block_layout(LABEL_SIZE, LABEL_SIZE)
    assert np.array_equal(data.labels[1], expected)
    assert np.array_equal(data.labels[0], np.where(expected == CEILING, FRONT, expected))
    assert data.meta["room_type"] == [1, 0]  # read from the labels without an index
    assert data.meta["room"] == ["unknown", "unknown"]
    # the photo is resized as a whole (no crop): compare with PIL's own resize
    photo = Image.open(lsun_dir / "images" / "room_a.jpg").convert("RGB").resize((40, 40), Image.Resampling.LANCZOS)
    assert np.array_equal(data.images[0], np.asarray(photo))


def test_load_real_split_index(lsun_dir):
    _write_index(lsun_dir / "training.mat", "training", [("room_b", "bedroom", 0, np.zeros((8, 2))), ("room_a", "kitchen", 1, np.zeros((6, 2)))])
    data = TASK.load_real(lsun_dir, size=32, split="train", label_format="semantic")
    assert data.meta["name"] == ["room_b", "room_a"]  # index order
    assert data.meta["room"] == ["bedroom", "kitchen"]
    assert data.meta["room_type"] == [0, 1]
    assert np.array_equal(data.labels[0], _block_layout(LABEL_SIZE, LABEL_SIZE))


def test_load_real_original_region_ids(tmp_path):
    """The original challenge stores region ids; the index's type and corners name them."""
    (tmp_path / "images").mkdir()
    (tmp_path / "layout_seg").mkdir()
    cols = np.arange(W)
    rows = np.arange(H)
    # type 9: front wall above a floor line at row 40
    _write_image(tmp_path / "images" / "wallfloor.jpg", 0)
    regions = np.where(rows[:, None] < 40, 2, 1) * np.ones((1, W))  # ids deliberately not semantic
    sio.savemat(str(tmp_path / "layout_seg" / "wallfloor.mat"), {"layout": regions})
    # type 7: three walls split by vertical lines at columns 30 and 70
    _write_image(tmp_path / "images" / "walls.jpg", 1)
    regions = np.select([cols < 30, cols < 70], [3, 1], 2)[None, :] * np.ones((H, 1))
    sio.savemat(str(tmp_path / "layout_seg" / "walls.mat"), {"layout": regions})
    _write_index(tmp_path / "validation.mat", "validation", [
        ("wallfloor", "living_room", 9, [[1, 40.5], [96, 40.5]]),
        ("walls", "office", 7, [[30.5, 1], [30.5, 64], [70.5, 1], [70.5, 64]]),
    ])
    data = TASK.load_real(tmp_path, size=32, split="val")
    top, bottom = data.labels[0][:19], data.labels[0][21:]
    assert np.all(top == FRONT) and np.all(bottom == FLOOR)
    walls = data.labels[1]
    assert np.all(walls[:, :9] == LEFT) and np.all(walls[:, 11:22] == FRONT) and np.all(walls[:, 24:] == RIGHT)
    assert data.meta["room_type"] == [9, 7] and data.meta["room"] == ["living_room", "office"]
    # without an index the ids cannot be named: values outside 1..5 are refused as semantic
    (tmp_path / "validation.mat").unlink()
    with pytest.raises(DataFormatError, match="wallfloor.mat.*index"):
        TASK.load_real(tmp_path, size=32, label_format="regions")
    sio.savemat(str(tmp_path / "layout_seg" / "walls.mat"), {"layout": regions + 5})
    with pytest.raises(DataFormatError, match="walls.mat"):
        TASK.load_real(tmp_path, size=32)


def _one_line(excinfo, needle: str):
    message = str(excinfo.value)
    assert "\n" not in message and needle in message


def test_load_real_errors(lsun_dir, tmp_path_factory):
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(lsun_dir / "nope")
    _one_line(exc, "nope")
    empty = tmp_path_factory.mktemp("empty")
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(empty)
    _one_line(exc, "images")
    # a .mat that is not a .mat
    (lsun_dir / "layout_seg" / "room_a.mat").write_bytes(b"this is not a mat file at all")
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(lsun_dir)
    _one_line(exc, "room_a.mat")
    # a layout whose shape does not match its image
    sio.savemat(str(lsun_dir / "layout_seg" / "room_a.mat"), {"layout": np.ones((10, 10))})
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(lsun_dir)
    _one_line(exc, "room_a.mat")
    assert "10x10" in str(exc.value)
    # a .mat without a layout matrix
    sio.savemat(str(lsun_dir / "layout_seg" / "room_a.mat"), {"something": np.ones(3), "other": np.ones(4)})
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(lsun_dir)
    _one_line(exc, "layout")
    # a layout without its image
    sio.savemat(str(lsun_dir / "layout_seg" / "room_a.mat"), {"layout": np.ones((H, W))})
    (lsun_dir / "images" / "room_b.jpg").unlink()
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(lsun_dir)
    _one_line(exc, "room_b")
    # a split whose index file is missing
    with pytest.raises(DataFormatError) as exc:
        TASK.load_real(lsun_dir, split="validation")
    _one_line(exc, "validation.mat")
