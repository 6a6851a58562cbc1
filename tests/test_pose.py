"""Pose task: generator determinism, label distance properties, flip, MPII JSON loader."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image

from dml_core.data.tasks import DataFormatError, TaskData, get_task, pose
from dml_core.data.tasks.pose import (
    ACTIVITIES,
    ACTIVITY_NAMES,
    ANGLE_INDEX,
    FLIP_PERMUTATION,
    JOINT_NAMES,
    N_PERSONS,
    TASK,
    Camera,
    appearance_for_person,
    flip_labels,
    forward_kinematics,
    label_distance,
    mirror_angles,
    mirror_appearance,
    mirror_camera,
    pose_scale,
    render,
    sample_background,
)


@functools.lru_cache(maxsize=None)
def _data(n: int = 40, seed: int = 11, size: int = 128) -> TaskData:
    return TASK.generate(n, seed, size=size)


def _assert_same(a: TaskData, b: TaskData) -> None:
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.meta == b.meta


# ----------------------------------------------------------------------------- generator

def test_registered_under_its_name():
    assert get_task("pose") is TASK
    assert TASK.name == "pose"


def test_generate_is_deterministic_and_seed_dependent():
    _assert_same(TASK.generate(5, 3), TASK.generate(5, 3))
    assert not np.array_equal(TASK.generate(5, 3).labels, TASK.generate(5, 4).labels)


def test_generate_prefix_property():
    long = _data()
    _assert_same(long.subset(range(7)), TASK.generate(7, 11))


def test_shapes_dtypes_and_meta():
    data = _data()
    assert data.images.shape == (40, 128, 128, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (40, 16, 2) and data.labels.dtype == np.float32
    assert (data.labels >= 0).all() and (data.labels <= 1).all()
    assert set(data.meta["activity"]) <= set(ACTIVITY_NAMES)
    assert all(0 <= p < N_PERSONS for p in data.meta["person"])
    assert all(-80 <= y <= 80 for y in data.meta["yaw"])
    assert len(ACTIVITY_NAMES) >= 8
    small = TASK.generate(3, 0, size=64)
    assert small.images.shape == (3, 64, 64, 3)


def test_images_vary_and_figure_is_drawn_where_the_labels_are():
    data = _data()
    assert data.images.std() > 20
    # The figure, rendered alone on a flat background, covers the pelvis and thorax pixels.
    angles = ACTIVITIES["standing"]
    image, label = render(angles, appearance_for_person(0), Camera(yaw=20), size=128)
    grey = np.array([128, 128, 128])
    for joint in ("pelvis", "thorax", "l_knee", "r_elbow"):
        x, y = (label[JOINT_NAMES.index(joint)] * 128).astype(int)
        assert np.abs(image[y, x].astype(int) - grey).max() > 0, joint


def test_person_appearance_is_a_function_of_the_id():
    assert appearance_for_person(7) == appearance_for_person(7)
    assert appearance_for_person(7) != appearance_for_person(8)


# ----------------------------------------------------------------------------- label distance

def test_distance_basic_properties():
    labels = _data().labels
    d = label_distance(labels, labels)
    assert d.dtype == np.float32 and d.shape == (40, 40)
    np.testing.assert_allclose(d, d.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(d), 0, atol=1e-6)
    assert (d >= 0).all()
    assert np.median(d[~np.eye(40, dtype=bool)]) > 0.1
    rect = TASK.label_distance(labels[:5], labels[5:12])
    assert rect.shape == (5, 7)
    np.testing.assert_allclose(rect, d[:5, 5:12], atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    index=st.integers(0, 39),
    shift=st.tuples(st.floats(-3, 3), st.floats(-3, 3)),
    factor=st.floats(0.05, 20),
)
def test_distance_invariant_to_translation_and_scale(index, shift, factor):
    labels = _data().labels.astype(np.float64)
    moved = labels[index:index + 1] * factor + np.array(shift)
    d = label_distance(labels, moved)[:, 0]
    assert d[index] < 1e-4
    others = np.delete(d, index)
    np.testing.assert_allclose(others, np.delete(label_distance(labels, labels[index:index + 1])[:, 0], index),
                               rtol=1e-3, atol=1e-4)


def test_same_pose_and_camera_with_other_framing_and_background_is_distance_zero():
    rng = np.random.default_rng(0)
    angles = ACTIVITIES["kicking"] + rng.normal(0, 5, len(ACTIVITIES["kicking"]))
    person = appearance_for_person(3)
    _, a = render(angles, person, Camera(yaw=30, pitch=5, scale=0.9, x=0.1, y=0.7), size=128)
    _, b = render(angles, person, Camera(yaw=30, pitch=5, scale=0.55, x=0.9, y=0.2), size=96,
                  background=sample_background(rng, 192))
    assert label_distance(a[None], b[None])[0, 0] < 1e-4


def test_other_person_in_the_same_pose_is_much_closer_than_other_poses():
    camera = Camera(yaw=-25)
    labels = {
        (name, person): render(angles, appearance_for_person(person), camera, size=128)[1]
        for name, angles in ACTIVITIES.items() for person in (1, 2)
    }
    same = [label_distance(labels[n, 1][None], labels[n, 2][None])[0, 0] for n in ACTIVITIES]
    other = [label_distance(labels[a, 1][None], labels[b, 2][None])[0, 0]
             for a in ACTIVITIES for b in ACTIVITIES if a != b]
    assert max(same) < 0.15
    assert np.median(other) > 3 * np.median(same)


def test_distance_changes_with_pose_and_is_left_right_aware():
    person, camera = appearance_for_person(5), Camera(yaw=0)
    base = ACTIVITIES["standing"].copy()
    _, a = render(base, person, camera)
    raised = base.copy()
    raised[ANGLE_INDEX["l_shoulder_abd"]] = 90
    _, b = render(raised, person, camera)
    raised[ANGLE_INDEX["l_shoulder_abd"]] = 170
    _, c = render(raised, person, camera)
    d_ab, d_ac = label_distance(a[None], np.stack([b, c]))[0]
    assert 0.05 < d_ab < d_ac  # graded: further raised is further away
    # Left arm raised vs right arm raised: same picture mirrored, a different pose.
    _, mirrored = render(mirror_angles(raised), person, camera)
    assert label_distance(c[None], mirrored[None])[0, 0] > d_ab


def test_scale_survives_a_foreshortened_torso():
    """Bending toward the camera collapses the 2D torso; the scale must not collapse."""
    person = appearance_for_person(0)
    joints = forward_kinematics(ACTIVITIES["bending"], person)["joints"]
    front = joints[:, :2] * np.array([1, -1])  # seen from the front: x, -y
    side = joints[:, [2, 1]] * np.array([1, -1])  # seen from the side: z, -y
    torso_2d = np.linalg.norm(front[JOINT_NAMES.index("thorax")] - front[JOINT_NAMES.index("pelvis")])
    assert torso_2d < 0.3
    s_front, s_side = pose_scale(np.stack([front, side]))
    assert 0.7 < s_front / s_side < 1.3


def test_distance_ignores_missing_joints():
    labels = _data().labels[:3].astype(np.float64)
    holes = labels.copy()
    holes[0, [0, 15]] = np.nan
    d = label_distance(holes, labels)
    assert np.isfinite(d).all()
    assert d[0, 0] < 1e-5 and d[0, 1] > 0.05


# ----------------------------------------------------------------------------- flip

def test_flip_labels_swaps_sides_and_is_an_involution():
    labels = _data().labels
    flipped = flip_labels(labels)
    np.testing.assert_allclose(flip_labels(flipped), labels, atol=1e-6)
    l_wrist, r_wrist = JOINT_NAMES.index("l_wrist"), JOINT_NAMES.index("r_wrist")
    np.testing.assert_allclose(flipped[:, r_wrist, 0], 1 - labels[:, l_wrist, 0])
    assert sorted(FLIP_PERMUTATION) == list(range(16))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_image_matches_render_of_mirrored_pose(seed):
    rng = np.random.default_rng(seed)
    sample = pose.sample_pose(rng)
    camera = pose.sample_camera(rng)
    person = appearance_for_person(seed)
    image, label = render(sample.angles, person, camera, size=96)
    mirror_image, mirror_label = render(mirror_angles(sample.angles), mirror_appearance(person),
                                        mirror_camera(camera), size=96)
    np.testing.assert_allclose(flip_labels(label), mirror_label, atol=1e-5)
    diff = np.abs(image[:, ::-1].astype(int) - mirror_image)
    assert diff.mean() < 0.5 and np.percentile(diff, 99) < 10
    # and the mirrored pose really is a different picture (the test would catch a no-op)
    assert np.abs(image.astype(int) - mirror_image).mean() > 1
    assert label_distance(label[None], mirror_label[None])[0, 0] > 0.05


# ----------------------------------------------------------------------------- draw_label

@pytest.mark.parametrize("size", [64, 300])
def test_draw_label_any_size(size):
    image, label = render(ACTIVITIES["waving"], appearance_for_person(1), Camera(), size=size)
    drawn = TASK.draw_label(Image.fromarray(image), label, {})
    assert min(drawn.size) >= 256
    plain = np.asarray(Image.fromarray(image).resize(drawn.size, Image.BILINEAR), dtype=int)
    changed = np.abs(np.asarray(drawn, dtype=int) - plain).max(-1) > 40
    assert 0.005 < changed.mean() < 0.3
    # left and right limbs get distinct colours
    pixels = np.asarray(drawn)
    w = drawn.size[0]
    for joint, colour in (("l_elbow", pose._BONE_COLOURS["l"]), ("r_elbow", pose._BONE_COLOURS["r"])):
        x, y = (label[JOINT_NAMES.index(joint)] * w).astype(int)
        assert np.abs(pixels[y, x].astype(int) - colour).max() < 60, joint


# ----------------------------------------------------------------------------- MPII loader

def _mpii_fixture(tmp_path, entries=None):
    """annot/train.json + images/ in HRNet's layout; each person has a red square on its head_top."""
    (tmp_path / "annot").mkdir()
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(0)
    made = []
    for k in range(3):
        w, h = 160 + 20 * k, 120
        pixels = np.full((h, w, 3), 40, np.uint8)
        joints = np.stack([rng.uniform(20, w - 20, 16), rng.uniform(20, h - 20, 16)], axis=1).round()
        hx, hy = joints[JOINT_NAMES.index("head_top")].astype(int)
        pixels[hy - 4:hy + 5, hx - 4:hx + 5] = (255, 0, 0)
        name = f"{k:09d}.jpg"
        Image.fromarray(pixels).save(tmp_path / "images" / name, quality=95)
        made.append({
            "image": name,
            "joints": (joints + 1).tolist(),  # MATLAB 1-based, as in the release
            "joints_vis": [1] * 16,
            "center": [w / 2 + 1, h / 2 + 1],
            "scale": 1.0,
        })
    hidden = dict(made[1], joints_vis=[1] * 15 + [0])
    made.append(hidden)
    path = tmp_path / "annot" / "train.json"
    path.write_text(json.dumps(made if entries is None else entries))
    return path, made


def test_mpii_loader_reads_hrnet_json(tmp_path):
    path, entries = _mpii_fixture(tmp_path)
    data = TASK.load_real(path, size=64)
    assert data.images.shape == (3, 64, 64, 3) and data.labels.shape == (3, 16, 2)
    assert data.labels.dtype == np.float32
    assert data.meta["image"] == [e["image"] for e in entries[:3]]
    head = JOINT_NAMES.index("head_top")
    for i in range(3):
        x, y = (data.labels[i, head] * 64).astype(int)
        r, g, b = data.images[i, y, x].astype(int)
        assert r > 150 and g < 100 and b < 100, (i, r, g, b)
    # crop geometry: side = 1.0 * 200 * 1.25 = 250 px, centre moved down 15 * scale
    e = entries[0]
    side = 250
    x0 = round(e["center"][0] - 1 - side / 2)
    y0 = round(e["center"][1] - 1 + 15 - side / 2)
    expected = (np.array(e["joints"][0]) - 1 - np.array([x0, y0]) + 0.5) / side
    np.testing.assert_allclose(data.labels[0, 0], expected, atol=1e-6)
    # directory path and explicit images_dir give the same data
    np.testing.assert_array_equal(TASK.load_real(tmp_path, size=64).labels, data.labels)
    np.testing.assert_array_equal(
        TASK.load_real(path, size=64, images_dir=tmp_path / "images").images, data.images)


def test_mpii_loader_missing_joints(tmp_path):
    path, _ = _mpii_fixture(tmp_path)
    kept = TASK.load_real(path, size=32, missing="keep")
    assert len(kept) == 4
    assert np.isnan(kept.labels[3, 15]).all() and not np.isnan(kept.labels[3, :15]).any()
    assert kept.meta["joints_vis"][3] == [1] * 15 + [0]
    assert np.isfinite(TASK.label_distance(kept.labels, kept.labels)).all()


def test_mpii_loader_errors(tmp_path):
    with pytest.raises(DataFormatError, match="not found"):
        TASK.load_real(tmp_path / "nope.json")
    path, entries = _mpii_fixture(tmp_path)
    path.write_text("[{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        TASK.load_real(path)
    path.write_text(json.dumps({"image": "x.jpg"}))
    with pytest.raises(DataFormatError, match="JSON list"):
        TASK.load_real(path)
    path.write_text(json.dumps([dict(entries[0], joints=entries[0]["joints"][:14])]))
    with pytest.raises(DataFormatError, match="14 joints, expected 16") as error:
        TASK.load_real(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
    path.write_text(json.dumps([dict(entries[0], scale=-1)]))
    with pytest.raises(DataFormatError, match="scale"):
        TASK.load_real(path)
    path.write_text(json.dumps([dict(entries[0], image="missing.jpg")]))
    with pytest.raises(DataFormatError, match="missing.jpg"):
        TASK.load_real(path)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not an image")
    path.write_text(json.dumps([dict(entries[0], image="broken.jpg")]))
    with pytest.raises(DataFormatError, match="cannot read image"):
        TASK.load_real(path)
