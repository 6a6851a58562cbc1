"""Pose task: procedural human figures with 16 MPII joints, retrieved by 2D pose similarity.

Images: articulated figures rendered from 3D joint angles (``_pose_figure``) around
``len(ACTIVITY_NAMES)`` activities, with person identities (body + outfit), camera yaw,
framing and cluttered backgrounds. Labels: (N, 16, 2) float32, the MPII joints as seen in
the image, normalised by the image size (x right, y down, in [0, 1]). Real data: MPII in
HRNet's JSON format (``_pose_mpii``).
"""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, ImageDraw

from dml_core.data.tasks._pose_figure import (  # noqa: F401  (re-exported lower-level API)
    ACTIVITIES,
    ACTIVITY_NAMES,
    ANGLE_INDEX,
    ANGLE_NAMES,
    FLIP_PERMUTATION,
    JOINT_NAMES,
    N_JOINTS,
    N_PERSONS,
    Appearance,
    Camera,
    PoseSample,
    appearance_for_person,
    forward_kinematics,
    mirror_angles,
    mirror_appearance,
    mirror_camera,
    render,
    sample_background,
    sample_camera,
    sample_pose,
)
from dml_core.data.tasks._pose_mpii import load_mpii_json
from dml_core.data.tasks.base import DEFAULT_IMAGE_SIZE, Task, TaskData

_J = {name: i for i, name in enumerate(JOINT_NAMES)}
#: Skeleton edges for drawing: (joint a, joint b, side) with side "l", "r" or "c" (centre).
BONES = (
    (0, 1, "r"), (1, 2, "r"), (2, 6, "r"), (3, 6, "l"), (3, 4, "l"), (4, 5, "l"),
    (6, 7, "c"), (7, 8, "c"), (8, 9, "c"),
    (10, 11, "r"), (11, 12, "r"), (12, 7, "r"), (13, 7, "l"), (13, 14, "l"), (14, 15, "l"),
)
_BONE_COLOURS = {"l": (40, 200, 255), "r": (255, 70, 60), "c": (255, 225, 40)}

#: Segments whose 2D length (divided by its typical ratio to the torso) can stand in for
#: the torso length when the torso is foreshortened: (joint a, joint b, ratio to torso).
_SCALE_SEGMENTS = (
    (_J["l_shoulder"], _J["r_shoulder"], 0.75),
    (_J["l_hip"], _J["l_knee"], 0.9), (_J["r_hip"], _J["r_knee"], 0.9),
    (_J["l_knee"], _J["l_ankle"], 0.9), (_J["r_knee"], _J["r_ankle"], 0.9),
)
#: Other segments only count at this fraction, so the torso decides whenever it is visible.
_SCALE_FALLBACK_WEIGHT = 0.8


def flip_labels(labels: np.ndarray) -> np.ndarray:
    """Labels of the horizontally flipped images: x -> 1 - x, and left/right joints swap
    indices (the flipped person's left hand is where the right hand was)."""
    labels = np.asarray(labels)
    flipped = labels[..., FLIP_PERMUTATION, :].copy()
    flipped[..., 0] = 1.0 - flipped[..., 0]
    return flipped


def pose_scale(labels: np.ndarray) -> np.ndarray:
    """Per-pose size used by ``label_distance`` (N,).

    scale = max(|thorax - pelvis|, 0.8 * |l_shoulder - r_shoulder| / 0.75,
                0.8 * |hip - knee| / 0.9 (each side), 0.8 * |knee - ankle| / 0.9 (each side)).
    The torso length decides whenever the torso is seen side-on; when it points at the
    camera (bending toward it) its 2D length collapses and the shoulders or legs, scaled by
    their usual ratio to the torso, take over. Missing (NaN) segments are ignored; a pose
    with none of them (or all of length 0) falls back to the RMS joint spread, then to 1.
    """
    labels = np.asarray(labels, dtype=np.float64)
    torso = np.linalg.norm(labels[:, _J["thorax"]] - labels[:, _J["pelvis"]], axis=-1)
    candidates = [torso]
    for a, b, ratio in _SCALE_SEGMENTS:
        length = np.linalg.norm(labels[:, a] - labels[:, b], axis=-1)
        candidates.append(_SCALE_FALLBACK_WEIGHT * length / ratio)
    with np.errstate(invalid="ignore"):
        scale = np.fmax.reduce(np.stack(candidates), axis=0)
    bad = ~(scale > 1e-9)
    if bad.any():
        centred = labels[bad] - _centre(labels[bad])[:, None]
        spread = np.sqrt(np.nanmean(np.sum(centred**2, axis=-1), axis=-1))
        spread = np.where(spread > 1e-9, spread, 1.0)
        scale[bad] = spread
    return scale


def _centre(labels: np.ndarray) -> np.ndarray:
    """Pelvis; where it is missing, the mid-hip; where that is missing too, the mean joint."""
    centre = labels[:, _J["pelvis"]].copy()
    missing = np.isnan(centre).any(axis=-1)
    if missing.any():
        hips = 0.5 * (labels[missing, _J["l_hip"]] + labels[missing, _J["r_hip"]])
        still = np.isnan(hips).any(axis=-1)
        if still.any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pose: centre stays NaN
                hips[still] = np.nanmean(labels[missing][still], axis=1)
        centre[missing] = hips
    return centre


def normalize_labels(labels: np.ndarray) -> np.ndarray:
    """(N, 16, 2) float64: joints minus the pelvis, divided by ``pose_scale``."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.ndim != 3 or labels.shape[1:] != (N_JOINTS, 2):
        raise ValueError(f"pose labels must have shape (N, {N_JOINTS}, 2), got {labels.shape}")
    return (labels - _centre(labels)[:, None]) / pose_scale(labels)[:, None, None]


def label_distance(labels_a: np.ndarray, labels_b: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Pose distance matrix (len(a), len(b)) float32.

    d(a, b) = (1/16) * sum_j || (a_j - a_pelvis) / s(a) - (b_j - b_pelvis) / s(b) ||_2

    with s = ``pose_scale`` (the 2D torso length, with a fallback when the torso is
    foreshortened). Units: torso lengths. Invariant to translating and scaling either pose;
    left-right aware (joint j is compared with joint j, so a mirrored pose is far away).
    Joints that are NaN in either pose (missing real annotations) are left out of the mean;
    a pair with no joint in common gets NaN.
    """
    a = normalize_labels(labels_a).astype(np.float32)
    b = normalize_labels(labels_b).astype(np.float32)
    has_nan = np.isnan(a).any() or np.isnan(b).any()
    out = np.empty((len(a), len(b)), dtype=np.float32)
    bx, by = b[:, :, 0].T.copy(), b[:, :, 1].T.copy()  # (16, M)
    for start in range(0, len(a), chunk):
        block = a[start:start + chunk]
        total = np.zeros((len(block), len(b)), dtype=np.float32)
        count = np.zeros_like(total) if has_nan else None
        for j in range(N_JOINTS):
            dx = block[:, j, 0, None] - bx[j][None, :]
            dy = block[:, j, 1, None] - by[j][None, :]
            np.multiply(dx, dx, out=dx)
            np.multiply(dy, dy, out=dy)
            dx += dy
            np.sqrt(dx, out=dx)
            if has_nan:
                valid = ~np.isnan(dx)
                count += valid
                dx[~valid] = 0.0
            total += dx
        if has_nan:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start:start + chunk] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        else:
            out[start:start + chunk] = total / N_JOINTS
    return out


def draw_skeleton(image: Image.Image, label: np.ndarray, min_size: int = 256) -> Image.Image:
    """The image (upsampled to at least ``min_size`` px so lines show) with the skeleton:
    the person's left limbs blue, right limbs red, spine and head yellow, joints as dots.
    Missing (NaN) joints are not drawn."""
    image = image.convert("RGB")
    if max(image.size) < min_size:
        factor = min_size / max(image.size)
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.BILINEAR)
    draw = ImageDraw.Draw(image)
    w, h = image.size
    points = np.asarray(label, dtype=float) * np.array([w, h])
    width = max(2, round(max(w, h) / 110))
    ok = ~np.isnan(points).any(axis=1)
    for a, b, side in BONES:
        if ok[a] and ok[b]:
            draw.line((*points[a], *points[b]), fill=_BONE_COLOURS[side], width=width)
    radius = width * 1.3
    for j, (x, y) in enumerate(points):
        if ok[j]:
            side = JOINT_NAMES[j][0] if JOINT_NAMES[j][1] == "_" else "c"
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=_BONE_COLOURS[side], outline=(0, 0, 0))
    return image


def sample_scene(seed: int, index: int) -> dict:
    """All random choices of image ``index`` of ``generate(n, seed)`` (independent of n)."""
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(index),)))
    pose = sample_pose(rng)
    person = int(rng.integers(N_PERSONS))
    camera = sample_camera(rng)
    return {"pose": pose, "person": person, "camera": camera, "rng": rng}


class PoseTask(Task):
    """Human pose retrieval: figures rendered from 3D joint angles; label = 2D joints."""

    name = "pose"
    title = "Human pose"
    description = "Articulated figures; label = 2-D joints; distance = mean per-joint error after normalisation."
    attributes = ("activity", "yaw", "person")
    activities = ACTIVITY_NAMES

    def generate(self, n: int, seed: int, size: int = DEFAULT_IMAGE_SIZE) -> TaskData:
        """``n`` figures. Image i depends only on (seed, i, size) (numpy SeedSequence with
        spawn key i), so ``generate(n, seed)`` is a prefix of ``generate(m, seed)`` for m > n.

        meta: ``activity`` (dominant activity), ``activity2`` and ``blend`` (second activity
        mixed in and its weight, 0 when none), ``yaw`` (degrees), ``person`` (identity in
        0..N_PERSONS-1: same body and outfit in every pose).
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        images = np.empty((n, size, size, 3), dtype=np.uint8)
        labels = np.empty((n, N_JOINTS, 2), dtype=np.float32)
        meta: dict[str, list] = {"activity": [], "activity2": [], "blend": [], "yaw": [], "person": []}
        for i in range(n):
            scene = sample_scene(seed, i)
            background = sample_background(scene["rng"], 2 * size)
            pose, camera = scene["pose"], scene["camera"]
            images[i], labels[i] = render(pose.angles, appearance_for_person(scene["person"]), camera,
                                          size=size, background=background, supersample=2)
            meta["activity"].append(pose.activity)
            meta["activity2"].append(pose.second_activity)
            meta["blend"].append(round(pose.blend, 4))
            meta["yaw"].append(round(camera.yaw, 3))
            meta["person"].append(scene["person"])
        return TaskData(images=images, labels=labels, meta=meta)

    def label_distance(self, labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
        return label_distance(labels_a, labels_b)

    def flip_labels(self, labels: np.ndarray) -> np.ndarray:
        return flip_labels(labels)

    def load_real(self, path, size: int = DEFAULT_IMAGE_SIZE, **kwargs) -> TaskData:
        """MPII annotations in HRNet's JSON format; see ``_pose_mpii.load_mpii_json`` for the
        keyword arguments (images_dir, missing="skip"|"keep", crop_factor, one_based, limit)."""
        return load_mpii_json(path, size, **kwargs)

    def draw_label(self, image: Image.Image, label: np.ndarray, meta: dict | None = None, width: int = 256) -> Image.Image:
        return draw_skeleton(image, label, min_size=width)


PoseTask.label_distance.__doc__ = label_distance.__doc__

TASK = PoseTask()
