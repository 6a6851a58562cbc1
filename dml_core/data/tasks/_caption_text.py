"""COCO-style captions written from a caption-task scene.

Each image gets 5 captions from 5 different templates (full description, short list, "there
is/are", "a photo of", subject + verb, background first, reversed relation, "a scene with").
Every caption names the main objects; which attributes (count wording, colour, size,
position, relation, background) it mentions is drawn per caption, so the 5 captions of an
image agree on content and differ in phrasing and detail, like human COCO captions.
"""
from __future__ import annotations

import numpy as np

from dml_core.data.tasks._caption_scene import POSITION_XY, ObjectGroup, Scene
from dml_core.data.tasks._caption_sprites import CATEGORY_BY_NAME

N_CAPTIONS = 5

_BACKGROUND_PHRASES = {
    "grass": ("on the grass", "in a grassy field", "on a green lawn", "in a park"),
    "sky": ("in the sky", "against a blue sky", "under a cloudy sky"),
    "table": ("on a wooden table", "on a table", "on a kitchen table"),
    "beach": ("on the beach", "on a sandy beach", "by the sea"),
    "street": ("on the street", "on a city street", "on the road"),
    "snow": ("in the snow", "on snowy ground", "in a snowy field"),
    "water": ("in the water", "in a lake", "on the blue water"),
    "room": ("in a room", "indoors", "in a living room"),
    "plain": ("on a plain background", "against a simple backdrop", "on a blank background"),
}
_SHORT_BACKGROUND = {
    "grass": ("outdoors", "outside"), "sky": ("in the sky", "up in the air"), "table": ("on a table", "indoors"),
    "beach": ("at the beach", "by the sea"), "street": ("in the city", "on the street"),
    "snow": ("in the snow", "in winter"), "water": ("in the water", "on a lake"), "room": ("indoors", "inside"),
    "plain": ("",),
}
_PATTERN_PHRASES = {
    "striped": ("in front of a striped wall", "in a room with striped wallpaper"),
    "checkered": ("in front of a checkered wall", "in a room with checkered wallpaper"),
    "dotted": ("in front of a polka dot wall", "in a room with dotted wallpaper"),
}
_POSITION_PHRASES = {
    "left": ("on the left", "on the left side"),
    "right": ("on the right", "on the right side"),
    "top": ("at the top", "near the top"),
    "bottom": ("at the bottom", "in the foreground"),
    "centre": ("in the middle", "in the center"),
}
_SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
_COUNT_WORDS = {2: ("two", "a pair of", "a couple of"), 3: ("three", "three", "several", "a group of three")}


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(group: ObjectGroup, rng: np.random.Generator, colour_p: float = 0.5, size_p: float = 0.4) -> str:
    """E.g. "two red balls", "a small puppy", "an alarm clock"; attributes drawn with the given
    probabilities (a chosen colour is mentioned more often than a natural one)."""
    category = CATEGORY_BY_NAME[group.category]
    nouns = category.nouns
    singular, plural = nouns[0] if len(nouns) == 1 or rng.random() < 0.6 else _pick(rng, nouns[1:])
    adjectives = []
    if rng.random() < size_p:
        adjectives.append(_pick(rng, _SIZE_WORDS[group.size]))
    colour = group.colour_word
    if colour and rng.random() < (colour_p if group.colour else colour_p * 0.5):
        adjectives.append(colour)
    head = " ".join([*adjectives, singular if group.count == 1 else plural])
    if group.count == 1:
        return f"{_article(head)} {head}" if rng.random() < 0.9 else f"one {head}"
    return f"{_pick(rng, _COUNT_WORDS[group.count])} {head}"


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _relation(a: ObjectGroup, b: ObjectGroup, rng: np.random.Generator) -> str:
    """Spatial relation of group a to group b from their positions ("to the left of" ...)."""
    (ax, ay), (bx, by) = POSITION_XY[a.position], POSITION_XY[b.position]
    generic = ("next to", "near", "beside", "with")
    if rng.random() < 0.4:
        return _pick(rng, generic)
    if abs(ax - bx) >= abs(ay - by):
        return _pick(rng, ("to the left of",) if ax < bx else ("to the right of",))
    return _pick(rng, ("above", "over") if ay < by else ("below", "under"))


def _background(scene: Scene, rng: np.random.Generator, short: bool = False) -> str:
    if short:
        return _pick(rng, _SHORT_BACKGROUND[scene.background])
    if scene.background == "room" and scene.pattern in _PATTERN_PHRASES and rng.random() < 0.6:
        return _pick(rng, _PATTERN_PHRASES[scene.pattern])
    return _pick(rng, _BACKGROUND_PHRASES[scene.background])


def _is_are(group: ObjectGroup) -> str:
    return "is" if group.count == 1 else "are"


def _mentioned(scene: Scene, rng: np.random.Generator) -> list[ObjectGroup]:
    """Groups a caption names: all of them, except that 4-group scenes sometimes drop the last."""
    groups = list(scene.groups)
    if len(groups) == 4 and rng.random() < 0.5:
        groups = groups[:3]
    return groups


def _sentence(*parts: str) -> str:
    text = " ".join(p for p in parts if p).replace(" ,", ",")
    return text[0].upper() + text[1:] + "."


# Templates: (scene, rng) -> caption.
def _full(scene, rng):
    groups = _mentioned(scene, rng)
    first = noun_phrase(groups[0], rng, 0.9, 0.8)
    if len(groups) == 1:
        return _sentence(first, _pick(rng, _POSITION_PHRASES[groups[0].position]), _background(scene, rng))
    rest = _join([noun_phrase(g, rng, 0.7, 0.5) for g in groups[1:]])
    return _sentence(first, _relation(groups[0], groups[1], rng), rest, _background(scene, rng))


def _short(scene, rng):
    groups = _mentioned(scene, rng)
    return _sentence(_join([noun_phrase(g, rng, 0.2, 0.0) for g in groups]), _background(scene, rng, short=True))


def _there(scene, rng):
    groups = _mentioned(scene, rng)
    parts = [f"{noun_phrase(g, rng, 0.5, 0.4)} {_pick(rng, _POSITION_PHRASES[g.position])}" for g in groups]
    tail = _background(scene, rng) if len(groups) == 1 else ""
    return _sentence("there", _is_are(groups[0]), _join(parts), tail)


def _photo(scene, rng):
    groups = _mentioned(scene, rng)
    lead = _pick(rng, ("a picture of", "a photo of", "an image of", "a photograph of", "a drawing of"))
    return _sentence(lead, _join([noun_phrase(g, rng, 0.5, 0.4) for g in groups]), _background(scene, rng))


def _verb(scene, rng):
    groups = _mentioned(scene, rng)
    main = groups[0]
    verb = _pick(rng, CATEGORY_BY_NAME[main.category].verbs)
    first = noun_phrase(main, rng, 0.5, 0.6)
    if len(groups) == 1:
        return _sentence(first, verb, _pick(rng, _POSITION_PHRASES[main.position]), _background(scene, rng))
    rest = _join([noun_phrase(g, rng, 0.5, 0.3) for g in groups[1:]])
    return _sentence(first, verb, _background(scene, rng), _pick(rng, ("next to", "near", "beside", "with")), rest)


def _background_first(scene, rng):
    groups = _mentioned(scene, rng)
    return _sentence(_background(scene, rng) + ",", "there", _is_are(groups[0]), _join([noun_phrase(g, rng, 0.5, 0.4) for g in groups]))


def _reversed(scene, rng):
    groups = _mentioned(scene, rng)
    if len(groups) == 1:
        group = groups[0]
        where = _pick(rng, _POSITION_PHRASES[group.position])
        return _sentence(_background(scene, rng) + ",", noun_phrase(group, rng, 0.7, 0.7), where)
    rest = _join([noun_phrase(g, rng, 0.6, 0.4) for g in groups[1:]])
    return _sentence(rest, _relation(groups[1], groups[0], rng), noun_phrase(groups[0], rng, 0.6, 0.6))


def _scene_with(scene, rng):
    groups = _mentioned(scene, rng)
    lead = _pick(rng, ("a scene with", "a view of", "a simple scene showing", "a colorful scene with"))
    return _sentence(lead, _join([noun_phrase(g, rng, 0.4, 0.3) for g in groups]), _background(scene, rng, short=True))


TEMPLATES = (_full, _short, _there, _photo, _verb, _background_first, _reversed, _scene_with)


def write_captions(scene: Scene, rng: np.random.Generator, n: int = N_CAPTIONS) -> list[str]:
    """``n`` distinct captions for ``scene`` from ``n`` different templates (random order)."""
    order = rng.permutation(len(TEMPLATES))
    captions: list[str] = []
    for index in order:
        for _ in range(4):  # a template can repeat another's wording by chance; redraw then
            caption = TEMPLATES[int(index)](scene, rng)
            if caption not in captions:
                captions.append(caption)
                break
        if len(captions) == n:
            return captions
    raise RuntimeError(f"could not write {n} distinct captions for {scene}")
