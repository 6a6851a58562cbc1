"""Scenes of the caption task: sampling, backgrounds and rendering.

A scene is 1-4 object groups (each one category, 1-3 copies, a size word, a position word and,
for recolourable categories, a colour) on one background; at most 5 object instances. The
scene is plain data, so captions and image are both pure functions of it; ``Scene.layout_seed``
fixes the pixel-level jitter (exact offsets, background variation).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from dml_core.data.tasks._caption_sprites import CATEGORIES, CATEGORY_BY_NAME, COLOURS, SpriteSet

BACKGROUNDS = ("grass", "sky", "table", "beach", "street", "snow", "water", "room", "plain")
ROOM_PATTERNS = ("striped", "checkered", "dotted", "plain")
POSITIONS = ("left", "right", "top", "bottom", "centre")
SIZES = ("small", "large")
#: Group centres in unit image coordinates (x right, y down).
POSITION_XY = {
    "left": (0.26, 0.56),
    "right": (0.74, 0.56),
    "top": (0.5, 0.27),
    "bottom": (0.5, 0.76),
    "centre": (0.5, 0.52),
}
#: Position sets for scenes of 1-4 groups (shuffled before they are assigned to groups).
_LAYOUTS = {
    1: [("centre",), ("centre",), ("left",), ("right",), ("top",), ("bottom",)],
    2: [("left", "right"), ("top", "bottom"), ("centre", "top"), ("centre", "bottom"), ("left", "top"), ("right", "bottom")],
    3: [("left", "right", "top"), ("left", "right", "bottom"), ("top", "left", "right"), ("bottom", "left", "right")],
    4: [("left", "right", "top", "bottom")],
}
_MAX_INSTANCES = 5


@dataclass(frozen=True)
class ObjectGroup:
    """``count`` copies of one category, all with the same colour, size word and position."""

    category: str
    count: int = 1
    colour: str | None = None
    size: str = "small"
    position: str = "centre"

    def __post_init__(self) -> None:
        if self.category not in CATEGORY_BY_NAME:
            raise ValueError(f"unknown object category {self.category!r}")
        if not 1 <= self.count <= 3:
            raise ValueError(f"count must be 1-3, got {self.count}")
        if self.colour is not None and (self.colour not in COLOURS or not CATEGORY_BY_NAME[self.category].recolourable):
            raise ValueError(f"{self.category} cannot be coloured {self.colour!r}")
        if self.size not in SIZES or self.position not in POSITIONS:
            raise ValueError(f"bad size/position {self.size!r}/{self.position!r}")

    @property
    def colour_word(self) -> str | None:
        """The colour a caption may name: the chosen colour, else the category's natural one."""
        return self.colour or CATEGORY_BY_NAME[self.category].natural_colour


@dataclass(frozen=True)
class Scene:
    groups: tuple[ObjectGroup, ...]
    background: str = "plain"
    pattern: str = "plain"  # wallpaper of "room" backgrounds
    layout_seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= len(self.groups) <= 4 or sum(g.count for g in self.groups) > _MAX_INSTANCES:
            raise ValueError("a scene has 1-4 object groups and at most 5 objects")
        if len({g.category for g in self.groups}) != len(self.groups):
            raise ValueError("object groups of one scene must have distinct categories")
        if self.background not in BACKGROUNDS or self.pattern not in ROOM_PATTERNS:
            raise ValueError(f"bad background {self.background!r}/{self.pattern!r}")

    @property
    def n_objects(self) -> int:
        return sum(g.count for g in self.groups)

    @property
    def main(self) -> ObjectGroup:
        return self.groups[0]


# ------------------------------------------------------------------------------------ sampling
def _pick(rng: np.random.Generator, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene. Clusters come from the main object's category (and its super-category:
    other objects come from the same super-category half of the time); gradation from counts,
    colours, sizes, positions, companions and background."""
    n_groups = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.4, 0.24, 0.06]))
    main = _pick(rng, CATEGORIES)
    names = [main.name]
    while len(names) < n_groups:
        same_group = [c.name for c in CATEGORIES if c.group == main.group and c.name not in names]
        pool = same_group if same_group and rng.random() < 0.5 else [c.name for c in CATEGORIES if c.name not in names]
        names.append(_pick(rng, pool))
    layout = [str(p) for p in rng.permutation(_pick(rng, _LAYOUTS[n_groups]))]
    budget = _MAX_INSTANCES
    groups = []
    for k, name in enumerate(names):
        remaining_groups = n_groups - k - 1
        max_count = min(3, budget - remaining_groups)
        count = int(rng.choice([1, 2, 3], p=[0.55, 0.28, 0.17]))
        count = min(count, max_count)
        budget -= count
        category = CATEGORY_BY_NAME[name]
        colour = _pick(rng, COLOURS) if category.recolourable else None
        large_p = 0.6 if k == 0 else 0.3
        size = "large" if rng.random() < large_p else "small"
        groups.append(ObjectGroup(name, count, colour, size, layout[k]))
    if rng.random() < 0.7:
        background = _pick(rng, main.backgrounds)
    else:
        background = _pick(rng, BACKGROUNDS)
    pattern = _pick(rng, ROOM_PATTERNS) if background == "room" else "plain"
    return Scene(tuple(groups), background, pattern, int(rng.integers(2**31)))


# --------------------------------------------------------------------------------- backgrounds
def _vertical(h: int, w: int, top, bottom, start: float = 0.0, end: float = 1.0) -> np.ndarray:
    """(h, 1, 3) float32 vertical gradient from ``top`` to ``bottom`` between rows start..end
    (fractions of the height); broadcasts against (h, w, 3)."""
    t = np.clip((np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None] - start) / max(end - start, 1e-6), 0, 1)
    return (1 - t)[..., None] * np.asarray(top, np.float32) + t[..., None] * np.asarray(bottom, np.float32)


def _jitter(rng, colour, amount=18):
    return np.clip(np.asarray(colour, np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def _sky(rng, h, w):
    return _vertical(h, w, _jitter(rng, (95, 155, 230)), _jitter(rng, (200, 225, 250)))


def _clouds(rng, img: Image.Image, n: int, max_y: float) -> None:
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(n):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0.05, max_y) * h, rng.uniform(0.05, 0.1) * w
        for dx in (-1.2, 0.0, 1.2):
            rr = r * (1.0 if dx == 0 else 0.75)
            draw.ellipse((cx + dx * r - rr, cy - rr * 0.7, cx + dx * r + rr, cy + rr * 0.7), fill=(248, 250, 255))


def _ground(rng, h, w, horizon: float, near, far, noise: float) -> np.ndarray:
    return _vertical(h, w, far, near, horizon, 1.0) + noise * rng.standard_normal((h, w, 1), dtype=np.float32)


def paint_background(kind: str, pattern: str, size: int, rng: np.random.Generator) -> Image.Image:
    """An RGB background of the given kind; ``rng`` varies colours, horizon and pattern scale."""
    h = w = size
    rows = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    cols = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    horizon = rng.uniform(0.35, 0.5)
    below = rows >= horizon
    clouds = 0
    if kind == "sky":
        img = _sky(rng, h, w)
        clouds = int(rng.integers(2, 5))
    elif kind == "grass":
        grass = _ground(rng, h, w, horizon, _jitter(rng, (70, 150, 55)), _jitter(rng, (120, 185, 80)), 7)
        stripes = (np.floor(cols[..., 0] * rng.uniform(4, 8)) % 2)[..., None] * 10.0
        img = np.where(below, grass + stripes * (rows > horizon), _sky(rng, h, w))
        clouds = int(rng.integers(0, 3))
    elif kind == "table":
        wall = _vertical(h, w, _jitter(rng, (235, 220, 195), 25), _jitter(rng, (215, 200, 175), 25))
        wood = _jitter(rng, (160, 105, 60), 20)
        grain = np.sin(rows * rng.uniform(60, 110) + np.sin(cols * 9.0) * 1.5) * 12.0
        table = wood + grain + 4.0 * rng.standard_normal((h, w, 1), dtype=np.float32)
        edge = (rows > horizon) & (rows < horizon + 0.03)
        img = np.where(below, table, wall)
        img = np.where(edge, table * 0.7, img)
    elif kind == "beach":
        sea_line = horizon + rng.uniform(0.08, 0.14)
        sea = _vertical(h, w, _jitter(rng, (40, 110, 180)), _jitter(rng, (70, 160, 200)), horizon, sea_line)
        sand = _ground(rng, h, w, sea_line, _jitter(rng, (225, 200, 150)), _jitter(rng, (240, 220, 175)), 6)
        img = np.where(rows < horizon, _sky(rng, h, w), np.where(rows < sea_line, sea, sand))
        clouds = int(rng.integers(0, 3))
    elif kind == "street":
        sky = _sky(rng, h, w)
        n_buildings = int(rng.integers(3, 6))
        edges = np.sort(rng.uniform(0, 1, n_buildings - 1))
        heights = rng.uniform(0.1, horizon - 0.05, n_buildings)
        which = np.searchsorted(edges, cols[..., 0])
        roof = heights[which][..., None]
        grey = (110 + 60 * rng.random(n_buildings)).astype(np.float32)
        building = np.broadcast_to(grey[which][..., None], (h, w, 3)).astype(np.float32)
        windows = ((np.floor(rows * 30) % 3 == 1) & (np.floor(cols * 40) % 3 == 1)) * 40.0
        city = np.where(rows > roof, building + windows, sky)
        road = _ground(rng, h, w, horizon, (95, 95, 100), (120, 120, 125), 5)
        lane = (np.abs(rows - (horizon + 1) / 2) < 0.012) & (np.floor(cols * 8) % 2 == 0)
        kerb = (rows > horizon) & (rows < horizon + 0.05)
        img = np.where(below, road, city)
        img = np.where(kerb, 175.0, img)
        img = np.where(lane, 245.0, img)
    elif kind == "snow":
        sky = _vertical(h, w, _jitter(rng, (175, 195, 220)), _jitter(rng, (225, 232, 245)))
        snow = _ground(rng, h, w, horizon, (235, 240, 250), (210, 220, 238), 3)
        img = np.where(below, snow, sky)
        flakes = rng.random((h, w, 1), dtype=np.float32) < 0.01
        img = np.where(flakes & ~below, 255.0, img)
    elif kind == "water":
        img = _vertical(h, w, _jitter(rng, (70, 150, 210)), _jitter(rng, (20, 80, 150)))
        waves = np.sin(cols * rng.uniform(18, 30) + rows * rng.uniform(40, 70) * np.pi)
        img = img + (waves > 0.85) * 35.0
    elif kind == "room":
        wall_a, wall_b = _jitter(rng, (230, 215, 200), 30), _jitter(rng, (190, 175, 165), 30)
        period = rng.uniform(0.08, 0.16)
        if pattern == "striped":
            mask = (np.floor(cols / period) % 2 == 0) & np.ones_like(rows, bool)
        elif pattern == "checkered":
            mask = (np.floor(cols / period) + np.floor(rows / period)) % 2 == 0
        elif pattern == "dotted":
            u, v = (cols / period) % 1 - 0.5, (rows / period) % 1 - 0.5
            mask = u**2 + v**2 > 0.06
        else:
            mask = np.ones((h, w, 1), bool)
        wall = np.where(mask, wall_a, wall_b)
        floor_line = rng.uniform(0.62, 0.75)
        floor = _ground(rng, h, w, floor_line, _jitter(rng, (150, 110, 75), 25), _jitter(rng, (175, 135, 95), 25), 5)
        boards = (np.floor(cols * 6 + rows * 2) % 1 < 0.04) * -25.0
        img = np.where(rows > floor_line, floor + boards, wall)
    elif kind == "plain":
        a, b = _jitter(rng, (240, 240, 240), 25), _jitter(rng, (200, 210, 225), 40)
        t = np.clip(rows * rng.uniform(0.3, 1) + cols * rng.uniform(0, 0.7), 0, 1)
        img = (1 - t) * a + t * b
    else:
        raise ValueError(f"unknown background {kind!r}")
    image = Image.fromarray(np.clip(np.broadcast_to(img, (h, w, 3)), 0, 255).astype(np.uint8), "RGB")
    if clouds:
        _clouds(rng, image, clouds, 0.3 if kind != "sky" else 0.9)
    return image


# ----------------------------------------------------------------------------------- rendering
_SIZE_RANGE = {"small": (0.24, 0.29), "large": (0.40, 0.48)}
_CROWD = {1: 1.0, 2: 0.86, 3: 0.76, 4: 0.7}
_COUNT_SCALE = {1: 1.0, 2: 0.85, 3: 0.76}
#: Offsets of copies within a group, in units of the copy size.
_CLUSTER = {1: [(0.0, 0.0)], 2: [(-0.52, 0.05), (0.52, -0.05)], 3: [(-0.6, 0.28), (0.6, 0.28), (0.0, -0.45)]}
_GROUNDED_BACKGROUNDS = ("grass", "table", "beach", "street", "snow", "room")


@functools.lru_cache(maxsize=256)
def _shadow(width: int, height: int) -> Image.Image:
    shadow = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(shadow).ellipse((0, 0, width - 1, height - 1), fill=(0, 0, 0, 70))
    return shadow


def layout_instances(scene: Scene, size: int) -> list[tuple[ObjectGroup, int, int, int, bool]]:
    """(group, centre x px, centre y px, longest side px, flipped) for every object instance,
    in painting order (back to front: higher on the canvas first).

    Copies of a group cluster around the group's position; instances of different groups
    that overlap by more than a fifth of the smaller one are pushed apart along the line
    between their group positions, so the spatial words of the captions stay true.
    """
    rng = np.random.default_rng(scene.layout_seed)
    crowd = _CROWD[len(scene.groups)]
    items = []  # [group index, x, y, side, flip, group x, group y] in unit coordinates
    for index, group in enumerate(scene.groups):
        low, high = _SIZE_RANGE[group.size]
        side = rng.uniform(low, high) * crowd * _COUNT_SCALE[group.count]
        gx, gy = POSITION_XY[group.position]
        gx += rng.uniform(-0.04, 0.04)
        gy += rng.uniform(-0.04, 0.04)
        flip = bool(rng.random() < 0.5)
        for dx, dy in _CLUSTER[group.count]:
            x = gx + dx * side + rng.uniform(-0.02, 0.02)
            y = gy + dy * side + rng.uniform(-0.02, 0.02)
            items.append([index, x, y, side, flip, gx, gy])

    def clamp(item):
        half = item[3] / 2 + 0.01
        item[1], item[2] = float(np.clip(item[1], half, 1 - half)), float(np.clip(item[2], half, 1 - half))

    for item in items:
        clamp(item)
    for _ in range(4):
        moved = False
        for a in items:
            for b in items:
                if a[0] >= b[0]:
                    continue
                overlap_x = (a[3] + b[3]) / 2 - abs(a[1] - b[1])
                overlap_y = (a[3] + b[3]) / 2 - abs(a[2] - b[2])
                overlap = min(overlap_x, overlap_y)
                if overlap_x <= 0 or overlap_y <= 0 or overlap < 0.2 * min(a[3], b[3]):
                    continue
                direction = np.array([b[5] - a[5], b[6] - a[6]])
                direction /= max(float(np.linalg.norm(direction)), 1e-6)
                step = 0.5 * (overlap - 0.2 * min(a[3], b[3])) + 0.005
                a[1], a[2] = a[1] - step * direction[0], a[2] - step * direction[1]
                b[1], b[2] = b[1] + step * direction[0], b[2] + step * direction[1]
                clamp(a)
                clamp(b)
                moved = True
        if not moved:
            break
    instances = [
        (scene.groups[index], round(x * size), round(y * size), max(4, round(side * size)), flip)
        for index, x, y, side, flip, _, _ in items
    ]
    return sorted(instances, key=lambda item: item[2])


def render_scene(scene: Scene, size: int, sprites: SpriteSet) -> np.ndarray:
    """The scene as a uint8 (size, size, 3) RGB array; a pure function of (scene, size, source)."""
    rng = np.random.default_rng([scene.layout_seed, 1])
    canvas = paint_background(scene.background, scene.pattern, size, rng)
    grounded = scene.background in _GROUNDED_BACKGROUNDS
    for group, x, y, side, flip in layout_instances(scene, size):
        sprite = sprites.sized(group.category, group.colour, side, flip)
        left, top = x - sprite.width // 2, y - sprite.height // 2
        if grounded and not CATEGORY_BY_NAME[group.category].airborne:
            shadow = _shadow(max(2, int(sprite.width * 0.9)), max(2, sprite.height // 6))
            canvas.paste(shadow, (x - shadow.width // 2, top + sprite.height - shadow.height // 2), shadow)
        canvas.paste(sprite, (left, top), sprite)
    return np.asarray(canvas, dtype=np.uint8)
