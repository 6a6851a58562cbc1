"""Procedural human figures for the pose task: 3D joint angles -> forward kinematics -> image.

Coordinate frames
-----------------
Body frame (and world frame before the camera turns): x = the person's LEFT, y = up,
z = the person's forward direction. At camera yaw 0 the person faces the camera, so the
person's left appears on the right of the image (their right hand is on the viewer's left).
The camera is orthographic and looks along -z: image x = world x, image y = -world y.
Larger z is nearer to the camera, so parts are painted in increasing z.

Angles (degrees, ``ANGLE_NAMES``): the torso turns at the pelvis (bend forward, lean to the
person's left, twist to the left); each upper limb is placed by flexion (swing forward),
abduction (swing outward, away from the midline) and twist (turns the plane in which the
elbow bends); elbows bend the forearm forward, knees bend the shin backward. Left and right
limbs use mirror-symmetric conventions, so ``mirror_angles`` (swap sides, negate the lateral
angles) gives exactly the mirror image of a pose.

Pixel convention: a label (u, v) in [0, 1] is the point u * size along x, v * size down y
in a continuous image where pixel i covers [i, i + 1) (its centre is i + 0.5). PIL's polygon
fill uses the same convention, which makes a rendered mirror pose pixel-exact.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

N_JOINTS = 16
JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
#: Index permutation that swaps left and right joints (used by the horizontal flip).
FLIP_PERMUTATION = np.array([5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10])

ANGLE_NAMES = (
    "torso_bend", "torso_lean", "torso_twist",
    "head_pitch", "head_tilt", "head_turn",
    "l_shoulder_flex", "l_shoulder_abd", "l_shoulder_twist", "l_elbow",
    "r_shoulder_flex", "r_shoulder_abd", "r_shoulder_twist", "r_elbow",
    "l_hip_flex", "l_hip_abd", "l_knee",
    "r_hip_flex", "r_hip_abd", "r_knee",
)
ANGLE_INDEX = {name: i for i, name in enumerate(ANGLE_NAMES)}
N_ANGLES = len(ANGLE_NAMES)
#: Angles whose sign flips under a left-right mirror (they turn or lean toward one side).
_LATERAL_ANGLES = ("torso_lean", "torso_twist", "head_tilt", "head_turn")

#: Joint limits in degrees (low, high); sampled poses are clipped to them.
ANGLE_LIMITS = {
    "torso_bend": (-30, 100), "torso_lean": (-30, 30), "torso_twist": (-45, 45),
    "head_pitch": (-40, 45), "head_tilt": (-25, 25), "head_turn": (-60, 60),
    "shoulder_flex": (-70, 185), "shoulder_abd": (0, 180), "shoulder_twist": (-100, 100), "elbow": (0, 150),
    "hip_flex": (-45, 135), "hip_abd": (-8, 70), "knee": (0, 155),
}
#: Standard deviation (degrees) of the jitter around an activity's prototype.
_JITTER_STD = {
    "torso_bend": 7, "torso_lean": 5, "torso_twist": 10, "head_pitch": 9, "head_tilt": 7, "head_turn": 18,
    "shoulder_flex": 13, "shoulder_abd": 11, "shoulder_twist": 20, "elbow": 14,
    "hip_flex": 9, "hip_abd": 5, "knee": 10,
}


def _limit_key(name: str) -> str:
    return name[2:] if name[:2] in ("l_", "r_") else name


def _proto(**angles: float) -> np.ndarray:
    """Prototype angle vector; arguments ``both_x=v`` set ``l_x`` and ``r_x``."""
    vector = np.zeros(N_ANGLES)
    for name, value in angles.items():
        names = (f"l_{name[5:]}", f"r_{name[5:]}") if name.startswith("both_") else (name,)
        for n in names:
            vector[ANGLE_INDEX[n]] = value
    return vector


_STAND_LEGS = dict(both_hip_abd=4, both_knee=3)
_ARMS_DOWN = dict(both_shoulder_abd=9, both_elbow=12, both_shoulder_flex=3)

#: Activity prototypes. Asymmetric ones are written for the left side and mirrored at random.
ACTIVITIES: dict[str, np.ndarray] = {
    "standing": _proto(**_STAND_LEGS, **_ARMS_DOWN),
    "walking": _proto(
        torso_bend=3, l_shoulder_flex=-28, r_shoulder_flex=32, both_shoulder_abd=7, l_elbow=20, r_elbow=35,
        l_hip_flex=26, l_knee=8, r_hip_flex=-18, r_knee=28, both_hip_abd=3,
    ),
    "running": _proto(
        torso_bend=16, head_pitch=-12, l_shoulder_flex=-45, r_shoulder_flex=60, both_shoulder_abd=10,
        both_elbow=95, l_hip_flex=65, l_knee=80, r_hip_flex=-28, r_knee=105, both_hip_abd=3,
    ),
    "sitting": _proto(
        torso_bend=-4, both_hip_flex=90, both_knee=92, both_hip_abd=7,
        both_shoulder_flex=28, both_shoulder_abd=10, both_elbow=62,
    ),
    "squatting": _proto(
        torso_bend=38, head_pitch=-30, both_hip_flex=112, both_knee=138, both_hip_abd=22,
        both_shoulder_flex=70, both_shoulder_abd=12, both_elbow=20,
    ),
    "arms_raised": _proto(
        head_pitch=-12, both_shoulder_abd=165, both_shoulder_flex=10, both_elbow=10, **_STAND_LEGS,
    ),
    "arms_out": _proto(both_shoulder_abd=88, both_elbow=5, both_shoulder_flex=5, **_STAND_LEGS),
    "reaching": _proto(
        torso_bend=22, head_pitch=-15, l_shoulder_flex=100, l_shoulder_abd=12, l_elbow=5,
        r_shoulder_flex=-15, r_shoulder_abd=12, r_elbow=15,
        l_hip_flex=12, l_knee=15, r_hip_flex=-22, r_knee=5, both_hip_abd=4,
    ),
    "kicking": _proto(
        torso_bend=-14, l_hip_flex=85, l_knee=12, l_hip_abd=4, r_knee=10, r_hip_abd=4,
        both_shoulder_abd=45, l_shoulder_flex=-20, r_shoulder_flex=35, both_elbow=25,
    ),
    "bending": _proto(
        torso_bend=85, head_pitch=-25, both_shoulder_flex=82, both_shoulder_abd=6, both_elbow=8,
        both_knee=8, both_hip_abd=5,
    ),
    "waving": _proto(
        head_tilt=8, l_shoulder_abd=105, l_shoulder_flex=12, l_shoulder_twist=90, l_elbow=80,
        r_shoulder_abd=8, r_elbow=12, **_STAND_LEGS,
    ),
    "jumping_jack": _proto(
        head_pitch=-8, both_shoulder_abd=140, both_elbow=8, both_hip_abd=24, both_knee=6,
    ),
    "lunging": _proto(
        torso_bend=4, l_hip_flex=82, l_knee=88, l_hip_abd=6, r_hip_flex=-32, r_knee=45, r_hip_abd=4,
        both_shoulder_abd=16, both_elbow=18,
    ),
    "boxing": _proto(
        torso_twist=-15, head_pitch=10, l_shoulder_flex=85, l_shoulder_abd=12, l_elbow=8,
        r_shoulder_flex=45, r_shoulder_abd=25, r_elbow=135, r_shoulder_twist=-15,
        l_hip_flex=22, l_knee=22, r_hip_flex=-18, r_knee=25, both_hip_abd=8,
    ),
}
ACTIVITY_NAMES = tuple(ACTIVITIES)


def clip_angles(angles: np.ndarray) -> np.ndarray:
    """Clip an angle vector to ``ANGLE_LIMITS``."""
    low = np.array([ANGLE_LIMITS[_limit_key(n)][0] for n in ANGLE_NAMES], dtype=float)
    high = np.array([ANGLE_LIMITS[_limit_key(n)][1] for n in ANGLE_NAMES], dtype=float)
    return np.clip(angles, low, high)


_SWAP_SIDES = np.array([
    ANGLE_INDEX[("r_" + n[2:]) if n.startswith("l_") else ("l_" + n[2:]) if n.startswith("r_") else n]
    for n in ANGLE_NAMES
])
_LATERAL_SIGN = np.array([-1.0 if n in _LATERAL_ANGLES else 1.0 for n in ANGLE_NAMES])


def mirror_angles(angles: np.ndarray) -> np.ndarray:
    """The mirror-image pose: left and right limb angles swapped, lateral angles negated."""
    return np.asarray(angles, dtype=float)[_SWAP_SIDES] * _LATERAL_SIGN


_JITTER = np.array([_JITTER_STD[_limit_key(n)] for n in ANGLE_NAMES], dtype=float)


@dataclass(frozen=True)
class PoseSample:
    angles: np.ndarray
    activity: str
    second_activity: str
    blend: float


def sample_pose(rng: np.random.Generator, blend_probability: float = 0.35) -> PoseSample:
    """An activity prototype (mirrored with probability 1/2), blended with a second activity
    with ``blend_probability`` (weight U(0.1, 0.5), so the first stays dominant), plus
    Gaussian jitter of ``_JITTER_STD`` degrees per angle, clipped to the joint limits."""
    names = ACTIVITY_NAMES
    first = names[rng.integers(len(names))]
    angles = ACTIVITIES[first].copy()
    if rng.random() < 0.5:
        angles = mirror_angles(angles)
    second, weight = first, 0.0
    if rng.random() < blend_probability:
        second = names[rng.integers(len(names))]
        other = ACTIVITIES[second] if rng.random() < 0.5 else mirror_angles(ACTIVITIES[second])
        weight = float(rng.uniform(0.1, 0.5))
        angles = (1 - weight) * angles + weight * other
    angles = angles + rng.normal(size=N_ANGLES) * _JITTER
    return PoseSample(clip_angles(angles), first, second, weight)


# ----------------------------------------------------------------------------- appearance

_SKIN = np.array([
    (255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
    (92, 58, 32), (250, 208, 180), (172, 118, 82),
], dtype=float)
_HAIR = np.array([
    (22, 17, 14), (62, 40, 24), (112, 74, 40), (205, 175, 105), (160, 160, 160), (135, 52, 22),
], dtype=float)
_TROUSERS = np.array([
    (44, 62, 112), (28, 28, 34), (112, 112, 118), (172, 150, 110), (92, 62, 42), (34, 56, 44), (70, 95, 150),
], dtype=float)
_SHOES = np.array([(22, 22, 22), (238, 238, 238), (95, 55, 32), (150, 32, 32), (42, 42, 120)], dtype=float)

#: Number of distinct persons (identities) the generator draws from.
N_PERSONS = 300
_PERSON_ENTROPY = 0x5E5_0F_B0D1  # fixed: a person's look depends on their id only


@dataclass(frozen=True)
class Appearance:
    """Body proportions (in torso lengths: pelvis to thorax = 1) and outfit colours (RGB 0-255)."""

    shoulder_half: float = 0.38
    hip_half: float = 0.2
    neck: float = 0.22
    head: float = 0.46
    head_width: float = 0.36
    upper_arm: float = 0.6
    forearm: float = 0.54
    hand: float = 0.2
    thigh: float = 0.92
    shin: float = 0.88
    foot: float = 0.28
    bulk: float = 1.0
    skin: tuple = (224, 172, 105)
    hair: tuple = (62, 40, 24)
    shirt: tuple = (200, 60, 60)
    trousers: tuple = (44, 62, 112)
    shoes: tuple = (22, 22, 22)
    long_sleeves: bool = True
    long_trousers: bool = True


def appearance_for_person(person: int) -> Appearance:
    """The fixed body and outfit of person ``person`` (any int; the generator uses 0..N_PERSONS-1)."""
    rng = np.random.default_rng(np.random.SeedSequence(_PERSON_ENTROPY, spawn_key=(int(person),)))
    limb = rng.uniform(0.9, 1.1)  # long- or short-limbed relative to the torso
    u = rng.uniform
    hue, sat, val = u(0, 1), u(0.15, 0.9), u(0.3, 0.95)
    shirt = np.array(colorsys.hsv_to_rgb(hue, sat, val)) * 255
    if rng.random() < 0.12:
        shirt = np.full(3, rng.choice([235.0, 30.0]))
    trousers = _TROUSERS[rng.integers(len(_TROUSERS))] if rng.random() < 0.8 else rng.uniform(20, 220, 3)
    skin = _SKIN[rng.integers(len(_SKIN))]
    hair = skin if rng.random() < 0.07 else _HAIR[rng.integers(len(_HAIR))]

    def colour(c):
        return tuple(int(v) for v in np.clip(np.asarray(c) + rng.normal(0, 6, 3), 0, 255))

    return Appearance(
        shoulder_half=u(0.33, 0.43), hip_half=u(0.17, 0.24), neck=u(0.17, 0.25), head=u(0.42, 0.5),
        head_width=u(0.33, 0.39), upper_arm=limb * u(0.56, 0.64), forearm=limb * u(0.5, 0.57), hand=u(0.17, 0.22),
        thigh=limb * u(0.86, 0.98), shin=limb * u(0.82, 0.94), foot=u(0.25, 0.31), bulk=u(0.8, 1.3),
        skin=colour(skin), hair=colour(hair), shirt=colour(shirt), trousers=colour(trousers),
        shoes=colour(_SHOES[rng.integers(len(_SHOES))]),
        long_sleeves=bool(rng.random() < 0.55), long_trousers=bool(rng.random() < 0.75),
    )


def mirror_appearance(appearance: Appearance) -> Appearance:
    """The mirror image of an appearance. Outfits are left-right symmetric, so it is unchanged."""
    return replace(appearance)


# ----------------------------------------------------------------------------- kinematics

def _rx(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(deg: float) -> np.ndarray:
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _axis_rotation(axis: np.ndarray, deg: float) -> np.ndarray:
    """Rodrigues rotation matrix about the unit vector ``axis``."""
    x, y, z = axis
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + s * k + (1 - c) * (k @ k)


_DOWN = np.array([0.0, -1.0, 0.0])
_X, _Y, _Z = np.eye(3)


def _limb_frame(flex: float, abd: float, twist: float, side: float) -> np.ndarray:
    """Rotation of a hanging limb: twist about its own axis, abduct outward, flex forward.
    ``side`` is +1 for the left (outward = +x) and -1 for the right."""
    return _rx(-flex) @ _rz(side * abd) @ _ry(side * twist)


def forward_kinematics(angles: np.ndarray, appearance: Appearance) -> dict[str, np.ndarray]:
    """3D points of the figure in the body frame (pelvis at the origin, torso length 1).

    Returns a dict with ``joints`` (16, 3) in MPII order, plus the extra points the renderer
    needs: ``l_hand``/``r_hand`` (finger tips), ``l_toe``/``r_toe`` and ``l_heel``/``r_heel``,
    ``head_centre``, ``hair_centre``, torso corners ``torso_l_top``, ``torso_r_top``,
    ``torso_l_bottom``, ``torso_r_bottom``.
    """
    a = {name: float(v) for name, v in zip(ANGLE_NAMES, angles)}
    ap = appearance
    points: dict[str, np.ndarray] = {}
    pelvis = np.zeros(3)
    torso = _ry(a["torso_twist"]) @ _rx(a["torso_bend"]) @ _rz(-a["torso_lean"])
    thorax = pelvis + torso @ np.array([0.0, 1.0, 0.0])
    head_frame = torso @ _ry(a["head_turn"]) @ _rx(a["head_pitch"]) @ _rz(-a["head_tilt"])
    upper_neck = thorax + head_frame @ np.array([0.0, ap.neck, 0.02])
    head_top = upper_neck + head_frame @ np.array([0.0, ap.head, -0.04])
    points["head_centre"] = upper_neck + head_frame @ np.array([0.0, 0.5 * ap.head, 0.0])
    points["hair_centre"] = upper_neck + head_frame @ np.array([0.0, 0.56 * ap.head, -0.1 * ap.head_width])

    joints = {"pelvis": pelvis, "thorax": thorax, "upper_neck": upper_neck, "head_top": head_top}
    for prefix, side in (("l", 1.0), ("r", -1.0)):
        shoulder = thorax + torso @ np.array([side * ap.shoulder_half, -0.07, 0.0])
        arm = torso @ _limb_frame(a[f"{prefix}_shoulder_flex"], a[f"{prefix}_shoulder_abd"],
                                  a[f"{prefix}_shoulder_twist"], side)
        elbow = shoulder + ap.upper_arm * (arm @ _DOWN)
        forearm = _axis_rotation(arm @ _X, -a[f"{prefix}_elbow"]) @ arm
        wrist = elbow + ap.forearm * (forearm @ _DOWN)
        points[f"{prefix}_hand"] = wrist + ap.hand * (forearm @ _DOWN)

        hip = pelvis + np.array([side * ap.hip_half, -0.06, 0.0])
        leg = _limb_frame(a[f"{prefix}_hip_flex"], a[f"{prefix}_hip_abd"], 0.0, side)
        knee = hip + ap.thigh * (leg @ _DOWN)
        shin = _axis_rotation(leg @ _X, a[f"{prefix}_knee"]) @ leg
        ankle = knee + ap.shin * (shin @ _DOWN)
        # The foot sits at a right angle to the shin, pointing forward and a little down.
        foot_dir = shin @ np.array([0.0, -0.25, 1.0])
        foot_dir /= np.linalg.norm(foot_dir)
        points[f"{prefix}_toe"] = ankle + ap.foot * foot_dir
        points[f"{prefix}_heel"] = ankle - 0.06 * foot_dir
        joints.update({f"{prefix}_shoulder": shoulder, f"{prefix}_elbow": elbow, f"{prefix}_wrist": wrist,
                       f"{prefix}_hip": hip, f"{prefix}_knee": knee, f"{prefix}_ankle": ankle})
        points[f"torso_{prefix}_top"] = thorax + torso @ np.array([side * (ap.shoulder_half + 0.03), -0.02, 0.0])
        points[f"torso_{prefix}_bottom"] = pelvis + np.array([side * (ap.hip_half + 0.07), -0.02, 0.0])
    points["joints"] = np.stack([joints[name] for name in JOINT_NAMES])
    return points


# ----------------------------------------------------------------------------- camera + render

@dataclass(frozen=True)
class Camera:
    """Orthographic camera. ``yaw``: degrees the body is turned about the vertical axis
    (positive turns the person to their left, i.e. shows more of their right side);
    ``pitch``: degrees the camera looks down from above; ``scale``: fraction of the image
    the figure's larger bounding-box side fills; ``x``, ``y`` in [0, 1]: where the box sits
    in the free space (0 = left/top edge, 1 = right/bottom edge)."""

    yaw: float = 0.0
    pitch: float = 0.0
    scale: float = 0.8
    x: float = 0.5
    y: float = 0.5


def mirror_camera(camera: Camera) -> Camera:
    """The camera that sees the mirrored world the way ``camera`` sees this one."""
    return replace(camera, yaw=-camera.yaw, x=1.0 - camera.x)


def sample_camera(rng: np.random.Generator) -> Camera:
    return Camera(
        yaw=float(rng.uniform(-80, 80)), pitch=float(rng.uniform(-8, 18)), scale=float(rng.uniform(0.5, 0.92)),
        x=float(rng.uniform(0, 1)), y=float(rng.uniform(0, 1)),
    )


def _shade(colour, factor: float) -> tuple:
    return tuple(int(min(255, max(0, c * factor))) for c in colour)


class _Painter:
    """Draws tapered capsules and ellipses on a supersampled PIL canvas with a dark outline."""

    def __init__(self, image: Image.Image, outline: float) -> None:
        self.draw = ImageDraw.Draw(image)
        self.outline = outline

    def capsule(self, p1, p2, r1, r2, fill) -> None:
        edge = _shade(fill, 0.45)
        for pad, colour in ((self.outline, edge), (0.0, fill)):
            self._capsule(p1, p2, r1 + pad, r2 + pad, colour)

    def _capsule(self, p1, p2, r1, r2, colour) -> None:
        d = p2 - p1
        length = float(np.hypot(d[0], d[1]))
        draw = self.draw
        draw.ellipse((p1[0] - r1, p1[1] - r1, p1[0] + r1, p1[1] + r1), fill=colour)
        draw.ellipse((p2[0] - r2, p2[1] - r2, p2[0] + r2, p2[1] + r2), fill=colour)
        if length > 1e-6:
            n = np.array([-d[1], d[0]]) / length
            quad = [tuple(p1 + n * r1), tuple(p2 + n * r2), tuple(p2 - n * r2), tuple(p1 - n * r1)]
            draw.polygon(quad, fill=colour)

    def polygon(self, points, fill) -> None:
        edge = _shade(fill, 0.45)
        self.draw.polygon([tuple(p) for p in points], fill=fill, outline=edge, width=max(1, round(self.outline)))

    def ellipse(self, centre, axis, half_length, half_width, fill, outline=True) -> None:
        """Ellipse with semi-axis ``half_length`` along unit vector ``axis``."""
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        normal = np.array([-axis[1], axis[0]])
        layers = ((self.outline, _shade(fill, 0.45)), (0.0, fill)) if outline else ((0.0, fill),)
        for pad, colour in layers:
            pts = centre + np.outer(np.cos(t) * (half_length + pad), axis) + np.outer(np.sin(t) * (half_width + pad), normal)
            self.draw.polygon([tuple(p) for p in pts], fill=colour)


def _project(points: dict[str, np.ndarray], camera: Camera) -> tuple[dict, dict]:
    """Turn the body (yaw), tilt the view (pitch); returns 2D (x right, y down) and depth z."""
    rotation = _rx(camera.pitch) @ _ry(camera.yaw)
    flat, depth = {}, {}
    for name, p in points.items():
        q = p @ rotation.T
        flat[name] = np.stack([q[..., 0], -q[..., 1]], axis=-1)
        depth[name] = q[..., 2]
    return flat, depth


def render(angles: np.ndarray, appearance: Appearance, camera: Camera, size: int = 128,
           background: Image.Image | np.ndarray | None = None, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Render one figure.

    Args:
        angles: (N_ANGLES,) degrees in ``ANGLE_NAMES`` order.
        appearance: body proportions and outfit (``appearance_for_person``).
        camera: yaw / pitch / framing.
        size: output side in pixels.
        background: RGB image of side ``size * supersample`` (PIL or uint8 array), or None
            for a plain grey one.
        supersample: the figure is drawn at this factor and box-filtered down (anti-aliasing).

    Returns:
        image uint8 (size, size, 3) and joints float32 (16, 2): MPII joints as seen in the
        image, normalised by ``size`` (x right, y down; see the module docstring).
    """
    hi = size * supersample
    if background is None:
        canvas = Image.new("RGB", (hi, hi), (128, 128, 128))
    elif isinstance(background, Image.Image):
        canvas = background.copy()
    else:
        canvas = Image.fromarray(np.asarray(background, dtype=np.uint8))
    if canvas.size != (hi, hi):
        raise ValueError(f"background must be {hi}x{hi} (size {size} x supersample {supersample}), got {canvas.size}")

    ap = appearance
    points3d = forward_kinematics(angles, ap)
    flat, depth = _project(points3d, camera)
    joints = flat.pop("joints")
    joint_depth = depth.pop("joints")
    j2 = {name: joints[i] for i, name in enumerate(JOINT_NAMES)}
    jz = {name: joint_depth[i] for i, name in enumerate(JOINT_NAMES)}
    j2.update(flat)
    jz.update(depth)

    # Framing: fit the bounding box of every drawn point (plus the body thickness).
    pad = 0.2 * ap.bulk + 0.05
    extent = np.concatenate([joints, np.stack(list(flat.values()))])
    low, high = extent.min(0) - pad, extent.max(0) + pad
    low[1] = min(low[1], j2["head_top"][1] - 0.05)
    box = high - low
    scale = camera.scale * hi / box.max()
    free = hi - box * scale
    offset = np.array([camera.x, camera.y]) * free - low * scale
    px = {name: p * scale + offset for name, p in j2.items()}

    r = scale * ap.bulk  # limb radii are in torso lengths times bulk
    painter = _Painter(canvas, outline=max(1.0, hi / 160))
    z_body = 0.5 * (jz["pelvis"] + jz["thorax"])

    def shaded(colour, z):
        return _shade(colour, float(np.clip(1.0 + 0.35 * (z - z_body), 0.72, 1.12)))

    skin, shirt, trousers = ap.skin, ap.shirt, ap.trousers
    groups: list[tuple[float, int, callable]] = []

    def torso_group():
        c = shaded(shirt, z_body)
        painter.capsule(px["pelvis"], px["thorax"], 0.2 * r, 0.21 * r, c)
        painter.polygon([px["torso_l_top"], px["torso_r_top"], px["torso_r_bottom"], px["torso_l_bottom"]], c)
        painter.capsule(px["l_hip"], px["r_hip"], 0.13 * r, 0.13 * r, shaded(trousers, z_body))

    groups.append((z_body, 0, torso_group))

    def head_group():
        z = jz["head_centre"]
        painter.capsule(px["thorax"], px["upper_neck"], 0.075 * r, 0.07 * r, shaded(skin, z))
        axis = px["head_top"] - px["upper_neck"]
        length = float(np.hypot(*axis))
        axis = axis / length if length > 1e-6 else np.array([0.0, -1.0])
        half_w = 0.5 * ap.head_width * scale
        half_l = max(0.5 * length * 1.08, half_w)
        hair_centre = px["hair_centre"]
        face = lambda: painter.ellipse(px["head_centre"], axis, half_l, half_w, shaded(skin, z))  # noqa: E731
        hair = lambda: painter.ellipse(hair_centre, axis, half_l * 0.98, half_w * 1.04, shaded(ap.hair, z))  # noqa: E731
        # Hair is a cap on the back of the head: behind the face when the face looks at us.
        for part in ((hair, face) if jz["hair_centre"] < z else (face, hair)):
            part()

    groups.append((0.5 * (jz["upper_neck"] + jz["head_top"]), 1, head_group))

    for side in ("l", "r"):
        s, e, w, h = (f"{side}_shoulder", f"{side}_elbow", f"{side}_wrist", f"{side}_hand")
        hip, knee, ankle = f"{side}_hip", f"{side}_knee", f"{side}_ankle"
        toe, heel = f"{side}_toe", f"{side}_heel"

        def upper_arm(s=s, e=e):
            z = 0.5 * (jz[s] + jz[e])
            painter.capsule(px[s], px[e], 0.085 * r, 0.065 * r, shaded(shirt if ap.long_sleeves else skin, z))
            if not ap.long_sleeves:
                mid = px[s] + 0.45 * (px[e] - px[s])
                painter.capsule(px[s], mid, 0.095 * r, 0.085 * r, shaded(shirt, z))

        def forearm(e=e, w=w, h=h):
            z = 0.5 * (jz[e] + jz[w])
            painter.capsule(px[w], px[h], 0.05 * r, 0.045 * r, shaded(skin, z))
            painter.capsule(px[e], px[w], 0.065 * r, 0.05 * r, shaded(shirt if ap.long_sleeves else skin, z))

        def thigh(hip=hip, knee=knee):
            z = 0.5 * (jz[hip] + jz[knee])
            painter.capsule(px[hip], px[knee], 0.13 * r, 0.095 * r, shaded(trousers if ap.long_trousers else skin, z))
            if not ap.long_trousers:
                mid = px[hip] + 0.6 * (px[knee] - px[hip])
                painter.capsule(px[hip], mid, 0.135 * r, 0.11 * r, shaded(trousers, z))

        def shin(knee=knee, ankle=ankle, toe=toe, heel=heel):
            z = 0.5 * (jz[knee] + jz[ankle])
            painter.capsule(px[knee], px[ankle], 0.095 * r, 0.065 * r, shaded(trousers if ap.long_trousers else skin, z))
            painter.capsule(px[heel], px[toe], 0.07 * r, 0.055 * r, shaded(ap.shoes, z))

        # Tie-break (second key): limbs over the torso, forearms over upper arms.
        groups.append((0.5 * (jz[s] + jz[e]), 2, upper_arm))
        groups.append((0.5 * (jz[e] + jz[w]), 3, forearm))
        groups.append((0.5 * (jz[hip] + jz[knee]), 2, thigh))
        groups.append((0.5 * (jz[knee] + jz[ankle]), 3, shin))

    # Round depths so that mirror-image parts (equal depth up to float noise) keep a stable order.
    for _, _, paint in sorted(groups, key=lambda g: (round(float(g[0]), 6), g[1])):
        paint()

    if supersample > 1:
        canvas = canvas.reduce(supersample)
    label = (joints * scale + offset) / hi
    return np.asarray(canvas, dtype=np.uint8), label.astype(np.float32)


# ----------------------------------------------------------------------------- backgrounds

def _random_colour(rng: np.random.Generator) -> tuple:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def sample_background(rng: np.random.Generator, side: int) -> Image.Image:
    """Clutter that never looks like a person: a gradient with smooth noise texture, an
    optional floor (with tile lines), and random rectangles, ellipses, triangles and lines."""
    c1 = rng.uniform(20, 235, 3)
    c2 = np.clip(c1 + rng.normal(0, 60, 3), 0, 255)
    theta = rng.uniform(0, 2 * np.pi)
    grid = np.linspace(-0.5, 0.5, 16)
    t = np.clip(0.5 + np.cos(theta) * grid[None, :] + np.sin(theta) * grid[:, None], 0, 1)
    low = c1 + (c2 - c1) * t[..., None]
    low = low + rng.normal(0, rng.uniform(3, 22), (16, 16, 3))
    base = Image.fromarray(np.clip(low, 0, 255).astype(np.uint8)).resize((side, side), Image.BILINEAR)
    if rng.random() < 0.5:  # fine grain texture
        grain = rng.normal(0, rng.uniform(4, 14), (side // 4, side // 4, 1))
        grain_img = Image.fromarray(np.clip(128 + grain[..., 0], 0, 255).astype(np.uint8))
        grain_full = np.asarray(grain_img.resize((side, side), Image.NEAREST), dtype=np.int16)
        arr = np.asarray(base, dtype=np.int16) + (grain_full[..., None] - 128)
        base = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(base)
    if rng.random() < 0.55:  # floor with perspective tile lines
        horizon = rng.uniform(0.45, 0.8) * side
        floor = _random_colour(rng)
        draw.rectangle((0, horizon, side, side), fill=floor)
        line = _shade(floor, rng.choice([0.7, 1.3]))
        vanish = rng.uniform(0.2, 0.8) * side
        for k in range(-6, 7):
            draw.line((vanish + k * side * 0.04, horizon, vanish + k * side * 0.5, side),
                      fill=line, width=max(1, side // 128))
    for _ in range(rng.integers(3, 11)):
        kind = rng.integers(4)
        colour = _random_colour(rng)
        cx, cy = rng.uniform(-0.1, 1.1, 2) * side
        w, h = rng.uniform(0.05, 0.45, 2) * side
        if kind == 0:
            draw.rectangle((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=colour)
        elif kind == 1:
            draw.ellipse((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), fill=colour)
        elif kind == 2:
            pts = rng.uniform(-0.5, 0.5, (3, 2)) * np.array([w, h]) * 2 + np.array([cx, cy])
            draw.polygon([tuple(p) for p in pts], fill=colour)
        else:
            x2, y2 = rng.uniform(0, 1, 2) * side
            draw.line((cx, cy, x2, y2), fill=colour, width=int(rng.integers(1, max(2, side // 40))))
    return base
