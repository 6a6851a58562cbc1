"""Object sprites for the caption task: the category catalogue, colour emoji and drawn fallback.

Every category has a colour-emoji glyph (Noto Color Emoji) and a simple PIL drawing used when
the font file is absent. Pillow can render the CBDT emoji font only at size 109 with
``embedded_color=True``, so each glyph is rendered once, trimmed to its bounding box and
cached as an RGBA sprite; scenes resize the cached sprite. Recolourable categories get named
colours by replacing the hue of the pixels in the category's base hue band (outlines, windows
and leaves keep theirs).
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

EMOJI_FONT_PATH = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
#: Environment override for the emoji font file (e.g. a copy next to the app).
EMOJI_FONT_ENV = "DML_EMOJI_FONT"
_EMOJI_RENDER_SIZE = 109  # the only size the CBDT bitmap strike renders at

#: Named colours for recolourable categories: hue in degrees.
COLOUR_HUES = {"red": 0.0, "orange": 28.0, "yellow": 52.0, "green": 122.0, "blue": 218.0, "purple": 278.0}
COLOURS = tuple(COLOUR_HUES)


@dataclass(frozen=True)
class Category:
    """One nameable object category.

    nouns: (singular, plural) phrasings, the first is the canonical name.
    base_hue: hue (degrees) of the recolourable part, None if the category keeps its colours.
    natural_colour: colour word true of every instance (e.g. "yellow" banana), or None.
    verbs: participles that fit the object in a caption ("sitting", "parked", ...).
    backgrounds: background kinds this object is usually seen on (weights the scene sampler).
    airborne: drawn in the upper half more often (birds, planes, balloons).
    """

    name: str
    group: str
    emoji: str
    nouns: tuple[tuple[str, str], ...]
    verbs: tuple[str, ...]
    backgrounds: tuple[str, ...]
    base_hue: float | None = None
    natural_colour: str | None = None
    airborne: bool = False

    @property
    def recolourable(self) -> bool:
        return self.base_hue is not None


_ANIMAL_VERBS = ("sitting", "standing", "resting")
_OUTDOOR = ("grass", "beach", "snow", "street")
CATEGORIES: tuple[Category, ...] = (
    # animals
    Category("dog", "animal", "\U0001F415", (("dog", "dogs"), ("puppy", "puppies")), _ANIMAL_VERBS, ("grass", "beach", "snow", "room")),
    Category("cat", "animal", "\U0001F408", (("cat", "cats"), ("kitten", "kittens")), _ANIMAL_VERBS, ("room", "grass", "table", "snow")),
    Category("bird", "animal", "\U0001F426", (("bird", "birds"), ("songbird", "songbirds")), ("perched", "flying"), ("sky", "grass", "snow"), airborne=True),
    Category("fish", "animal", "\U0001F41F", (("fish", "fish"),), ("swimming",), ("water",), natural_colour="blue"),
    Category("rabbit", "animal", "\U0001F407", (("rabbit", "rabbits"), ("bunny", "bunnies")), _ANIMAL_VERBS, ("grass", "snow", "room")),
    Category("horse", "animal", "\U0001F40E", (("horse", "horses"), ("pony", "ponies")), ("running", "galloping", "standing"), ("grass", "beach", "snow")),
    # food
    Category("apple", "food", "\U0001F34E", (("apple", "apples"),), ("lying", "placed"), ("table", "plain", "grass"), natural_colour="red"),
    Category("banana", "food", "\U0001F34C", (("banana", "bananas"),), ("lying", "placed"), ("table", "plain"), natural_colour="yellow"),
    Category("pizza", "food", "\U0001F355", (("slice of pizza", "slices of pizza"), ("pizza slice", "pizza slices")), ("lying", "served"), ("table", "plain")),
    Category("cake", "food", "\U0001F370", (("piece of cake", "pieces of cake"), ("slice of cake", "slices of cake")), ("served", "placed"), ("table", "plain", "room")),
    Category("carrot", "food", "\U0001F955", (("carrot", "carrots"),), ("lying", "placed"), ("table", "grass", "plain"), natural_colour="orange"),
    Category("donut", "food", "\U0001F369", (("donut", "donuts"), ("doughnut", "doughnuts")), ("lying", "served"), ("table", "plain")),
    # vehicles
    Category("car", "vehicle", "\U0001F697", (("car", "cars"),), ("parked", "driving"), ("street", "snow", "grass"), base_hue=2.0),
    Category("bus", "vehicle", "\U0001F68C", (("bus", "buses"),), ("parked", "driving"), ("street",)),
    Category("bicycle", "vehicle", "\U0001F6B2", (("bicycle", "bicycles"), ("bike", "bikes")), ("parked", "leaning"), ("street", "grass", "beach")),
    Category("airplane", "vehicle", "\u2708\ufe0f", (("airplane", "airplanes"), ("plane", "planes"), ("jet", "jets")), ("flying",), ("sky",), airborne=True),
    Category("boat", "vehicle", "\u26F5", (("sailboat", "sailboats"), ("boat", "boats")), ("sailing", "floating"), ("water", "beach")),
    Category("train", "vehicle", "\U0001F682", (("train", "trains"), ("steam train", "steam trains")), ("driving", "passing"), ("street", "grass", "snow")),
    # plants
    Category("tree", "plant", "\U0001F333", (("tree", "trees"),), ("growing", "standing"), ("grass", "snow", "street"), natural_colour="green"),
    Category("flower", "plant", "\U0001F337", (("flower", "flowers"), ("tulip", "tulips")), ("growing", "blooming"), ("grass", "room", "table"), base_hue=340.0),
    Category("cactus", "plant", "\U0001F335", (("cactus", "cacti"),), ("growing", "standing"), ("beach", "room", "plain"), natural_colour="green"),
    Category("sunflower", "plant", "\U0001F33B", (("sunflower", "sunflowers"),), ("growing", "blooming"), ("grass", "room")),
    # objects
    Category("ball", "object", "\U0001F3C0", (("ball", "balls"), ("basketball", "basketballs")), ("lying", "bouncing"), ("grass", "room", "street", "beach"), base_hue=22.0),
    Category("balloon", "object", "\U0001F388", (("balloon", "balloons"),), ("floating",), ("sky", "room", "grass"), base_hue=2.0, airborne=True),
    Category("heart", "object", "\u2764\ufe0f", (("heart", "hearts"), ("heart shape", "heart shapes")), ("floating", "drawn"), ("plain", "room", "sky"), base_hue=358.0),
    Category("star", "object", "\u2B50", (("star", "stars"),), ("shining", "floating"), ("sky", "plain", "room"), base_hue=48.0, airborne=True),
    Category("teddy", "object", "\U0001F9F8", (("teddy bear", "teddy bears"), ("stuffed bear", "stuffed bears")), ("sitting",), ("room", "table", "grass")),
    Category("book", "object", "\U0001F4D5", (("book", "books"),), ("lying", "placed"), ("table", "room", "plain"), base_hue=4.0),
    Category("umbrella", "object", "\u2602\ufe0f", (("umbrella", "umbrellas"),), ("open", "standing"), ("beach", "street", "room"), base_hue=250.0),
    Category("clock", "object", "\u23F0", (("alarm clock", "alarm clocks"), ("clock", "clocks")), ("standing", "ringing"), ("table", "room", "plain")),
)
CATEGORY_BY_NAME = {category.name: category for category in CATEGORIES}
GROUPS = tuple(dict.fromkeys(category.group for category in CATEGORIES))


def emoji_font_path() -> Path:
    return Path(os.environ.get(EMOJI_FONT_ENV, EMOJI_FONT_PATH))


def emoji_available(font_path: Path | None = None) -> bool:
    """True if the colour emoji font exists and renders a glyph."""
    try:
        _emoji_font(str(font_path or emoji_font_path()))
        return True
    except (OSError, ValueError):
        return False


@functools.lru_cache(maxsize=4)
def _emoji_font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _EMOJI_RENDER_SIZE)


def _trim(sprite: Image.Image) -> Image.Image:
    box = sprite.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None:
        raise ValueError("empty sprite")
    return sprite.crop(box)


@functools.lru_cache(maxsize=None)
def _emoji_sprite(name: str, font_path: str) -> Image.Image:
    font = _emoji_font(font_path)
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), CATEGORY_BY_NAME[name].emoji, font=font, embedded_color=True)
    return _trim(canvas)


# ------------------------------------------------------------------------------ recolouring
def recolour(sprite: Image.Image, base_hue: float, colour: str, band: float = 32.0) -> Image.Image:
    """Give the part of ``sprite`` whose hue lies within ``band`` degrees of ``base_hue`` the
    named colour's hue. Saturation is raised to at least 0.7 and, for yellow and orange, value
    is lifted (dark yellow reads as olive); other pixels and alpha are unchanged."""
    rgb = np.asarray(sprite.convert("RGB"))
    hsv = np.asarray(sprite.convert("RGB").convert("HSV")).astype(np.float32) / 255.0
    hue, sat, val = hsv[..., 0] * 360.0, hsv[..., 1], hsv[..., 2]
    offset = np.abs((hue - base_hue + 180.0) % 360.0 - 180.0)
    mask = (offset <= band) & (sat > 0.3) & (val > 0.25)
    target = COLOUR_HUES[colour]
    new_hsv = np.stack([np.full_like(hue, target / 360.0), np.maximum(sat, 0.7), val], axis=-1)
    if colour in ("yellow", "orange"):
        new_hsv[..., 2] = 0.35 * val + 0.65
    if colour == "blue":
        new_hsv[..., 2] = np.minimum(val, 0.92)
    recoloured = Image.fromarray((new_hsv * 255.0 + 0.5).astype(np.uint8), "HSV").convert("RGB")
    out = np.where(mask[..., None], np.asarray(recoloured), rgb)
    result = Image.fromarray(out.astype(np.uint8), "RGB")
    result.putalpha(sprite.getchannel("A"))
    return result


# --------------------------------------------------------------------------- drawn fallback
_S = 256  # drawings are made at 256 px and downsampled to 128 px for anti-aliasing
_OUTLINE = (40, 30, 30, 255)


def _ell(d: ImageDraw.ImageDraw, cx, cy, rx, ry, fill, outline=_OUTLINE, width=4):
    d.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=outline, width=width)


def _poly(d: ImageDraw.ImageDraw, points, fill, outline=_OUTLINE, width=4):
    d.polygon(points, fill=fill, outline=outline, width=width)


def _rect(d: ImageDraw.ImageDraw, x0, y0, x1, y1, fill, radius=0, outline=_OUTLINE, width=4):
    d.rounded_rectangle((x0, y0, x1, y1), radius=radius, fill=fill, outline=outline, width=width)


def _draw_dog(d):
    brown, dark = (196, 140, 90, 255), (110, 70, 40, 255)
    for x in (70, 100, 160, 190):
        _rect(d, x - 10, 150, x + 10, 215, brown, 8)
    d.line((205, 140, 235, 95), fill=dark, width=14)
    _ell(d, 130, 140, 80, 40, brown)
    _ell(d, 62, 90, 44, 40, brown)
    _ell(d, 34, 96, 16, 34, dark)  # floppy ear
    _ell(d, 30, 112, 20, 14, (235, 200, 160, 255))  # muzzle
    _ell(d, 16, 108, 7, 6, (20, 20, 20, 255), outline=None)
    _ell(d, 66, 80, 6, 6, (20, 20, 20, 255), outline=None)


def _draw_cat(d):
    orange, light = (240, 160, 60, 255), (250, 210, 150, 255)
    d.arc((170, 60, 250, 180), 270, 90, fill=orange, width=16)
    for x in (80, 105, 165, 190):
        _rect(d, x - 10, 150, x + 10, 215, orange, 8)
    _ell(d, 135, 140, 75, 38, orange)
    _poly(d, [(30, 70), (38, 20), (70, 52)], orange)
    _poly(d, [(80, 52), (108, 20), (112, 72)], orange)
    _ell(d, 70, 85, 48, 42, orange)
    _ell(d, 54, 80, 6, 9, (30, 120, 30, 255))
    _ell(d, 88, 80, 6, 9, (30, 120, 30, 255))
    _poly(d, [(66, 98), (76, 98), (71, 105)], (230, 110, 120, 255), width=1)
    for dy in (-6, 4):
        d.line((40, 104 + dy, 5, 98 + 2 * dy), fill=_OUTLINE, width=2)
        d.line((102, 104 + dy, 137, 98 + 2 * dy), fill=_OUTLINE, width=2)
    _ell(d, 135, 148, 40, 18, light, outline=None)


def _draw_bird(d):
    blue, dark = (70, 150, 230, 255), (40, 90, 170, 255)
    _poly(d, [(200, 120), (250, 95), (245, 150)], dark)
    _ell(d, 135, 135, 75, 52, blue)
    _ell(d, 72, 90, 42, 40, blue)
    _poly(d, [(32, 85), (5, 98), (34, 104)], (250, 170, 40, 255))
    _ell(d, 64, 82, 7, 7, (20, 20, 20, 255), outline=None)
    _poly(d, [(110, 120), (190, 105), (170, 160)], dark)
    for x in (120, 150):
        d.line((x, 185, x - 5, 230), fill=(230, 140, 40, 255), width=6)


def _draw_fish(d):
    teal, dark = (60, 150, 220, 255), (30, 90, 170, 255)
    _poly(d, [(190, 128), (250, 70), (250, 186)], dark)
    _poly(d, [(110, 85), (140, 40), (165, 95)], dark)
    _ell(d, 115, 128, 95, 55, teal)
    d.arc((30, 80, 100, 176), 300, 60, fill=dark, width=5)
    _ell(d, 55, 115, 10, 10, (255, 255, 255, 255))
    _ell(d, 55, 115, 4, 4, (10, 10, 10, 255), outline=None)


def _draw_rabbit(d):
    grey, pink = (215, 215, 220, 255), (240, 170, 185, 255)
    _ell(d, 215, 160, 22, 22, (250, 250, 250, 255))
    _ell(d, 150, 160, 70, 55, grey)
    _ell(d, 90, 200, 30, 14, grey)
    for cx in (55, 90):
        _ell(d, cx, 45, 17, 48, grey)
        _ell(d, cx, 48, 7, 34, pink, outline=None)
    _ell(d, 75, 110, 45, 40, grey)
    _ell(d, 60, 102, 6, 7, (20, 20, 20, 255), outline=None)
    _ell(d, 36, 118, 6, 5, pink, outline=None)


def _draw_horse(d):
    tan, dark = (205, 150, 95, 255), (100, 60, 35, 255)
    d.line((210, 110, 240, 190), fill=dark, width=16)
    for x in (75, 100, 170, 195):
        _rect(d, x - 9, 140, x + 9, 235, tan, 6)
    _ell(d, 135, 125, 85, 42, tan)
    _poly(d, [(60, 120), (45, 40), (95, 30), (110, 110)], tan)
    _ell(d, 48, 50, 40, 24, tan)
    _poly(d, [(60, 28), (100, 25), (112, 100), (95, 60)], dark, width=2)
    _poly(d, [(62, 30), (70, 5), (80, 30)], tan)
    _ell(d, 50, 44, 5, 5, (20, 20, 20, 255), outline=None)


def _draw_apple(d):
    red = (220, 40, 40, 255)
    _ell(d, 100, 145, 75, 80, red)
    _ell(d, 156, 145, 75, 80, red)
    d.line((128, 70, 138, 25), fill=(110, 70, 30, 255), width=10)
    _poly(d, [(140, 45), (195, 20), (175, 60)], (80, 170, 60, 255))
    _ell(d, 90, 120, 14, 26, (250, 150, 150, 255), outline=None)


def _draw_banana(d):
    yellow = (250, 215, 60, 255)
    outer = [(20 + 216 * t, 60 + 150 * math.sin(math.pi * t) ** 0.8) for t in np.linspace(0, 1, 24)]
    inner = [(40 + 176 * t, 60 + 95 * math.sin(math.pi * t) ** 0.8) for t in np.linspace(1, 0, 24)]
    _poly(d, outer + inner, yellow)
    d.line((14, 50, 30, 66), fill=(90, 60, 30, 255), width=12)
    _ell(d, 226, 66, 8, 8, (90, 60, 30, 255), outline=None)


def _draw_pizza(d):
    _poly(d, [(30, 40), (226, 40), (128, 235)], (250, 205, 90, 255))
    _rect(d, 22, 22, 234, 52, (200, 130, 60, 255), 14)
    for cx, cy in ((85, 85), (160, 90), (125, 145), (125, 200)):
        _ell(d, cx, cy, 17, 17, (200, 50, 40, 255), width=2)


def _draw_cake(d):
    _poly(d, [(20, 130), (180, 70), (240, 110), (240, 215), (20, 215)], (250, 235, 210, 255))
    _rect(d, 20, 150, 240, 168, (240, 140, 160, 255), 0, width=2)
    _rect(d, 20, 190, 240, 205, (240, 140, 160, 255), 0, width=2)
    _poly(d, [(20, 130), (180, 70), (240, 110), (80, 160)], (255, 250, 245, 255))
    _ell(d, 150, 70, 24, 24, (220, 40, 50, 255))
    d.line((150, 46, 160, 30), fill=(60, 140, 50, 255), width=6)


def _draw_carrot(d):
    orange = (245, 130, 30, 255)
    _poly(d, [(60, 95), (110, 55), (230, 235)], orange)
    for t in (0.3, 0.5, 0.7):
        x, y = 85 + 130 * t, 75 + 150 * t
        d.line((x - 18, y + 4, x + 4, y - 14), fill=(200, 90, 20, 255), width=4)
    for dx, dy in ((-60, -40), (-40, -70), (-10, -60)):
        _poly(d, [(80, 75), (80 + dx, 75 + dy), (95 + dx / 2, 75 + dy / 2)], (70, 160, 60, 255))


def _draw_donut(d):
    _ell(d, 128, 135, 110, 90, (200, 140, 80, 255))
    _ell(d, 128, 125, 96, 74, (240, 120, 170, 255), width=2)
    _ell(d, 128, 128, 30, 22, (0, 0, 0, 0))
    rng = np.random.default_rng(3)
    for _ in range(18):
        angle, radius = rng.uniform(0, 2 * math.pi), rng.uniform(45, 85)
        x, y = 128 + radius * math.cos(angle), 125 + 0.75 * radius * math.sin(angle)
        colour = ((255, 255, 255, 255), (80, 170, 240, 255), (250, 220, 60, 255))[int(rng.integers(3))]
        d.line((x - 5, y - 3, x + 5, y + 3), fill=colour, width=5)


def _draw_car(d):
    red = (220, 40, 40, 255)
    _poly(d, [(60, 100), (90, 55), (170, 55), (205, 100)], red)
    _poly(d, [(75, 98), (98, 65), (128, 65), (128, 98)], (170, 215, 240, 255), width=2)
    _poly(d, [(138, 98), (138, 65), (165, 65), (190, 98)], (170, 215, 240, 255), width=2)
    _rect(d, 15, 95, 245, 170, red, 26)
    for cx in (70, 190):
        _ell(d, cx, 170, 30, 30, (40, 40, 40, 255))
        _ell(d, cx, 170, 12, 12, (190, 190, 190, 255), width=2)
    _ell(d, 232, 118, 8, 8, (255, 230, 120, 255), width=2)


def _draw_bus(d):
    yellow = (250, 190, 40, 255)
    _rect(d, 10, 50, 246, 190, yellow, 20)
    for x in range(28, 200, 44):
        _rect(d, x, 70, x + 34, 115, (170, 215, 240, 255), 4, width=2)
    _rect(d, 210, 70, 238, 160, (170, 215, 240, 255), 4, width=2)
    d.line((14, 135, 205, 135), fill=(200, 60, 40, 255), width=8)
    for cx in (60, 195):
        _ell(d, cx, 192, 26, 26, (40, 40, 40, 255))
        _ell(d, cx, 192, 10, 10, (190, 190, 190, 255), width=2)


def _draw_bicycle(d):
    frame = (40, 160, 170, 255)
    for cx in (60, 196):
        _ell(d, cx, 170, 52, 52, (0, 0, 0, 0), outline=(40, 40, 40, 255), width=9)
        _ell(d, cx, 170, 6, 6, (40, 40, 40, 255), outline=None)
    d.line([(60, 170), (110, 170), (90, 100), (60, 170)], fill=frame, width=9)
    d.line([(110, 170), (175, 100), (90, 100)], fill=frame, width=9)
    d.line([(196, 170), (170, 70)], fill=frame, width=9)
    d.line([(155, 70), (195, 62)], fill=(40, 40, 40, 255), width=9)
    d.line([(90, 100), (84, 80)], fill=frame, width=9)
    _rect(d, 62, 70, 106, 82, (40, 40, 40, 255), 6, width=1)


def _draw_airplane(d):
    body, wing = (235, 240, 245, 255), (70, 120, 200, 255)
    _poly(d, [(110, 120), (40, 215), (75, 215), (155, 130)], wing)
    _poly(d, [(110, 120), (60, 35), (95, 35), (155, 118)], wing)
    _poly(d, [(215, 118), (245, 70), (248, 125)], wing)
    _ell(d, 130, 124, 118, 22, body)
    for x in range(50, 200, 22):
        _ell(d, x, 119, 5, 5, (90, 140, 210, 255), outline=None)


def _draw_boat(d):
    _poly(d, [(120, 20), (120, 160), (30, 160)], (245, 245, 240, 255))
    _poly(d, [(132, 35), (132, 160), (215, 160)], (240, 110, 80, 255))
    d.line((126, 12, 126, 175), fill=(90, 60, 40, 255), width=7)
    _poly(d, [(15, 170), (240, 170), (205, 225), (45, 225)], (60, 90, 160, 255))


def _draw_train(d):
    green = (40, 130, 90, 255)
    _rect(d, 20, 100, 160, 190, green, 12)
    _rect(d, 150, 50, 240, 190, (200, 50, 50, 255), 8)
    _rect(d, 172, 70, 218, 110, (170, 215, 240, 255), 4, width=2)
    _rect(d, 45, 60, 75, 100, (60, 60, 60, 255), 2)
    for cx, r in ((55, 22), (115, 22), (200, 28)):
        _ell(d, cx, 200, r, r, (40, 40, 40, 255))
        _ell(d, cx, 200, 7, 7, (200, 200, 60, 255), outline=None)
    for cx, cy, r in ((60, 40, 18), (85, 22, 15), (110, 12, 10)):
        _ell(d, cx, cy, r, r, (200, 200, 205, 255), width=2)


def _draw_tree(d):
    _rect(d, 110, 130, 146, 245, (130, 85, 45, 255), 4)
    green = (70, 160, 70, 255)
    for cx, cy, r in ((128, 70, 60), (75, 110, 50), (180, 110, 50), (128, 130, 52)):
        _ell(d, cx, cy, r, r, green)
    for cx, cy, r in ((128, 70, 56), (75, 110, 46), (180, 110, 46), (128, 130, 48)):
        _ell(d, cx, cy, r, r, green, outline=None)


def _draw_flower(d):
    pink, leaf = (240, 110, 160, 255), (80, 170, 70, 255)
    d.line((128, 240, 128, 110), fill=leaf, width=10)
    _poly(d, [(128, 230), (60, 150), (120, 195)], leaf)
    _poly(d, [(128, 220), (200, 140), (136, 190)], leaf)
    _poly(d, [(75, 40), (100, 70), (128, 25), (156, 70), (181, 40), (185, 95), (165, 130), (91, 130), (71, 95)], pink)


def _draw_cactus(d):
    green = (70, 160, 80, 255)
    _rect(d, 40, 60, 75, 150, green, 17)
    _rect(d, 55, 125, 120, 152, green, 12)
    _rect(d, 180, 80, 215, 160, green, 17)
    _rect(d, 136, 135, 200, 160, green, 12)
    _rect(d, 100, 10, 156, 245, green, 28)
    for x, y in ((115, 60), (140, 110), (118, 170), (140, 210), (55, 90), (198, 110)):
        d.line((x - 5, y - 5, x + 5, y + 5), fill=(250, 250, 200, 255), width=3)


def _draw_sunflower(d):
    d.line((128, 245, 128, 140), fill=(70, 150, 60, 255), width=12)
    _poly(d, [(128, 215), (70, 180), (125, 195)], (70, 150, 60, 255))
    for k in range(14):
        angle = 2 * math.pi * k / 14
        cx, cy = 128 + 58 * math.cos(angle), 95 + 58 * math.sin(angle)
        _ell(d, cx, cy, 24, 24, (250, 200, 30, 255), width=2)
    _ell(d, 128, 95, 45, 45, (120, 70, 30, 255))


def _draw_ball(d):
    _ell(d, 128, 128, 115, 115, (240, 130, 40, 255), width=6)
    d.line((128, 13, 128, 243), fill=_OUTLINE, width=6)
    d.line((13, 128, 243, 128), fill=_OUTLINE, width=6)
    d.arc((-30, 40, 80, 216), 300, 60, fill=_OUTLINE, width=6)
    d.arc((176, 40, 286, 216), 120, 240, fill=_OUTLINE, width=6)


def _draw_balloon(d):
    d.line((128, 200, 120, 225, 136, 245), fill=(90, 90, 90, 255), width=3)
    _poly(d, [(118, 205), (138, 205), (128, 188)], (210, 40, 40, 255), width=2)
    _ell(d, 128, 100, 75, 92, (225, 45, 45, 255))
    _ell(d, 100, 65, 12, 22, (255, 170, 170, 255), outline=None)


def _draw_heart(d):
    red = (225, 40, 50, 255)
    _ell(d, 80, 90, 62, 62, red)
    _ell(d, 176, 90, 62, 62, red)
    _poly(d, [(22, 110), (234, 110), (128, 235)], red)
    _ell(d, 80, 90, 58, 58, red, outline=None)
    _ell(d, 176, 90, 58, 58, red, outline=None)
    _poly(d, [(27, 108), (229, 108), (128, 228)], red, outline=None)


def _draw_star(d):
    points = []
    for k in range(10):
        radius = 120 if k % 2 == 0 else 50
        angle = -math.pi / 2 + math.pi * k / 5
        points.append((128 + radius * math.cos(angle), 135 + radius * math.sin(angle)))
    _poly(d, points, (250, 205, 40, 255), width=5)


def _draw_teddy(d):
    brown, light = (160, 100, 55, 255), (225, 180, 130, 255)
    for cx in (70, 186):
        _ell(d, cx, 215, 32, 26, brown)
    _ell(d, 128, 175, 68, 62, brown)
    for cx in (58, 198):
        _ell(d, cx, 160, 22, 34, brown)
    for cx in (80, 176):
        _ell(d, cx, 30, 24, 24, brown)
    _ell(d, 128, 75, 60, 54, brown)
    _ell(d, 128, 95, 24, 18, light)
    _ell(d, 128, 88, 8, 6, (30, 20, 15, 255), outline=None)
    for cx in (105, 151):
        _ell(d, cx, 65, 6, 7, (30, 20, 15, 255), outline=None)
    _ell(d, 128, 180, 36, 32, light, outline=None)


def _draw_book(d):
    _rect(d, 40, 20, 215, 236, (245, 240, 225, 255), 6)
    _rect(d, 30, 14, 200, 230, (210, 45, 45, 255), 8)
    _rect(d, 30, 14, 58, 230, (150, 30, 30, 255), 4)
    _rect(d, 90, 60, 175, 90, (250, 240, 200, 255), 2, width=2)


def _draw_umbrella(d):
    purple = (130, 90, 220, 255)
    d.line((128, 120, 128, 220), fill=(60, 60, 70, 255), width=9)
    d.arc((128, 195, 172, 245), 0, 180, fill=(60, 60, 70, 255), width=9)
    d.pieslice((10, 20, 246, 236), 180, 360, fill=purple, outline=_OUTLINE, width=4)
    for x in (49, 128, 207):
        _ell(d, x, 128, 40, 14, (0, 0, 0, 0), outline=None)
    for x in (89, 168):
        d.line((128, 22, x, 122), fill=(90, 60, 170, 255), width=3)
    _rect(d, 122, 8, 134, 24, (60, 60, 70, 255), 2, width=1)


def _draw_clock(d):
    red = (220, 50, 50, 255)
    d.line((70, 215, 50, 245), fill=_OUTLINE, width=10)
    d.line((186, 215, 206, 245), fill=_OUTLINE, width=10)
    d.pieslice((20, 10, 110, 100), 180, 360, fill=red, outline=_OUTLINE, width=4)
    d.pieslice((146, 10, 236, 100), 180, 360, fill=red, outline=_OUTLINE, width=4)
    _ell(d, 128, 145, 100, 100, red)
    _ell(d, 128, 145, 78, 78, (250, 250, 250, 255), width=3)
    d.line((128, 145, 128, 90), fill=_OUTLINE, width=7)
    d.line((128, 145, 170, 160), fill=_OUTLINE, width=7)


_DRAWERS = {name[len("_draw_"):]: func for name, func in globals().items() if name.startswith("_draw_")}


@functools.lru_cache(maxsize=None)
def _drawn_sprite(name: str) -> Image.Image:
    canvas = Image.new("RGBA", (_S, _S), (0, 0, 0, 0))
    _DRAWERS[name](ImageDraw.Draw(canvas))
    return _trim(canvas.resize((_S // 2, _S // 2), Image.Resampling.LANCZOS))


# ---------------------------------------------------------------------------------- sprite set
class SpriteSet:
    """Base sprites of all categories from one source, recoloured and resized on demand.

    source: "emoji" (the colour emoji font; error if absent), "drawn" (PIL drawings) or
    "auto" (emoji when the font renders, else drawn).
    """

    def __init__(self, source: str = "auto", font_path: str | Path | None = None):
        if source not in ("auto", "emoji", "drawn"):
            raise ValueError(f"unknown sprite source {source!r}; choose auto, emoji or drawn")
        self.font_path = str(font_path or emoji_font_path())
        if source == "auto":
            source = "emoji" if emoji_available(Path(self.font_path)) else "drawn"
        elif source == "emoji" and not emoji_available(Path(self.font_path)):
            raise FileNotFoundError(f"{self.font_path}: colour emoji font not found or unreadable")
        self.source = source
        self._sized = functools.lru_cache(maxsize=4096)(self._sized_uncached)

    def base(self, name: str, colour: str | None = None) -> Image.Image:
        """Trimmed RGBA sprite at its native size (about 128 px), optionally recoloured."""
        return self._coloured(name, colour)

    @functools.lru_cache(maxsize=None)  # noqa: B019 (a SpriteSet lives as long as its task)
    def _coloured(self, name: str, colour: str | None) -> Image.Image:
        sprite = _emoji_sprite(name, self.font_path) if self.source == "emoji" else _drawn_sprite(name)
        category = CATEGORY_BY_NAME[name]
        if colour is not None and category.recolourable:
            sprite = recolour(sprite, category.base_hue, colour)
        return sprite

    def _sized_uncached(self, name: str, colour: str | None, longest_side: int, flip: bool) -> Image.Image:
        sprite = self._coloured(name, colour)
        scale = longest_side / max(sprite.size)
        size = (max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale)))
        sprite = sprite.resize(size, Image.Resampling.LANCZOS)
        return sprite.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else sprite

    def sized(self, name: str, colour: str | None, longest_side: int, flip: bool = False) -> Image.Image:
        """RGBA sprite whose longer side is ``longest_side`` pixels (cached)."""
        return self._sized(name, colour, int(longest_side), bool(flip))
