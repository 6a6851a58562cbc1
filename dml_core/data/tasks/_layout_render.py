"""Ray-cast box rooms for the layout task: geometry, appearance, and a vectorised renderer.

World frame (metres): x to the right, y up, z forward. The room is the box
``[0, width] x [0, height] x [0, depth]``; the camera stands inside it and faces the far wall
``z = depth`` (the *front* wall). Walls ``x = 0`` / ``x = width`` are the *left* / *right* walls.
The wall behind the camera (``z = 0``) is never seen: camera rays are kept pointing forward
(every ray has ``d_z > 0``, which holds when ``|yaw| + fov/2 < 90°`` and ``pitch + fov/2 < 90°``).

One ray per pixel: a pixel (column j, row i) of an S x S image gets the direction
``d = f + tan(fov/2) * (s_x * r - s_y * u)``, ``s = 2 (index + 0.5) / S - 1``, where f, r, u are the
camera's forward, right and up vectors (yaw about y, then pitch about the camera's x axis; no
roll). A ray meets the room at ``t = min(t_x, t_y, t_z)`` with ``t_x = (x_wall - c_x) / d_x``
for the side wall it heads to (likewise y, z); the plane that gives the minimum is the
surface class. Furniture boxes are intersected with the slab method; they occlude the room
in the image but never change the layout label (as in LSUN, which labels the room's surfaces
behind furniture).

The geometry (room box + camera) and the appearance (textures, lights, wall items,
furniture) are separate objects, so the same room and camera can be rendered with any look.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# Surface classes (LSUN's five layout surfaces; value = LSUN's 1-based semantic label - 1).
FRONT, LEFT, RIGHT, FLOOR, CEILING = 0, 1, 2, 3, 4
NUM_CLASSES = 5
CLASS_NAMES = ("front wall", "left wall", "right wall", "floor", "ceiling")

ROOM_KINDS = ("bedroom", "living room", "kitchen", "dining room", "office", "empty room")


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RoomGeometry:
    """A box room and a camera inside it. Lengths in metres, angles in degrees.

    ``fov`` is the full field of view across the (square) image, horizontally and vertically.
    ``yaw`` > 0 turns the camera to the right, ``pitch`` > 0 tilts it up.
    """

    width: float
    depth: float
    height: float
    camera_x: float
    camera_y: float
    camera_z: float
    yaw: float
    pitch: float
    fov: float

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera forward, right and up unit vectors (float64, shape (3,))."""
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        sy, cy, sp, cp = math.sin(yaw), math.cos(yaw), math.sin(pitch), math.cos(pitch)
        forward = np.array([sy * cp, sp, cy * cp])
        right = np.array([cy, 0.0, -sy])
        up = np.array([-sy * sp, cp, -cy * sp])
        return forward, right, up

    @property
    def camera(self) -> np.ndarray:
        return np.array([self.camera_x, self.camera_y, self.camera_z])

    def min_forward_component(self) -> float:
        """Smallest d_z over the image corners (d_z is linear in the screen coordinates)."""
        forward, right, up = self.basis()
        t = math.tan(math.radians(self.fov) / 2)
        return min(forward[2] + t * (a * right[2] - b * up[2]) for a in (-1, 1) for b in (-1, 1))


@lru_cache(maxsize=16)
def _screen_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Screen coordinates of pixel centres in [-1, 1]: s_x (1, S) and s_y (S, 1), s_y down."""
    s = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0).astype(np.float32)
    return s[None, :], s[:, None]


def camera_rays(geometry: RoomGeometry, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unnormalised ray directions (three float32 (S, S) arrays), one ray per pixel centre."""
    forward, right, up = geometry.basis()
    t = math.tan(math.radians(geometry.fov) / 2)
    sx, sy = _screen_grid(size)
    comps = []
    for k in range(3):
        comp = np.broadcast_to((forward[k] + t * right[k] * sx) - (t * up[k]) * sy, (size, size))
        comp = comp.astype(np.float32)
        comp[np.abs(comp) < 1e-7] = 1e-7  # exact zeros would give inf * 0 in the slab tests
        comps.append(comp)
    return comps[0], comps[1], comps[2]


def cast_room(geometry: RoomGeometry, dx: np.ndarray, dy: np.ndarray, dz: np.ndarray):
    """Intersect rays with the room box. Returns (t, surface class) arrays shaped like dx."""
    g = geometry
    tx = np.where(dx > 0, np.float32(g.width - g.camera_x), np.float32(-g.camera_x)) / dx
    ty = np.where(dy > 0, np.float32(g.height - g.camera_y), np.float32(-g.camera_y)) / dy
    tz = np.float32(g.depth - g.camera_z) / dz
    side = np.where(dx < 0, LEFT, RIGHT)
    flat = np.where(dy < 0, FLOOR, CEILING)
    cls = np.where(tx <= ty, side, flat)
    t_side = np.minimum(tx, ty)
    front = tz <= t_side
    cls = np.where(front, FRONT, cls).astype(np.uint8)
    return np.where(front, tz, t_side), cls


def layout_map(geometry: RoomGeometry, size: int) -> np.ndarray:
    """uint8 (size, size) surface class of the empty room at every pixel centre (exact)."""
    dx, dy, dz = camera_rays(geometry, size)
    return cast_room(geometry, dx, dy, dz)[1]


def sample_geometry(rng: np.random.Generator, label_size: int = 32) -> tuple[RoomGeometry, str]:
    """Draw a room and a camera. Returns (geometry, shot), shot naming the kind of view.

    Shots make clusters in layout space (wide views see all five surfaces, corner views see
    two walls, tilted views lose the ceiling or the floor, narrow views see few surfaces);
    inside each shot every parameter is continuous, which gives gradation.
    Rejection keeps the front wall visible and every ray pointing forward.
    """
    shots = ("wide", "corner", "down", "up", "narrow")
    shot = shots[rng.choice(len(shots), p=[0.28, 0.24, 0.16, 0.14, 0.18])]
    for _ in range(200):
        width, depth, height = rng.uniform(3.0, 7.0), rng.uniform(3.5, 8.5), rng.uniform(2.4, 3.4)
        cam_y = rng.uniform(1.0, min(1.9, height - 0.45))
        cam_z = rng.uniform(0.12, 0.45) * depth
        cam_x = rng.uniform(0.25, 0.75) * width
        if shot == "wide":
            fov, pitch, yaw = rng.uniform(64, 86), rng.normal(-3, 5), rng.uniform(-9, 9)
            cam_x = rng.uniform(0.35, 0.65) * width
            cam_z = rng.uniform(0.03, 0.3) * depth
        elif shot == "corner":
            fov, pitch = rng.uniform(48, 72), rng.uniform(-14, 12)
            yaw = rng.choice([-1, 1]) * rng.uniform(20, 38)
            cam_x = rng.uniform(0.3, 0.7) * width
        elif shot in ("down", "up"):
            fov, yaw = rng.uniform(52, 78), rng.uniform(-16, 16)
            pitch = rng.uniform(-32, -12) if shot == "down" else rng.uniform(10, 28)
            cam_z = rng.uniform(0.03, 0.4) * depth
        else:  # narrow
            fov, pitch, yaw = rng.uniform(36, 52), rng.uniform(-14, 14), rng.uniform(-16, 16)
            cam_z = rng.uniform(0.05, 0.3) * depth
        geometry = RoomGeometry(
            float(width), float(depth), float(height), float(cam_x), float(cam_y), float(cam_z),
            float(yaw), float(pitch), float(fov),
        )
        if geometry.min_forward_component() < 0.05:
            continue
        present = np.unique(layout_map(geometry, label_size))
        if FRONT not in present or len(present) < 2:  # the far wall, and more than a bare wall
            continue
        return geometry, shot
    raise RuntimeError("could not sample a valid room geometry")  # never reached in practice


# --------------------------------------------------------------------------------------
# Appearance
# --------------------------------------------------------------------------------------
Color = tuple[float, float, float]


@dataclass(frozen=True)
class SurfaceStyle:
    """A procedural material. kind: floor (wood, tile, checker, carpet, stone), wall (paint,
    stripes, dots, brick, wainscot, tile), ceiling (paint, panels, beams).
    colors: two or three RGB colours in [0, 1]; scale: the pattern's period in metres."""

    kind: str
    colors: tuple[Color, ...]
    scale: float = 0.2
    along_x: bool = True  # wood planks / stripes orientation where it applies


@dataclass(frozen=True)
class WallItem:
    """A window, door, picture, radiator or wall TV: part of the wall, not a layout class.
    ``center`` is a fraction along the wall; width and vertical extent in metres."""

    wall: int  # FRONT, LEFT or RIGHT
    kind: str
    center: float
    width: float
    bottom: float
    top: float
    colors: tuple[Color, ...]


@dataclass(frozen=True)
class Furniture:
    """A piece of furniture made of boxes, anchored to a wall (back against it) or free
    standing ('center'). ``position`` is a fraction along the wall (or of the floor)."""

    kind: str
    anchor: str  # "front", "left", "right" or "center"
    position: float
    size: tuple[float, float, float]  # along the wall, away from the wall, height
    colors: tuple[Color, ...]


@dataclass(frozen=True)
class RoomAppearance:
    """Everything about the look of a room, independent of its geometry."""

    room: str
    floor: SurfaceStyle
    walls: SurfaceStyle
    front_wall: SurfaceStyle  # accent wall (often the same as walls)
    ceiling: SurfaceStyle
    baseboard: Color
    light_position: tuple[float, float]  # (x, z) as fractions of width, depth
    light_drop: float  # metres below the ceiling
    light_power: float
    light_color: Color
    ambient: float
    exposure: float
    wall_items: tuple[WallItem, ...] = ()
    furniture: tuple[Furniture, ...] = ()
    rug: tuple | None = None  # (x frac, z frac, width, depth, colors) on the floor
    seed: int = 0


def _hsv(h: float, s: float, v: float) -> Color:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]


def _jitter(rng, c: Color, amount: float = 0.06) -> Color:
    return tuple(float(np.clip(x + rng.uniform(-amount, amount), 0.02, 0.98)) for x in c)


def _wall_color(rng) -> Color:
    kind = rng.random()
    if kind < 0.45:  # off-whites and greys
        v = rng.uniform(0.72, 0.93)
        return _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.02, 0.12), v)
    if kind < 0.85:  # muted pastels
        return _hsv(rng.random(), rng.uniform(0.12, 0.35), rng.uniform(0.6, 0.88))
    return _hsv(rng.random(), rng.uniform(0.3, 0.55), rng.uniform(0.38, 0.6))  # deep accent


def _wood_color(rng) -> Color:
    return _hsv(rng.uniform(0.05, 0.1), rng.uniform(0.35, 0.7), rng.uniform(0.3, 0.75))


def _fabric_color(rng) -> Color:
    if rng.random() < 0.4:
        return _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.2), rng.uniform(0.35, 0.85))
    return _hsv(rng.random(), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.75))


def _floor_style(rng, room: str) -> SurfaceStyle:
    weights = {
        "bedroom": {"wood": 0.45, "carpet": 0.4, "tile": 0.15},
        "living room": {"wood": 0.55, "carpet": 0.25, "stone": 0.2},
        "kitchen": {"tile": 0.45, "checker": 0.25, "wood": 0.15, "stone": 0.15},
        "dining room": {"wood": 0.6, "tile": 0.2, "stone": 0.2},
        "office": {"carpet": 0.6, "stone": 0.25, "wood": 0.15},
        "empty room": {"wood": 0.4, "tile": 0.2, "carpet": 0.2, "stone": 0.2},
    }[room]
    kinds = list(weights)
    kind = kinds[rng.choice(len(kinds), p=list(weights.values()))]
    if kind == "wood":
        base = _wood_color(rng)
        return SurfaceStyle("wood", (base, _jitter(rng, base, 0.08)), float(rng.uniform(0.12, 0.22)), bool(rng.random() < 0.5))
    if kind == "carpet":
        return SurfaceStyle("carpet", (_fabric_color(rng),), 0.02)
    if kind == "checker":
        a = _hsv(0.1, 0.05, rng.uniform(0.8, 0.95))
        b = _hsv(rng.random(), rng.uniform(0, 0.4), rng.uniform(0.1, 0.35))
        return SurfaceStyle("checker", (a, b, (0.5, 0.5, 0.5)), float(rng.uniform(0.25, 0.4)))
    if kind == "stone":
        base = _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.05, 0.2), rng.uniform(0.45, 0.8))
        return SurfaceStyle("tile", (base, _jitter(rng, base, 0.05), (0.35, 0.35, 0.35)), float(rng.uniform(0.5, 0.8)))
    base = _hsv(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.55, 0.9))
    return SurfaceStyle("tile", (base, _jitter(rng, base, 0.04), (0.85, 0.85, 0.82)), float(rng.uniform(0.25, 0.45)))


def _wall_style(rng, room: str) -> SurfaceStyle:
    kinds = ["paint", "stripes", "dots", "brick", "wainscot", "tile"]
    p = [0.38, 0.16, 0.1, 0.08, 0.16, 0.12 if room == "kitchen" else 0.0]
    p = np.array(p) / sum(p)
    kind = kinds[rng.choice(len(kinds), p=p)]
    base = _wall_color(rng)
    if kind == "paint":
        return SurfaceStyle("paint", (base,))
    if kind == "stripes":
        other = _jitter(rng, base, 0.12) if rng.random() < 0.6 else _wall_color(rng)
        return SurfaceStyle("stripes", (base, other), float(rng.uniform(0.08, 0.35)))
    if kind == "dots":
        other = _hsv(rng.random(), rng.uniform(0.2, 0.5), rng.uniform(0.3, 0.7))
        return SurfaceStyle("dots", (base, other), float(rng.uniform(0.12, 0.25)))
    if kind == "brick":
        brick = _hsv(rng.uniform(0.0, 0.07), rng.uniform(0.4, 0.65), rng.uniform(0.4, 0.65))
        if rng.random() < 0.3:  # painted brick
            brick = _jitter(rng, (0.88, 0.86, 0.82), 0.04)
        return SurfaceStyle("brick", (brick, (0.78, 0.76, 0.72)), 0.075)
    if kind == "wainscot":
        lower = _wall_color(rng) if rng.random() < 0.5 else _jitter(rng, (0.9, 0.9, 0.88), 0.04)
        return SurfaceStyle("wainscot", (base, lower), float(rng.uniform(0.8, 1.1)))
    tile = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.7, 0.95))
    return SurfaceStyle("tile", (tile, _jitter(rng, tile, 0.03), (0.9, 0.9, 0.88)), float(rng.uniform(0.1, 0.2)))


def _ceiling_style(rng, room: str) -> SurfaceStyle:
    white = _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.06), rng.uniform(0.85, 0.97))
    r = rng.random()
    if room == "office" and r < 0.7:
        return SurfaceStyle("panels", (white, (0.6, 0.6, 0.6)), 0.6)
    if r < 0.12:
        return SurfaceStyle("beams", (white, _wood_color(rng)), float(rng.uniform(0.7, 1.1)))
    return SurfaceStyle("paint", (white,))


_FURNITURE_SETS = {
    "bedroom": [("bed", 1.0), ("nightstand", 0.8), ("nightstand", 0.5), ("wardrobe", 0.6), ("dresser", 0.4), ("plant", 0.3)],
    "living room": [("sofa", 1.0), ("coffee_table", 0.8), ("tv_unit", 0.7), ("bookshelf", 0.5), ("armchair", 0.4), ("plant", 0.5)],
    "kitchen": [("counter", 1.0), ("fridge", 0.7), ("counter", 0.4), ("dining_table", 0.5)],
    "dining room": [("dining_table", 1.0), ("sideboard", 0.7), ("plant", 0.4), ("bookshelf", 0.3)],
    "office": [("desk", 1.0), ("desk", 0.6), ("cabinet", 0.7), ("bookshelf", 0.6), ("plant", 0.3)],
    "empty room": [],
}

_FURNITURE_SIZES = {  # along wall, away from wall, height (ranges)
    "bed": ((1.4, 1.9), (1.9, 2.1), (0.9, 1.2)),
    "nightstand": ((0.4, 0.55), (0.35, 0.45), (0.5, 0.6)),
    "wardrobe": ((1.0, 2.0), (0.55, 0.65), (1.9, 2.2)),
    "dresser": ((0.9, 1.4), (0.45, 0.55), (0.75, 0.95)),
    "plant": ((0.35, 0.5), (0.35, 0.5), (0.8, 1.5)),
    "sofa": ((1.8, 2.5), (0.85, 1.0), (0.8, 0.9)),
    "armchair": ((0.8, 0.95), (0.8, 0.9), (0.8, 0.95)),
    "coffee_table": ((0.9, 1.3), (0.5, 0.7), (0.38, 0.45)),
    "tv_unit": ((1.4, 2.0), (0.4, 0.5), (0.45, 0.55)),
    "bookshelf": ((0.8, 1.4), (0.3, 0.38), (1.7, 2.1)),
    "counter": ((1.8, 3.6), (0.6, 0.65), (0.88, 0.92)),
    "fridge": ((0.65, 0.8), (0.65, 0.72), (1.75, 1.95)),
    "dining_table": ((1.2, 1.9), (0.8, 1.0), (0.72, 0.77)),
    "sideboard": ((1.2, 1.9), (0.45, 0.5), (0.75, 0.9)),
    "desk": ((1.2, 1.6), (0.65, 0.8), (0.72, 0.76)),
    "cabinet": ((0.5, 0.9), (0.45, 0.6), (1.0, 1.4)),
}
_CENTER_KINDS = {"coffee_table", "dining_table"}


def _furniture_colors(rng, kind: str) -> tuple[Color, ...]:
    wood = _wood_color(rng)
    paint = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.92))
    fabric = _fabric_color(rng)
    body = wood if rng.random() < 0.55 else paint
    if kind in ("bed",):
        return (body, _jitter(rng, (0.92, 0.92, 0.9), 0.05), fabric)
    if kind in ("sofa", "armchair"):
        return (fabric, _jitter(rng, fabric, 0.06), (0.15, 0.12, 0.1))
    if kind == "plant":
        return ((0.55, 0.35, 0.25) if rng.random() < 0.5 else (0.85, 0.85, 0.82), _hsv(rng.uniform(0.22, 0.38), 0.6, rng.uniform(0.3, 0.5)))
    if kind == "fridge":
        return (_jitter(rng, (0.88, 0.88, 0.88) if rng.random() < 0.6 else (0.6, 0.62, 0.64), 0.03),)
    if kind == "counter":
        top = _hsv(rng.random(), rng.uniform(0, 0.15), rng.uniform(0.15, 0.9))
        return (body, top)
    if kind == "tv_unit":
        return (body, (0.05, 0.05, 0.06))
    if kind == "bookshelf":
        return (body,)
    return (body, _jitter(rng, body, 0.08))


def _wall_items(rng, room: str) -> tuple[WallItem, ...]:
    items = []
    walls = [FRONT, LEFT, RIGHT]
    frame_white = _jitter(rng, (0.93, 0.93, 0.9), 0.03)
    # Windows: 0-2, usually on the front or a side wall.
    for _ in range(rng.choice(3, p=[0.25, 0.5, 0.25])):
        width = rng.uniform(0.8, 1.8)
        bottom = rng.uniform(0.7, 1.0)
        top = rng.uniform(1.9, 2.3)
        frame = frame_white if rng.random() < 0.7 else _wood_color(rng)
        sky = _hsv(rng.uniform(0.53, 0.62), rng.uniform(0.2, 0.5), rng.uniform(0.85, 1.0))
        items.append(WallItem(int(rng.choice(walls)), "window", float(rng.uniform(0.2, 0.8)), float(width), float(bottom), float(top), (frame, sky)))
    if rng.random() < 0.55:
        items.append(WallItem(int(rng.choice(walls)), "door", float(rng.uniform(0.1, 0.9)), float(rng.uniform(0.8, 0.95)), 0.0, float(rng.uniform(2.0, 2.15)),
                              (frame_white, _wood_color(rng) if rng.random() < 0.6 else frame_white)))
    for _ in range(rng.choice(4, p=[0.25, 0.35, 0.25, 0.15])):
        width = rng.uniform(0.35, 1.1)
        height = width * rng.uniform(0.6, 1.4)
        bottom = rng.uniform(1.2, 1.6)
        frame = (0.1, 0.08, 0.06) if rng.random() < 0.4 else _wood_color(rng) if rng.random() < 0.5 else (0.9, 0.88, 0.8)
        colors = (frame,) + tuple(_hsv(rng.random(), rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.9)) for _ in range(3))
        items.append(WallItem(int(rng.choice(walls)), "picture", float(rng.uniform(0.15, 0.85)), float(width), float(bottom), float(bottom + height), colors))
    if rng.random() < 0.3:
        items.append(WallItem(int(rng.choice(walls)), "radiator", float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.6, 1.2)), 0.12, float(rng.uniform(0.55, 0.7)), (frame_white,)))
    if room == "living room" and rng.random() < 0.3:
        items.append(WallItem(int(rng.choice(walls)), "tv", float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.9, 1.4)), 1.0, 1.7, ((0.04, 0.04, 0.05),)))
    return tuple(items)


def sample_appearance(rng: np.random.Generator) -> RoomAppearance:
    """Draw a room kind with its materials, lights, wall items and furniture."""
    room = ROOM_KINDS[rng.choice(len(ROOM_KINDS), p=[0.22, 0.22, 0.16, 0.14, 0.14, 0.12])]
    walls = _wall_style(rng, room)
    front = walls if rng.random() < 0.75 else _wall_style(rng, room)
    furniture = []
    for kind, prob in _FURNITURE_SETS[room]:
        if rng.random() >= prob:
            continue
        sizes = _FURNITURE_SIZES[kind]
        size = tuple(float(rng.uniform(*r)) for r in sizes)
        anchor = "center" if kind in _CENTER_KINDS else ("front", "left", "right")[rng.choice(3, p=[0.45, 0.275, 0.275])]
        furniture.append(Furniture(kind, anchor, float(rng.uniform(0.1, 0.9)), size, _furniture_colors(rng, kind)))
    rug = None
    if room in ("bedroom", "living room", "dining room") and rng.random() < 0.5:
        rug_colors = (_fabric_color(rng), _fabric_color(rng))
        rug = (float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.5, 0.8)), float(rng.uniform(1.4, 2.6)), float(rng.uniform(1.2, 2.0)), rug_colors)
    warm = rng.uniform(0.0, 1.0)
    return RoomAppearance(
        room=room,
        floor=_floor_style(rng, room),
        walls=walls,
        front_wall=front,
        ceiling=_ceiling_style(rng, room),
        baseboard=_jitter(rng, (0.92, 0.92, 0.9), 0.03) if rng.random() < 0.6 else _wood_color(rng),
        light_position=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.35, 0.75))),
        light_drop=float(rng.uniform(0.3, 0.7)),
        light_power=float(rng.uniform(0.55, 0.9)),
        light_color=(1.0, 0.93 + 0.05 * (1 - warm), 0.8 + 0.18 * (1 - warm)),
        ambient=float(rng.uniform(0.3, 0.45)),
        exposure=float(rng.uniform(0.9, 1.15)),
        wall_items=_wall_items(rng, room),
        furniture=tuple(furniture),
        rug=rug,
        seed=int(rng.integers(2**31)),
    )


# --------------------------------------------------------------------------------------
# Procedural texture helpers (all on flat float32 arrays of surface coordinates in metres)
# --------------------------------------------------------------------------------------
def _hash(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic pseudo-random float32 in [0, 1) per integer cell (i, j)."""
    i = i.astype(np.int64).astype(np.uint32)  # via int64 so negative cells wrap instead of being undefined
    j = j.astype(np.int64).astype(np.uint32)
    h = i * np.uint32(374761393) + j * np.uint32(668265263) + np.uint32(salt * 2246822519 % 2**32)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    h = h ^ (h >> np.uint32(16))
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / 2**24)


def _line(coord: np.ndarray, period: float, half_width: float, footprint: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of lines of half width ``half_width`` at multiples of ``period``,
    box-filtered over the pixel footprint (metres) so thin lines fade instead of aliasing."""
    d = np.abs(coord / period - np.round(coord / period)) * period
    fp = np.clip(footprint, 1e-4, period)
    cover = np.minimum(d + fp * 0.5, half_width) - np.maximum(d - fp * 0.5, -half_width)
    return np.clip(cover / fp, 0.0, 1.0)


def _fade(footprint: np.ndarray, scale: float) -> np.ndarray:
    """1 for detail much larger than a pixel, 0 for detail smaller than a pixel."""
    return np.clip(1.5 - footprint / scale, 0.0, 1.0)


def _mix(a, b, w: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    return a + (b - a) * w[:, None]


def _tint(color, factor: np.ndarray) -> np.ndarray:
    return np.asarray(color, np.float32)[None, :] * factor[:, None]


def _surface_texture(style: SurfaceStyle, u: np.ndarray, v: np.ndarray, fp: np.ndarray, salt: int) -> np.ndarray:
    """Albedo (n, 3) of a material at surface coordinates (u, v) in metres."""
    c = style.colors
    kind = style.kind
    if kind == "paint":
        return _tint(c[0], 1.0 + 0.015 * np.sin(u * 3.1 + v * 1.7) * np.sin(v * 2.3 - u * 0.9))
    if kind == "wood":
        along, across = (u, v) if style.along_x else (v, u)
        pw = style.scale
        row = np.floor(across / pw)
        plank_len = pw * 7.0
        shifted = along + _hash(row, row, salt) * plank_len
        col = np.floor(shifted / plank_len)
        h = _hash(row, col, salt + 1)
        grain = np.sin(across * 90.0 + 4.0 * np.sin(along * 2.2 + h * 20.0)) * _fade(fp, 0.012)
        shade = 0.82 + 0.3 * h + 0.06 * grain
        albedo = _mix(c[0], c[1], h) * shade[:, None]
        seam = np.maximum(_line(across, pw, 0.003, fp), _line(shifted, plank_len, 0.003, fp))
        return albedo * (1.0 - 0.55 * seam)[:, None]
    if kind in ("tile", "checker"):
        ts = style.scale
        i, j = np.floor(u / ts), np.floor(v / ts)
        if kind == "checker":
            albedo = _mix(c[0], c[1], ((i + j) % 2).astype(np.float32))
        else:
            albedo = _mix(c[0], c[1], _hash(i, j, salt)) * (0.95 + 0.1 * _hash(j, i, salt + 3))[:, None]
        grout = np.maximum(_line(u, ts, 0.004, fp), _line(v, ts, 0.004, fp))
        return _mix(albedo, c[2], grout) if kind == "tile" else albedo * (1 - 0.3 * grout)[:, None]
    if kind == "carpet":
        cell = 0.015
        n = _hash(np.floor(u / cell), np.floor(v / cell), salt) - 0.5
        mottle = np.sin(u * 4.1 + np.sin(v * 3.3)) * np.sin(v * 3.7 - u * 1.3)
        return _tint(c[0], 1.0 + 0.14 * n * _fade(fp, cell) + 0.04 * mottle)
    if kind == "stripes":
        p = style.scale
        w = _line(u + p * 0.25, p, p * 0.25, fp)
        return _mix(c[0], c[1], w)
    if kind == "dots":
        p = style.scale
        row = np.floor(v / p)
        uu = u / p + 0.5 * (row % 2) - 0.5
        vv = v / p - 0.5
        d = np.hypot(uu - np.round(uu), vv - np.round(vv)) * p
        r = p * 0.14
        cover = np.clip((r - d) / np.maximum(fp, 1e-4) + 0.5, 0, 1)
        fade = _fade(fp, r)
        cover = cover * fade + (1 - fade) * 0.06
        return _mix(c[0], c[1], cover)
    if kind == "brick":
        bh = style.scale
        row = np.floor(v / bh)
        uu = u + 0.5 * 0.22 * (row % 2)
        col = np.floor(uu / 0.22)
        h = _hash(row, col, salt)
        albedo = _tint(c[0], 0.85 + 0.28 * h)
        mortar = np.maximum(_line(v, bh, 0.005, fp), _line(uu, 0.22, 0.005, fp))
        return _mix(albedo, c[1], mortar)
    if kind == "wainscot":
        rail = style.scale
        lower = v < rail
        panel = _line(u, 0.6, 0.008, fp) * lower
        albedo = _mix(c[0], c[1], lower.astype(np.float32))
        albedo = albedo * (1.0 - 0.25 * panel)[:, None]
        cap = _line(v - rail, 10.0, 0.02, fp)
        return albedo * (1.0 - 0.2 * cap)[:, None]
    if kind == "panels":
        grid = np.maximum(_line(u, style.scale, 0.012, fp), _line(v, style.scale * 2, 0.012, fp))
        return _mix(c[0], c[1], grid)
    if kind == "beams":
        beam = _line(v, style.scale, 0.08, fp)
        return _mix(c[0], c[1], beam)
    raise ValueError(f"unknown surface style {kind!r}")


# --------------------------------------------------------------------------------------
# Furniture as boxes
# --------------------------------------------------------------------------------------
# Box materials
M_PLAIN, M_WOOD, M_FABRIC, M_DRAWERS, M_DOORS, M_BOOKS, M_SCREEN, M_LEAVES = range(8)


def _furniture_boxes(kind: str, w: float, dp: float, h: float, colors):
    """Boxes of one piece in local coordinates: (a0, a1, b0, b1, y0, y1, color, material),
    a along the wall, b away from the wall (b = 0 against it)."""
    c = colors
    boxes = []
    add = boxes.append
    if kind == "bed":
        add((0, w, 0, 0.08, 0, h, c[0], M_WOOD))  # headboard
        add((0, w, 0.08, dp, 0, 0.32, c[0], M_WOOD))
        add((0.03, w - 0.03, 0.1, dp - 0.03, 0.32, 0.52, c[1], M_FABRIC))  # mattress
        add((0.0, w, 0.75, dp, 0.5, 0.58, c[2], M_FABRIC))  # duvet
        add((0.1, w / 2 - 0.05, 0.15, 0.55, 0.52, 0.66, c[1], M_FABRIC))
        add((w / 2 + 0.05, w - 0.1, 0.15, 0.55, 0.52, 0.66, c[1], M_FABRIC))
    elif kind in ("nightstand", "dresser", "sideboard"):
        add((0, w, 0, dp, 0.06, h, c[0], M_DRAWERS))
        add((0.03, w - 0.03, 0.03, dp - 0.03, 0, 0.06, (0.1, 0.1, 0.1), M_PLAIN))
    elif kind in ("wardrobe", "cabinet"):
        add((0, w, 0, dp, 0.05, h, c[0], M_DOORS))
        add((0.02, w - 0.02, 0.02, dp - 0.02, 0, 0.05, (0.1, 0.1, 0.1), M_PLAIN))
    elif kind == "plant":
        add((0.08 * w, 0.92 * w, 0.08 * dp, 0.92 * dp, 0, 0.35, c[0], M_PLAIN))
        add((0, w, 0, dp, 0.35, h, c[1], M_LEAVES))
    elif kind in ("sofa", "armchair"):
        arm = 0.18
        add((0.04, w - 0.04, 0.04, dp - 0.04, 0, 0.1, c[2], M_PLAIN))
        add((arm, w - arm, 0.22, dp, 0.1, 0.44, c[0], M_FABRIC))  # seat
        add((0, w, 0, 0.24, 0.1, h, c[1], M_FABRIC))  # back
        add((0, arm, 0, dp, 0.1, 0.62, c[1], M_FABRIC))
        add((w - arm, w, 0, dp, 0.1, 0.62, c[1], M_FABRIC))
    elif kind in ("coffee_table", "dining_table", "desk"):
        leg = 0.06
        add((0, w, 0, dp, h - 0.04, h, c[0], M_WOOD))
        for a0, b0 in ((0.03, 0.03), (w - 0.03 - leg, 0.03), (0.03, dp - 0.03 - leg), (w - 0.03 - leg, dp - 0.03 - leg)):
            add((a0, a0 + leg, b0, b0 + leg, 0, h - 0.04, c[1], M_PLAIN))
        if kind == "desk":
            add((w - 0.45, w - 0.04, 0.02, dp - 0.05, 0.1, h - 0.04, c[1], M_DRAWERS))
    elif kind == "tv_unit":
        add((0, w, 0, dp, 0.05, h, c[0], M_DRAWERS))
        tw = min(w * 0.8, 1.4)
        add(((w - tw) / 2, (w + tw) / 2, 0.15, 0.2, h + 0.05, h + 0.05 + tw * 0.58, c[1], M_SCREEN))
        add((w / 2 - 0.15, w / 2 + 0.15, 0.1, 0.28, h, h + 0.05, c[1], M_PLAIN))
    elif kind == "bookshelf":
        add((0, w, 0, dp, 0, h, c[0], M_BOOKS))
    elif kind == "counter":
        add((0, w, 0, dp - 0.05, 0.1, h - 0.04, c[0], M_DOORS))
        add((0, w, 0, dp - 0.1, 0, 0.1, (0.12, 0.12, 0.12), M_PLAIN))
        add((0, w, 0, dp + 0.02, h - 0.04, h, c[1], M_PLAIN))
        add((0, w, 0, 0.35, 1.45, 2.15, c[0], M_DOORS))  # wall cabinets
    elif kind == "fridge":
        add((0, w, 0, dp, 0.0, h, c[0], M_DOORS))
    return boxes


def _chairs(w: float, dp: float, color):
    """Chairs around a free-standing table (local coordinates of the table)."""
    out = []
    for a in np.linspace(0.25, w - 0.25, max(1, int(w / 0.65))):
        for b0, back in ((-0.5, -0.5), (dp + 0.05, dp + 0.45)):
            out.append((a - 0.22, a + 0.22, b0, b0 + 0.45, 0.42, 0.47, color, M_WOOD))
            out.append((a - 0.22, a + 0.22, back, back + 0.05, 0.47, 0.95, color, M_WOOD))
            for la in (a - 0.2, a + 0.16):
                for lb in (b0 + 0.02, b0 + 0.39):
                    out.append((la, la + 0.04, lb, lb + 0.04, 0, 0.42, color, M_WOOD))
    return out


@dataclass
class _Boxes:
    lo: np.ndarray  # (K, 3)
    hi: np.ndarray  # (K, 3)
    color: np.ndarray  # (K, 3)
    material: np.ndarray  # (K,)
    front_axis: np.ndarray  # (K,) axis of the face that looks into the room (0 x, 2 z)
    footprints: list = field(default_factory=list)  # (x0, x1, z0, z1) of floor-standing pieces


def realize_furniture(geometry: RoomGeometry, appearance: RoomAppearance) -> _Boxes:
    """Place the appearance's furniture in this room: world boxes, never over the camera,
    never overlapping each other (pieces that do not fit are left out)."""
    g = geometry
    rng = np.random.default_rng(appearance.seed)
    placed: list[tuple[float, float, float, float]] = []
    lo, hi, col, mat, fax = [], [], [], [], []
    keep_clear = (g.camera_x - 0.6, g.camera_x + 0.6, -1.0, g.camera_z + 0.9)
    for piece in appearance.furniture:
        w, dp, h = piece.size
        h = min(h, g.height - 0.15)
        for attempt in range(4):
            pos = piece.position if attempt == 0 else rng.uniform(0.05, 0.95)
            if piece.anchor == "center":
                x0 = 0.8 + pos * max(g.width - 1.6 - w, 0.0)
                z0 = g.camera_z + 1.6 + rng.uniform(0, 1) * max(g.depth - g.camera_z - 2.4 - dp, 0.0)
                rect = (x0 - 0.55, x0 + w + 0.55, z0 - 0.55, z0 + dp + 0.55) if piece.kind == "dining_table" else (x0, x0 + w, z0, z0 + dp)
            elif piece.anchor == "front":
                x0 = pos * max(g.width - w, 0.0)
                rect = (x0, x0 + w, g.depth - dp, g.depth)
            else:
                z0 = g.camera_z + 0.9 + pos * max(g.depth - g.camera_z - 0.9 - w, 0.0)
                x_in = dp if piece.anchor == "left" else g.width - dp
                rect = (0.0, x_in, z0, z0 + w) if piece.anchor == "left" else (x_in, g.width, z0, z0 + w)
            fits = rect[1] - rect[0] <= g.width and rect[3] - rect[2] <= g.depth - g.camera_z - 0.9 and rect[0] >= -1e-6 and rect[1] <= g.width + 1e-6 and rect[3] <= g.depth + 1e-6
            clear = not _overlap(rect, keep_clear) and all(not _overlap(rect, other) for other in placed)
            if fits and clear:
                break
        else:
            continue
        placed.append(rect)
        local = _furniture_boxes(piece.kind, w, dp, h, piece.colors)
        if piece.kind == "dining_table":
            local = local + _chairs(w, dp, piece.colors[0])
        for a0, a1, b0, b1, y0, y1, color, material in local:
            if piece.anchor == "front":
                box = (x0 + a0, y0, g.depth - b1), (x0 + a1, y1, g.depth - b0)
                axis = 2
            elif piece.anchor == "left":
                box = (b0, y0, z0 + a0), (b1, y1, z0 + a1)
                axis = 0
            elif piece.anchor == "right":
                box = (g.width - b1, y0, z0 + a0), (g.width - b0, y1, z0 + a1)
                axis = 0
            else:
                box = (x0 + a0, y0, z0 + b0), (x0 + a1, y1, z0 + b1)
                axis = 2
            lo.append(box[0])
            hi.append(box[1])
            col.append(color)
            mat.append(material)
            fax.append(axis)
    n = len(lo)
    return _Boxes(
        lo=np.array(lo, np.float32).reshape(n, 3),
        hi=np.array(hi, np.float32).reshape(n, 3),
        color=np.array(col, np.float32).reshape(n, 3),
        material=np.array(mat, np.int64).reshape(n),
        front_axis=np.array(fax, np.int64).reshape(n),
        footprints=placed,
    )


def _overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def _screen_rects(geometry: RoomGeometry, boxes: _Boxes, size: int) -> list[tuple[int, int, int, int] | None]:
    """Pixel rectangle (r0, r1, c0, c1) that contains each box's projection, or None if off screen."""
    if len(boxes.lo) == 0:
        return []
    forward, right, up = geometry.basis()
    t = math.tan(math.radians(geometry.fov) / 2)
    sel = np.array([[i >> k & 1 for k in range(3)] for i in range(8)], bool)  # (8, 3)
    corners = np.where(sel[None], boxes.hi[:, None, :], boxes.lo[:, None, :]) - geometry.camera  # (K, 8, 3)
    zc = corners @ forward
    xc = corners @ right
    yc = corners @ up
    rects = []
    for k in range(len(boxes.lo)):
        if (zc[k] <= 0.05).any():
            rects.append((0, size, 0, size))
            continue
        sx = xc[k] / (zc[k] * t)
        sy = -yc[k] / (zc[k] * t)
        c0 = int(math.floor(((sx.min() + 1) * 0.5 * size) - 1))
        c1 = int(math.ceil(((sx.max() + 1) * 0.5 * size) + 1))
        r0 = int(math.floor(((sy.min() + 1) * 0.5 * size) - 1))
        r1 = int(math.ceil(((sy.max() + 1) * 0.5 * size) + 1))
        c0, c1, r0, r1 = max(c0, 0), min(c1, size), max(r0, 0), min(r1, size)
        rects.append((r0, r1, c0, c1) if c0 < c1 and r0 < r1 else None)
    return rects


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _vignette_and_noise(size: int) -> tuple[np.ndarray, np.ndarray]:
    sx, sy = _screen_grid(size)
    vignette = (1.0 - 0.22 * (sx**2 + sy**2) ** 1.3).reshape(-1).astype(np.float32)
    noise = np.random.default_rng(12345).normal(0, 0.012, (size * size + 997, 1)).astype(np.float32)
    return vignette, noise


_WALL_NORMALS = {FRONT: (0.0, 0.0, -1.0), LEFT: (1.0, 0.0, 0.0), RIGHT: (-1.0, 0.0, 0.0), FLOOR: (0.0, 1.0, 0.0), CEILING: (0.0, -1.0, 0.0)}


def _lighting(px, py, pz, nx, ny, nz, light: np.ndarray, appearance: RoomAppearance) -> np.ndarray:
    """Ambient + Lambert from a point light with smooth distance falloff, (n,) float32."""
    lx, ly, lz = light[0] - px, light[1] - py, light[2] - pz
    dist2 = lx * lx + ly * ly + lz * lz
    inv = 1.0 / np.sqrt(dist2)
    cos = np.maximum((lx * nx + ly * ny + lz * nz) * inv, 0.0)
    # A shaded lamp: full power downwards, a third of it upwards (keeps the ceiling from glaring).
    shade = 0.35 + 0.65 * np.clip(ly * inv, 0.0, 1.0)
    return appearance.ambient + appearance.light_power * 1.9 * cos * shade / (1.0 + dist2 * 0.3)


def _apply_wall_items(albedo, emissive, wall: int, u, v, fp, items, wall_len: float, salt: int):
    """Paint windows, doors, pictures, radiators and TVs onto one wall's pixels (in place)."""
    placed = []
    for k, item in enumerate(items):
        if item.wall != wall:
            continue
        half = min(item.width, wall_len - 0.2) / 2
        if half <= 0.1:
            continue
        cu = float(np.clip(item.center * wall_len, half + 0.05, wall_len - half - 0.05))
        rect = (cu - half - 0.05, cu + half + 0.05, item.bottom - 0.05, item.top + 0.05)
        if any(_overlap(rect, other) for other in placed):
            continue  # items on one wall never overlap
        placed.append(rect)
        du = np.abs(u - cu)
        inside = (du < half) & (v > item.bottom) & (v < item.top)
        if not inside.any():
            continue
        idx = np.flatnonzero(inside)
        uu, vv, f = u[idx] - (cu - half), v[idx] - item.bottom, fp[idx]
        w, h = 2 * half, item.top - item.bottom
        edge = np.minimum(np.minimum(uu, w - uu), np.minimum(vv, h - vv))
        c = item.colors
        if item.kind == "window":
            frame = edge < 0.06
            mull = (_line(uu - w / 2, 100.0, 0.025, f) + _line(vv - h * 0.6, 100.0, 0.025, f)).clip(0, 1)
            glass = _mix(np.array(c[1]) * 1.05, np.array(c[1]) * 0.8, np.clip(vv / h, 0, 1))
            horizon = vv < h * 0.3
            glass[horizon] = glass[horizon] * np.array([0.75, 0.9, 0.7], np.float32)
            col = _mix(glass, c[0], np.maximum(frame, mull))
            albedo[idx] = col
            emissive[idx] = np.where(frame | (mull > 0.5), 0.0, 0.55)
        elif item.kind == "door":
            frame = edge < 0.07
            panel = np.maximum(_line(vv, h * 0.5, 0.01, f), _line(uu - w / 2, 100.0, 0.01, f) * (vv > 0.2))
            col = _tint(c[1], 1.0 - 0.2 * panel)
            col[frame] = c[0]
            knob = ((uu - (w - 0.12)) ** 2 + (vv - 1.0) ** 2) < 0.035**2
            col[knob] = (0.7, 0.65, 0.4)
            albedo[idx] = col
        elif item.kind == "picture":
            frame = edge < 0.035 + 0.03 * (w > 0.6)
            # abstract art: three soft colour fields that differ per picture
            g1 = np.sin(uu * (3 + k) + vv * 2.0 + salt) * 0.5 + 0.5
            g2 = np.clip((vv / h) + 0.3 * np.sin(uu * 5.0 + k), 0, 1)
            col = _mix(_mix(np.tile(np.asarray(c[1], np.float32), (len(idx), 1)), c[2], g1), c[3], g2 * 0.6)
            col[frame] = c[0]
            albedo[idx] = col
        elif item.kind == "radiator":
            fins = _line(uu, 0.06, 0.008, f)
            albedo[idx] = _tint(c[0], 1.0 - 0.3 * fins)
        elif item.kind == "tv":
            albedo[idx] = _tint(c[0], 1.0 + 0.6 * np.clip(1 - (uu + vv) / (w + h) * 2.0, 0, 1))


def _trace(geometry: RoomGeometry, appearance: RoomAppearance, size: int):
    """Cast one ray per pixel into the room and its furniture.

    Returns ray directions (dx, dy, dz), hit distance t, room surface class (of the empty
    room), the furniture box hit (-1 none), the hit face's axis, and the placed boxes.
    """
    g = geometry
    S = size
    dx, dy, dz = camera_rays(g, S)
    t_room, cls = cast_room(g, dx, dy, dz)
    t_best = t_room.copy()
    hit = np.full((S, S), -1, np.int32)
    face = np.zeros((S, S), np.int8)
    cam = g.camera.astype(np.float32)
    boxes = realize_furniture(g, appearance)
    inv = (1.0 / dx, 1.0 / dy, 1.0 / dz)
    for k, rect in enumerate(_screen_rects(g, boxes, S)):
        if rect is None:
            continue
        r0, r1, c0, c1 = rect
        tmins, tmaxs = [], []
        for a in range(3):
            ia = inv[a][r0:r1, c0:c1]
            t1 = (boxes.lo[k, a] - cam[a]) * ia
            t2 = (boxes.hi[k, a] - cam[a]) * ia
            tmins.append(np.minimum(t1, t2))
            tmaxs.append(np.maximum(t1, t2))
        tnear = np.maximum(np.maximum(tmins[0], tmins[1]), tmins[2])
        tfar = np.minimum(np.minimum(tmaxs[0], tmaxs[1]), tmaxs[2])
        tb = t_best[r0:r1, c0:c1]
        m = (tnear <= tfar) & (tnear > 1e-3) & (tnear < tb)
        if not m.any():
            continue
        axis = np.where(tmins[0] >= np.maximum(tmins[1], tmins[2]), 0, np.where(tmins[1] >= tmins[2], 1, 2))
        tb[m] = tnear[m]
        hit[r0:r1, c0:c1][m] = k
        face[r0:r1, c0:c1][m] = axis[m]
    return dx, dy, dz, t_best, cls, hit, face, boxes


def surface_map(geometry: RoomGeometry, appearance: RoomAppearance, size: int) -> np.ndarray:
    """int8 (size, size): the room surface class seen at each pixel, -1 where furniture is."""
    _, _, _, _, cls, hit, _, _ = _trace(geometry, appearance, size)
    return np.where(hit >= 0, -1, cls.astype(np.int8)).astype(np.int8)


def render(geometry: RoomGeometry, appearance: RoomAppearance, size: int) -> np.ndarray:
    """Ray-cast the room seen by the camera: uint8 (size, size, 3) RGB image.

    Furniture occludes the room; the layout (see ``layout_map``) is unaffected by it.
    """
    g = geometry
    S = size
    dx, dy, dz, t_best, cls, hit, face, boxes = _trace(g, appearance, S)
    cam = g.camera.astype(np.float32)

    # Flat views for per-surface shading.
    fdx, fdy, fdz = dx.reshape(-1), dy.reshape(-1), dz.reshape(-1)
    tf = t_best.reshape(-1)
    px, py, pz = cam[0] + tf * fdx, cam[1] + tf * fdy, cam[2] + tf * fdz
    d2 = fdx * fdx + fdy * fdy + fdz * fdz
    pixel_angle = 2.0 * math.tan(math.radians(g.fov) / 2) / S
    light = np.array([appearance.light_position[0] * g.width, g.height - appearance.light_drop, appearance.light_position[1] * g.depth], np.float32)
    image = np.zeros((S * S, 3), np.float32)
    hit_f = hit.reshape(-1)
    cls_f = cls.reshape(-1)
    room_visible = hit_f < 0

    dims = {FRONT: g.width, LEFT: g.depth, RIGHT: g.depth, FLOOR: g.width, CEILING: g.width}
    for surface in range(NUM_CLASSES):
        idx = np.flatnonzero(room_visible & (cls_f == surface))
        if idx.size == 0:
            continue
        x, y, z = px[idx], py[idx], pz[idx]
        normal = _WALL_NORMALS[surface]
        dn = np.abs((fdx, fdy, fdz)[int(np.argmax(np.abs(normal)))][idx])
        fp = np.minimum(tf[idx] * d2[idx] * pixel_angle / np.maximum(dn, 0.05), 0.5)
        if surface == FLOOR:
            u, v = x, z
            style = appearance.floor
        elif surface == CEILING:
            u, v = x, z
            style = appearance.ceiling
        else:
            u = x if surface == FRONT else (z if surface == LEFT else g.depth - z)
            v = y
            style = appearance.front_wall if surface == FRONT else appearance.walls
        albedo = _surface_texture(style, u, v, fp, salt=appearance.seed % 9973 + surface)
        emissive = np.zeros(idx.size, np.float32)
        if surface in (FRONT, LEFT, RIGHT):
            _apply_wall_items(albedo, emissive, surface, u, v, fp, appearance.wall_items, dims[surface], appearance.seed % 997)
            base = v < 0.1
            if base.any():
                albedo[base] = appearance.baseboard
        elif surface == FLOOR and appearance.rug is not None:
            rx, rz, rw, rd, rug_colors = appearance.rug
            cx0 = np.clip(rx * g.width, rw / 2, g.width - rw / 2) - rw / 2
            cz0 = np.clip(rz * g.depth, rd / 2, g.depth - rd / 2) - rd / 2
            ru, rv = x - cx0, z - cz0
            on = (ru > 0) & (ru < rw) & (rv > 0) & (rv < rd)
            if on.any():
                e = np.minimum(np.minimum(ru[on], rw - ru[on]), np.minimum(rv[on], rd - rv[on]))
                border = (e < 0.12) & (e > 0.05)
                noise = _hash(np.floor(ru[on] / 0.02), np.floor(rv[on] / 0.02), 7) - 0.5
                rug = _tint(rug_colors[0], 1.0 + 0.12 * noise * _fade(fp[on], 0.02))
                rug[border] = np.asarray(rug_colors[1], np.float32)
                albedo[on] = rug
        elif surface == CEILING:
            lamp = (x - light[0]) ** 2 + (z - light[2]) ** 2 < 0.22**2
            emissive[lamp] = 1.2
            albedo[lamp] = (1.0, 0.98, 0.92)
        shade = _lighting(x, y, z, normal[0], normal[1], normal[2], light, appearance)
        # Ambient occlusion: darker along the room's edges and corners.
        if surface in (FLOOR, CEILING):
            edges = (x, g.width - x, g.depth - z)
        elif surface == FRONT:
            edges = (x, g.width - x, y, g.height - y)
        else:
            edges = (g.depth - z, y, g.height - y)
        ao = np.ones(idx.size, np.float32)
        for e in edges:
            ao *= 1.0 - 0.35 * np.exp(-np.maximum(e, 0.0) * 4.0)
        if surface == FLOOR:
            for x0, x1, z0, z1 in boxes.footprints:
                ex = np.maximum(np.maximum(x0 - x, x - x1), 0.0)
                ez = np.maximum(np.maximum(z0 - z, z - z1), 0.0)
                ao *= 1.0 - 0.5 * np.exp(-np.sqrt(ex * ex + ez * ez) * 9.0)
        image[idx] = albedo * (shade * ao)[:, None] * np.asarray(appearance.light_color, np.float32) + emissive[:, None]

    fidx = np.flatnonzero(~room_visible)
    if fidx.size:
        ids = hit_f[fidx]
        axis = face.reshape(-1)[fidx].astype(np.int64)
        x, y, z = px[fidx], py[fidx], pz[fidx]
        dirs = (fdx[fidx], fdy[fidx], fdz[fidx])
        sign = np.where(np.choose(axis, dirs) > 0, -1.0, 1.0).astype(np.float32)
        nx = np.where(axis == 0, sign, 0.0)
        ny = np.where(axis == 1, sign, 0.0)
        nz = np.where(axis == 2, sign, 0.0)
        # Face coordinates relative to the box corner: (a horizontal, b vertical or depth).
        lo, hi = boxes.lo[ids], boxes.hi[ids]
        a = np.where(axis == 0, z - lo[:, 2], x - lo[:, 0])
        b = np.where(axis == 1, z - lo[:, 2], y - lo[:, 1])
        ext_a = np.where(axis == 0, hi[:, 2] - lo[:, 2], hi[:, 0] - lo[:, 0])
        ext_b = np.where(axis == 1, hi[:, 2] - lo[:, 2], hi[:, 1] - lo[:, 1])
        dn = np.abs(np.choose(axis, dirs))
        fp = np.minimum(tf[fidx] * d2[fidx] * pixel_angle / np.maximum(dn, 0.05), 0.5)
        albedo = boxes.color[ids].copy()
        material = boxes.material[ids]
        vertical_front = (axis == boxes.front_axis[ids]) & (axis != 1)
        h = _hash(np.floor(a / 0.02), np.floor(b / 0.02), 11) - 0.5
        factor = np.ones(fidx.size, np.float32)
        m = material == M_WOOD
        factor[m] += 0.06 * np.sin(a[m] * 40.0 + 3 * np.sin(b[m] * 7.0)) * _fade(fp[m], 0.02)
        m = (material == M_FABRIC) | (material == M_LEAVES)
        factor[m] += np.where(material[m] == M_LEAVES, 0.5, 0.08) * h[m] * _fade(fp[m], 0.02)
        m = (material == M_DRAWERS) & vertical_front
        factor[m] -= 0.35 * _line(b[m], 0.22, 0.006, fp[m])
        m = (material == M_DOORS) & vertical_front
        door_w = np.maximum(np.round(ext_a[m] / 0.5), 1.0)
        factor[m] -= 0.35 * _line(a[m], ext_a[m] / door_w, 0.005, fp[m])
        m = (material == M_BOOKS) & vertical_front
        if m.any():
            shelf = np.floor(b[m] / 0.36)
            book = np.floor(a[m] / 0.035)
            hb = _hash(book, shelf, 5)
            on_shelf = (b[m] - shelf * 0.36 > 0.03) & (b[m] - shelf * 0.36 < 0.06 + 0.24 * (0.5 + 0.5 * hb)) & (a[m] > 0.03) & (a[m] < ext_a[m] - 0.03)
            book_col = np.stack([0.2 + 0.6 * hb, 0.2 + 0.6 * _hash(book, shelf, 6), 0.2 + 0.5 * _hash(book, shelf, 8)], 1)
            sub = albedo[m]
            sub[on_shelf] = book_col[on_shelf]
            interior = (a[m] > 0.03) & (a[m] < ext_a[m] - 0.03) & ~on_shelf & (b[m] - shelf * 0.36 > 0.03)
            sub[interior] *= 0.35
            albedo[m] = sub
        m = material == M_SCREEN
        factor[m] += 0.8 * np.clip(0.5 - np.abs(a[m] - b[m] - 0.2), 0, 1) * vertical_front[m]
        # Edges of each box face read as bevels: a dark rim shows the shape.
        edge = np.minimum(np.minimum(a, ext_a - a), np.minimum(b, ext_b - b))
        factor *= 1.0 - 0.25 * np.clip(1.0 - edge / np.maximum(fp * 1.2, 0.012), 0, 1)
        shade = _lighting(x, y, z, nx, ny, nz, light, appearance) * (1.0 + 0.12 * (ny > 0))
        image[fidx] = albedo * (factor * shade)[:, None] * np.asarray(appearance.light_color, np.float32)

    vignette, noise = _vignette_and_noise(S)
    offset = appearance.seed % 997
    image *= (appearance.exposure * vignette)[:, None]
    image += noise[offset:offset + S * S]
    # Soft tone curve (filmic-ish) so lamps and windows roll off instead of clipping hard.
    image = image / (1.0 + 0.25 * image)
    image = np.clip(image * 1.25, 0.0, 1.0) ** (1 / 1.15)
    return (image * 255.0 + 0.5).astype(np.uint8).reshape(S, S, 3)
