"""Result tiles and scores as HTML: thumbnails (data URIs), badges coloured by label distance, score bars."""
from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from dml_core.app.labels import image_meta
from dml_core.core.vocabulary import METHOD_COLOURS

_GREEN, _AMBER, _RED = np.array([22, 163, 74]), np.array([202, 138, 4]), np.array([220, 38, 38])


def quality_colour(fraction: float) -> str:
    """Hex colour from green (``fraction`` 0: as close as it gets) through amber to red (1)."""
    t = float(np.clip(fraction, 0.0, 1.0))
    rgb = _GREEN + (_AMBER - _GREEN) * (t / 0.5) if t < 0.5 else _AMBER + (_RED - _AMBER) * ((t - 0.5) / 0.5)
    return "#{:02x}{:02x}{:02x}".format(*np.round(rgb).astype(int))


def distance_fractions(row: np.ndarray, distances) -> np.ndarray:
    """For each distance, the fraction of the query's gallery that is label-closer than it.

    row: the query's label distances to the whole gallery (G,). 0 means "as close as the nearest
    gallery image", 1 "the farthest". Colouring by this rank, not the raw value, makes badges
    comparable across tasks whose label distances live on different scales.
    """
    ordered = np.sort(np.asarray(row, dtype=np.float64))
    values = np.asarray(distances, dtype=np.float64)
    return np.searchsorted(ordered, values, side="left") / max(len(ordered) - 1, 1)


def encode_image(array: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, format="JPEG", quality=quality, subsampling=0)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


def data_uri(array: np.ndarray, fmt: str = "JPEG") -> str:
    mime = "image/jpeg" if fmt == "JPEG" else f"image/{fmt.lower()}"
    return f"data:{mime};base64," + base64.b64encode(encode_image(array, fmt)).decode("ascii")


class Thumbnails:
    """Data URIs of a split's images, encoded once (JPEG q90: ~6 KB for a 128 px tile).

    With a ``task``, ``overlay(i)`` is the image with its label drawn (pose skeleton, layout
    edges, first caption) by ``task.draw_label``, at ``OVERLAY_SIZE`` px, so a person can judge
    by eye how similar two results' labels are.
    """

    OVERLAY_SIZE = 176

    def __init__(self, data, task=None):
        self.data, self.task = data, task
        self._cache: dict[tuple[bool, int], str] = {}
        self._lock = threading.Lock()

    def _uri(self, index: int, overlay: bool) -> str:
        key = (overlay, int(index))
        uri = self._cache.get(key)
        if uri is None:
            uri = data_uri(self._overlaid(key[1]) if overlay else self.data.images[key[1]])
            with self._lock:
                self._cache[key] = uri
        return uri

    def _overlaid(self, index: int) -> np.ndarray:
        width = self.OVERLAY_SIZE
        drawn = self.task.draw_label(self.data.image(index), self.data.labels[index], image_meta(self.data, index), width=width)
        if drawn.width != width:  # a large real image is drawn at its own size
            drawn = drawn.resize((width, round(width * drawn.height / drawn.width)), Image.Resampling.LANCZOS)
        return np.asarray(drawn.convert("RGB"))

    def __getitem__(self, index: int) -> str:
        return self._uri(index, False)

    def prefetch(self, overlay: bool = True) -> threading.Thread:
        """Encode every image (drawn with its label when ``overlay`` and the task draws labels) in
        a background thread, so the tiles of a query nobody has opened yet are ready: drawing a
        layout overlay takes ~5 ms, and a new query shows up to ~40 unseen results."""
        drawn = overlay and self.task is not None and getattr(self.task, "label_drawn_on_image", False)
        worker = threading.Thread(target=lambda: [self._uri(i, drawn) for i in range(len(self.data))],
                                  name="thumbnail-prefetch", daemon=True)
        worker.start()
        return worker

    def overlay(self, index: int) -> str:
        """The image with its label drawn; the plain image when the task cannot draw labels."""
        if self.task is None or not getattr(self.task, "label_drawn_on_image", False):
            return self[index]
        return self._uri(index, True)


@dataclass
class Tile:
    """One result tile: image URI, rank, and a badge (text + colour) in its corner; ``link``
    (a URL query string) makes the tile a link, e.g. to make the result the query."""

    uri: str
    rank: int | None
    badge: str | None = None
    badge_colour: str = "#475569"
    tooltip: str = ""
    link: str | None = None


def hit_tiles(thumbs: Thumbnails, hits, row: np.ndarray | None = None, overlay: bool = False, link=None) -> list[Tile]:
    """Tiles for ranked hits; with the query's label-distance ``row`` the badge shows the label
    distance coloured by its rank in the gallery, else the embedding distance in grey.
    overlay: draw each result's label on it. link: ``gallery index -> URL query string``."""
    tiles = []
    fractions = distance_fractions(row, [h.label_distance for h in hits]) if row is not None and hits else None
    for rank, hit in enumerate(hits, 1):
        uri = thumbs.overlay(hit.gallery_index) if overlay else thumbs[hit.gallery_index]
        target = link(hit.gallery_index) if link else None
        action = " · click to make it the query" if target else ""
        if fractions is not None:
            closer = 100 * (1 - fractions[rank - 1])
            tiles.append(Tile(uri, rank, f"{hit.label_distance:.3f}", quality_colour(fractions[rank - 1]),
                              f"gallery #{hit.gallery_index} · label distance {hit.label_distance:.4f} · "
                              f"closer than {closer:.0f}% of the gallery{action}", target))
        else:
            tiles.append(Tile(uri, rank, f"{hit.distance:.3f}", "#475569",
                              f"gallery #{hit.gallery_index} · embedding distance {hit.distance:.4f}{action}", target))
    return tiles


def score_html(name: str, value: str, delta: str | None = None, good: bool | None = None, help: str = "") -> str:
    """One compact score (name, value, optional delta coloured green / red / grey): never cut
    off in a narrow column, unlike ``st.metric``'s label."""
    colour = "#6b6480" if good is None else ("#15803d" if good else "#b91c1c")
    delta_html = f'<span class="bb-delta" style="color:{colour}">{_escape(delta)}</span>' if delta else ""
    return (f'<div class="bb-score" title="{_escape(help)}"><span class="bb-score-name">{_escape(name)}</span>'
            f'<span class="bb-score-value">{_escape(value)}</span>{delta_html}</div>')


def scale_html(fraction: float, value: str, random: str, best: str, colour: str = METHOD_COLOURS["log_ratio"],
               caption: str = "gap closed") -> str:
    """Where a score stands between random retrieval (left, 0) and the oracle (right, 1): a bar
    with a marker, both ends labelled with their values (outside [0, 1] the marker is pinned
    to the end and the number still says how far)."""
    if fraction is None or not np.isfinite(fraction):
        return '<div class="bb-scale-text">gap closed: undefined (every gallery image is at one label distance)</div>'
    position = float(np.clip(fraction, 0, 1)) * 100
    return (f'<div class="bb-scale" title="0 % = what a random ranking scores in expectation, 100 % = the oracle">'
            f'<div class="bb-scale-bar"><div class="bb-scale-fill" style="width:{position:.1f}%;background:{colour}"></div>'
            f'<div class="bb-scale-mark" style="left:{position:.1f}%;border-color:{colour}"></div></div>'
            f'<div class="bb-scale-text"><span>random {_escape(random)}</span><b>{caption} {100 * fraction:.0f}% · {_escape(value)}</b>'
            f'<span>oracle {_escape(best)}</span></div></div>')


def tiles_html(tiles: list[Tile], min_width: int = 92) -> str:
    """A responsive CSS grid of tiles (one HTML string: one message to the browser)."""
    cells = []
    for tile in tiles:
        rank = f'<span class="bb-badge">{tile.rank}</span>' if tile.rank is not None else ""
        badge = (f'<span class="bb-dist" style="background:{tile.badge_colour}">{tile.badge}</span>'
                 if tile.badge else "")
        cell = f'<div class="bb-tile" title="{_escape(tile.tooltip)}"><img src="{tile.uri}" alt="">{rank}{badge}</div>'
        if tile.link:
            cell = f'<a class="bb-tile-link" href="{_escape(tile.link)}" target="_self">{cell}</a>'
        cells.append(cell)
    return (f'<div class="bb-grid" style="grid-template-columns:repeat(auto-fill,minmax({min_width}px,1fr))">'
            + "".join(cells) + "</div>")


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;"))


def page_of(items: list, page: int, per_page: int) -> tuple[list, int, int]:
    """Items of 1-based ``page`` (clamped to the pages there are), the page and the page count."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(int(page), 1), pages)
    return items[(page - 1) * per_page: page * per_page], page, pages
