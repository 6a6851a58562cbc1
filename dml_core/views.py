"""What the app's pages show, computed without Streamlit: colours, tables, plot data, query paths.

The pages (``pages/*.py``) only lay out widgets; everything they display that is more than a
lookup is assembled here, so it is tested without a browser and reused by the CLI if wanted.

Colour convention (shared with ``bench.py``): binary-supervision methods are warm (orange /
amber), continuous ones (log-ratio, dense triplet) are violet, pretrained baselines grey.
"""
from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from PIL import Image

from .images import decode_image, to_square_array

# ------------------------------------------------------------------------------- methods
#: Colour per method id (prefix match, longest first). Warm = binary, violet = continuous,
#: grey = pretrained; within a family, hues and lightness far enough apart (CIEDE2000 ≥ 18 for
#: methods shown together, mostly ≥ 24) that compared methods never look alike.
METHOD_COLOURS = {
    "log_ratio": "#6d28d9",
    "dense_triplet": "#a78bfa",
    "rank_n_contrast": "#2563eb",
    "log_ratio_ft": "#3b0764",
    "binary_triplet_ft": "#7c2d12",
    "binary_triplet_hard": "#991b1b",
    "binary_triplet_semihard": "#db2777",
    "binary_triplet_easy": "#a16207",
    "binary_triplet_batch_hard": "#4c0519",
    "binary_triplet": "#ea580c",
    "contrastive": "#eab308",
    "cross_modal": "#0d9488",
    "imagenet": "#6b7280",
    "clip": "#1e293b",
}
FAMILY_OF = {"log_ratio": "continuous", "dense_triplet": "continuous", "rank_n_contrast": "continuous",
             "binary_triplet": "binary", "contrastive": "binary", "cross_modal": "cross-modal", "imagenet": "pretrained",
             "clip": "pretrained"}

#: One-line definitions shown on the Benchmarks page (and as tooltips).
METHOD_DEFINITIONS = {
    "imagenet": "Frozen EfficientNet-Lite0 ImageNet features, globally pooled; no training on the task.",
    "clip": "Frozen open_clip image features; no training on the task.",
    "contrastive": "Contrastive loss on pairs: the 30 label-nearest neighbours are positives (pulled together), "
                   "the rest negatives (pushed beyond a margin). Binary supervision.",
    "binary_triplet": "Triplet loss, margin 0.2, on L2-normalised embeddings; positives = 30 label-nearest "
                      "neighbours, negatives = the rest; every margin-violating triplet is used. Binary supervision.",
    "binary_triplet_hard": "Binary triplet loss with hard mining: negatives closer to the anchor than the positive.",
    "binary_triplet_semihard": "Binary triplet loss with semi-hard mining: negatives farther than the positive "
                               "but inside the margin.",
    "binary_triplet_easy": "Binary triplet loss on easy triplets (already satisfied), with the smooth soft-plus loss.",
    "binary_triplet_batch_hard": "Binary triplet loss with batch-hard mining: the hardest positive and negative per anchor.",
    "dense_triplet": "Triplet loss, margin 0.03, with dense triplet mining: in every triplet (a, i, j) the "
                     "label-closer of i and j is the positive. Continuous supervision.",
    "log_ratio": "Log-ratio loss (Kim et al. 2019): (log D(f_a,f_i)/D(f_a,f_j) − log D(y_a,y_i)/D(y_a,y_j))², "
                 "so ratios of embedding distances match ratios of label distances. Continuous supervision.",
    "rank_n_contrast": "Rank-N-Contrast (Zha et al. 2023): for every pair (i, j), j is contrasted against every k "
                       "farther from i in label space, so the embedding ranks neighbours by label distance. Continuous "
                       "supervision.",
    "cross_modal": "Images and caption embeddings trained into one space, so a text finds images.",
    "log_ratio_ft": "Log-ratio loss with dense mining, trained end to end: a compact CNN on the task's images "
                    "(64 px) instead of a head on frozen ImageNet features.",
    "binary_triplet_ft": "Binary triplet loss, trained end to end: a compact CNN on the task's images (64 px) "
                         "instead of a head on frozen ImageNet features.",
}
METRIC_DEFINITIONS = {
    "nDCG@K": "Normalised discounted cumulative gain of the top K: relevance r = 1/(1 + d) with d the label "
              "distance to the query, DCG = Σ r_i / log2(i + 1), divided by the DCG of the ideal (label-sorted) "
              "ranking. 1 = perfect; higher is better.",
    "mld@K": "Mean label distance of the top K results to the query. Lower is better; the oracle's value is "
             "the floor.",
    "Spearman ρ": "Rank correlation between embedding distances and label distances over all query–gallery "
                  "pairs: does the whole ordering follow the labels, not just the top? Higher is better.",
}


def method_base(method: str) -> str:
    """The method key of ``METHOD_COLOURS`` that ``method`` starts with (longest match)."""
    for key in sorted(METHOD_COLOURS, key=len, reverse=True):
        if method.startswith(key):
            return key
    return method


def method_colour(method: str) -> str:
    return METHOD_COLOURS.get(method_base(method), "#334155")


def method_family(method: str) -> str:
    """"binary", "continuous", "pretrained", "cross-modal" or "other"."""
    base = method_base(method)
    for key, family in FAMILY_OF.items():
        if base.startswith(key):
            return family
    return "other"


def method_definition(method: str) -> str:
    return METHOD_DEFINITIONS.get(method_base(method), "")


def model_label(model) -> str:
    """A short human name: ``log ratio · d=128`` plus seed and a ``lab`` mark when relevant."""
    meta = model.meta
    if meta["method"] in ("imagenet", "clip"):
        return "ImageNet features" if meta["method"] == "imagenet" else "CLIP features"
    from .methods import FINE_TUNED_SUFFIX, base_method

    parts = [base_method(meta["method"]).replace("_", " ")]
    if meta["method"].endswith(FINE_TUNED_SUFFIX):
        parts.append("CNN end to end")
    parts.append(f"d={meta['dim']}")
    if meta.get("seed"):
        parts.append(f"seed {meta['seed']}")
    if meta.get("origin") == "lab":
        parts.append(f"lab, {meta.get('steps')} steps")
    return " · ".join(parts)


def default_model_ids(catalog, wanted=("binary_triplet-d128-s0", "log_ratio-d128-s0")) -> list[str]:
    """The Compare page's default columns: binary triplet vs log-ratio at d=128, else the first two."""
    ids = catalog.model_ids()
    chosen = [m for m in wanted if m in catalog.models]
    for m in ids:
        if len(chosen) >= 2:
            break
        if m not in chosen:
            chosen.append(m)
    return chosen


# ------------------------------------------------------------------------ distance colours
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


# ---------------------------------------------------------------------------- images
def image_meta(data, index: int) -> dict:
    """One image's own meta entries (``{"activity": "walk", ...}``) from a TaskData."""
    return {key: values[index] for key, values in data.meta.items()}


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
        drawn = self.task.draw_label(self.data.image(index), self.data.labels[index], image_meta(self.data, index))
        width = self.OVERLAY_SIZE
        return np.asarray(drawn.convert("RGB").resize((width, round(width * drawn.height / drawn.width)), Image.Resampling.LANCZOS))

    def __getitem__(self, index: int) -> str:
        return self._uri(index, False)

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


def scale_html(fraction: float, value: str, random: str, best: str, colour: str = "#6d28d9",
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


# ------------------------------------------------------------------------------ queries
def filter_queries(data, attribute: str | None = None, value=None) -> list[int]:
    """Indices of the images whose ``meta[attribute] == value`` (all when either is None)."""
    if attribute is None or value is None or attribute not in data.meta:
        return list(range(len(data)))
    return [i for i, v in enumerate(data.meta[attribute]) if str(v) == str(value)]


def attribute_values(data, attribute: str) -> list[str]:
    """Distinct values of a meta attribute, sorted (numbers numerically)."""
    values = {str(v) for v in data.meta.get(attribute, [])}
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)


MAX_CATEGORIES = 24  # text attributes with more values than this are not offered as filters
MAX_INT_CATEGORIES = 8  # integer attributes (counts, views) beyond this are ids or measurements


def attribute_is_categorical(values, codes: bool = False) -> bool:
    """Text with a few values, or integers with very few (counts, view ids); never floats.

    codes: the integers are category codes (``Task.categorical``), so they count as text.
    """
    values = list(values)
    if not values or any(isinstance(v, float) for v in values):
        return False
    distinct = len(set(map(str, values)))
    if not codes and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return distinct <= MAX_INT_CATEGORIES
    return distinct <= MAX_CATEGORIES


def task_attribute_is_categorical(task, data, attribute: str) -> bool:
    return attribute_is_categorical(data.meta[attribute], codes=attribute in getattr(task, "categorical", ()))


def categorical_attributes(task, data) -> list[str]:
    """The task's attributes that make good query filters (categorical, more than one value)."""
    return [a for a in task.attributes
            if a in data.meta and task_attribute_is_categorical(task, data, a) and len(set(map(str, data.meta[a]))) > 1]


def example_attribute(task, data) -> str | None:
    """The attribute that names what an image shows (activity, room, category): the task's
    first categorical one with text values, else its first categorical one."""
    categorical = categorical_attributes(task, data)
    return next((a for a in categorical if isinstance(data.meta[a][0], str)), categorical[0] if categorical else None)


def example_indices(task, data, n: int = 6) -> list[int]:
    """``n`` images that show a task's range: the first image of each value of
    ``example_attribute`` in turn, then the following images."""
    attribute = example_attribute(task, data)
    first_of_value: dict[str, int] = {}
    for index, value in enumerate(data.meta[attribute] if attribute else []):
        first_of_value.setdefault(str(value), index)
    picks = list(first_of_value.values())[:n]
    return picks + [i for i in range(len(data)) if i not in picks][: n - len(picks)]


def query_caption(task, data, index: int) -> str:
    """A one-line description of an image from its meta (activity, room type, first caption …)."""
    meta = image_meta(data, index)
    if "captions" in meta and len(meta["captions"]):
        return str(meta["captions"][0])
    return " · ".join(f"{a.replace('_', ' ')} {format_value(meta[a])}" for a in task.attributes[:2] if a in meta)


def format_value(value) -> str:
    """A meta value as shown on badges and in descriptions (floats to 2 decimals)."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def attribute_line(task, meta: dict) -> str:
    """Markdown: the task's attributes of one image, bold names, on one line."""
    return " · ".join(f"**{a.replace('_', ' ')}** {format_value(meta[a])}" for a in task.attributes if a in meta)


def image_facts(task, data, index: int) -> str:
    """Markdown: every attribute of one image (bold names), then its captions as a list."""
    meta = image_meta(data, index)
    facts = attribute_line(task, meta)
    captions = meta.get("captions")
    if captions is not None and len(captions):
        facts += "\n\n" + "\n".join(f"- {caption}" for caption in captions)
    return facts


def compare_scores(catalog, query_index: int, model_ids: list[str], k: int) -> dict[str, dict]:
    """Per model: nDCG@k and mean label distance@k of one stored query, plus the oracle's mld@k."""
    scores = {m: catalog.query_scores(m, query_index, k) for m in model_ids}
    oracle = catalog.oracle(query_index, k)
    scores["oracle"] = {"ndcg": 1.0, "mld": float(np.mean([h.label_distance for h in oracle]))}
    return scores


@dataclass
class UploadResult:
    """What the Upload page shows for one image."""

    image: np.ndarray  # (S, S, 3) uint8, the square crop the models saw
    original_size: tuple[int, int]
    hits: dict
    timings_ms: dict
    positions: dict = field(default_factory=dict)  # model id -> (2,) map position or None
    typicality: object = None  # ood.Typicality: how typical the image is of the gallery (None: no ImageNet model)


_backbone_lock = threading.Lock()


def ensure_backbone() -> None:
    """Load the shared backbone once (thread-safe); Upload calls it early in a thread so the
    first uploaded image does not wait for the weights."""
    from . import build

    with _backbone_lock:
        build.shared_backbone()


_warm_thread: threading.Thread | None = None


def warm_backbone_async() -> threading.Thread:
    """Start loading the backbone in a background thread, once per process."""
    global _warm_thread
    with _backbone_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=ensure_backbone, name="warm-backbone", daemon=True)
            _warm_thread.start()
    return _warm_thread


def query_with_image_bytes(catalog, data: bytes, model_ids: list[str], k: int = 10, place_on: list[str] | None = None) -> UploadResult:
    """Decode an uploaded file and retrieve with every model; ImageInputError on bad bytes.

    The backbone runs once; each model then embeds the features with its head and searches
    its index (as ``Catalog.hits_for_image``). place_on: models whose gallery map gets the
    query's position (default: ``model_ids``). Timings in ms: decode, backbone, per model,
    total.
    """
    from .retrieval import Hit

    start = time.perf_counter()
    pil = decode_image(data)
    array = to_square_array(pil, catalog.gallery.images.shape[1])
    timings = {"decode_ms": (time.perf_counter() - start) * 1000}
    ensure_backbone()
    timings["backbone_ms"] = 0.0
    features = catalog.feature_function(array[None], timings)
    place_on = list(model_ids) if place_on is None else list(place_on)
    hits, positions = {}, {}
    for model_id in dict.fromkeys([*model_ids, *place_on]):
        step, backbone_before = time.perf_counter(), timings["backbone_ms"]
        embedding = catalog.models[model_id].embed_images(array[None], features)
        if model_id in model_ids:
            distances, ids = catalog.search(model_id, embedding, k)
            hits[model_id] = [Hit(int(i), float(d), None) for d, i in zip(distances[0], ids[0])]
        if model_id in place_on:
            xy = catalog.place(model_id, embedding)
            positions[model_id] = None if xy is None else np.asarray(xy)[0]
        timings[f"{model_id}_ms"] = (time.perf_counter() - step) * 1000 - (timings["backbone_ms"] - backbone_before)
    from .ood import has_reference, typicality

    typical = typicality(catalog, features()) if has_reference(catalog) else None
    timings["total_ms"] = (time.perf_counter() - start) * 1000
    return UploadResult(array, pil.size, hits, timings, positions, typical)


def text_model_ids(catalog) -> list[str]:
    """Models that embed text into the image space (cross-modal); empty when none is built."""
    return list(catalog.text_model_ids()) if hasattr(catalog, "text_model_ids") else []


# ------------------------------------------------------------------------ projections
def projection_frame(catalog, model_id: str, colour_by: str | None = None) -> pd.DataFrame | None:
    """The gallery map of one model: x, y, index and every short meta attribute (None if no map)."""
    model = catalog.models[model_id]
    if model.projection is None:
        return None
    coords = np.asarray(model.projection.coords)
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "index": np.arange(len(coords))})
    for attribute in catalog.task.attributes:
        if attribute in catalog.gallery.meta:
            values = catalog.gallery.meta[attribute]
            frame[attribute] = [round(v, 3) if isinstance(v, float) else v for v in values]
    if colour_by and colour_by in frame and task_attribute_is_categorical(catalog.task, catalog.gallery, colour_by):
        frame[colour_by] = frame[colour_by].astype(str)
    return frame


def is_categorical(frame: pd.DataFrame, attribute: str) -> bool:
    """Whether a projection frame's column is drawn with discrete colours (see projection_frame)."""
    return not pd.api.types.is_numeric_dtype(frame[attribute])


def stored_query_position(catalog, model_id: str, query_index: int):
    """Where stored query ``query_index`` falls on ``model_id``'s gallery map, or None."""
    model = catalog.models[model_id]
    xy = catalog.place(model_id, model.query[query_index : query_index + 1])
    return None if xy is None else np.asarray(xy)[0]


def selected_indices(selection) -> list[int]:
    """Gallery indices from a plotly selection event (``st.plotly_chart(on_select=...)``).

    Points carry the gallery index as ``customdata[0]``; the query marker (no customdata) and
    duplicates are dropped; order follows the selection.
    """
    points = (selection or {}).get("selection", {}).get("points", []) if isinstance(selection, dict) else \
        getattr(getattr(selection, "selection", None), "points", []) or []
    out = []
    for point in points:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if custom is None or (hasattr(custom, "__len__") and len(custom) == 0):
            continue
        index = int(custom[0] if hasattr(custom, "__len__") else custom)
        if index not in out:
            out.append(index)
    return out


def updated_selection(held: tuple[int, list[int]] | None, side: int, indices: list[int]):
    """The selection to show, ``(map side, gallery indices)`` or None, after map ``side``
    reports ``indices``: a non-empty selection replaces the one held (on any map); emptying
    the map that holds it clears it; emptying another map changes nothing."""
    if indices:
        return side, list(indices)
    return None if held is None or held[0] == side else held


def page_of(items: list, page: int, per_page: int) -> tuple[list, int, int]:
    """Items of 1-based ``page`` (clamped to the pages there are), the page and the page count."""
    pages = max(1, -(-len(items) // per_page))
    page = min(max(int(page), 1), pages)
    return items[(page - 1) * per_page: page * per_page], page, pages


# ---------------------------------------------------------------------------- benchmarks
HEADLINE_KEYS = ("ndcg@10", "ndcg@100", "mld@10", "gap_closed@10", "spearman")
HEADLINE_NAMES = {"ndcg@10": "nDCG@10", "ndcg@100": "nDCG@100", "mld@10": "mld@10", "gap_closed@10": "gap closed@10",
                  "spearman": "Spearman ρ"}


def metrics_table(catalog, dim: int | None = None) -> pd.DataFrame:
    """One row per model of the catalog: model, method, family, dim, seed, origin and the
    headline metrics from its stored ``meta["metrics"]`` (evaluated at build / training time).

    dim: keep only models of this embedding width (the ImageNet baseline is always kept).
    """
    rows = []
    for model_id in catalog.model_ids():
        meta = catalog.models[model_id].meta
        if dim is not None and meta["method"] not in ("imagenet", "clip") and meta["dim"] != dim:
            continue
        metrics = meta.get("metrics", {})
        row = {"model": model_id, "method": meta["method"], "family": method_family(meta["method"]),
               "dim": meta["dim"], "seed": meta.get("seed", 0), "origin": meta.get("origin", "build")}
        for key in HEADLINE_KEYS:
            row[HEADLINE_NAMES[key]] = metrics.get(key, np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def method_summary(catalog, dim: int) -> pd.DataFrame:
    """Headline metrics per method at width ``dim`` from the build's models: mean over seeds,
    with the standard deviation (ddof 1) as ``<metric> ±`` columns when there are several."""
    table = metrics_table(catalog, dim)
    if table.empty:
        return table
    table = table[table["origin"] == "build"]
    names = [HEADLINE_NAMES[k] for k in HEADLINE_KEYS]
    grouped = table.groupby("method", sort=False)
    out = grouped[names].mean()
    spread = grouped[names].std(ddof=1).fillna(0.0)
    for name in names:
        out[f"{name} ±"] = spread[name]
    out.insert(0, "seeds", grouped.size())
    out.insert(0, "family", [method_family(m) for m in out.index])
    return out.reset_index()


def curve_frame(catalog, dim: int) -> pd.DataFrame:
    """Long table (method, model, K, metric, value) of nDCG@K and mld@K over every stored K,
    for the build's models of width ``dim`` (mean over seeds) and the ImageNet baseline."""
    rows = []
    for model_id in catalog.model_ids():
        meta = catalog.models[model_id].meta
        if meta.get("origin", "build") != "build":
            continue
        if meta["method"] not in ("imagenet", "clip") and meta["dim"] != dim:
            continue
        for key, value in meta.get("metrics", {}).items():
            if "@" not in key:
                continue
            metric, k = key.split("@")
            rows.append({"method": meta["method"], "model": model_id, "K": int(k), "metric": metric, "value": float(value)})
    frame = pd.DataFrame(rows, columns=["method", "model", "K", "metric", "value"])
    if frame.empty:
        return frame
    return frame.groupby(["method", "metric", "K"], as_index=False, sort=False)["value"].mean()


def ablation_frame(catalog, methods=("binary_triplet", "log_ratio"), key: str = "ndcg@10") -> pd.DataFrame:
    """nDCG@10 (or ``key``) against embedding width for ``methods``: mean and std over seeds."""
    rows = []
    for model_id in catalog.model_ids():
        meta = catalog.models[model_id].meta
        if meta["method"] in methods and meta.get("origin", "build") == "build" and key in meta.get("metrics", {}):
            rows.append({"method": meta["method"], "dim": int(meta["dim"]), "value": float(meta["metrics"][key])})
    frame = pd.DataFrame(rows, columns=["method", "dim", "value"])
    if frame.empty:
        return frame.assign(std=[])
    grouped = frame.groupby(["method", "dim"], as_index=False)["value"]
    out = grouped.mean()
    out["std"] = grouped.std(ddof=1)["value"].fillna(0.0).to_numpy()
    out["seeds"] = grouped.size()["size"].to_numpy()
    return out.sort_values(["method", "dim"]).reset_index(drop=True)


def bench_method_table(bench: dict, task: str) -> pd.DataFrame | None:
    """The bench JSON's headline table of one task: value ± std strings per method."""
    methods = (bench.get("tasks", {}).get(task) or {}).get("methods")
    if not methods:
        return None
    rows = []
    for method, summary in methods.items():
        row = {"method": method, "family": method_family(method), "seeds": summary.get("seeds", 1)}
        for key in HEADLINE_KEYS:
            row[HEADLINE_NAMES[key]] = _with_std(summary, key)
        rows.append(row)
    return pd.DataFrame(rows)


def bench_ablation_table(bench: dict, task: str, key: str = "ndcg@10") -> pd.DataFrame | None:
    ablation = (bench.get("tasks", {}).get(task) or {}).get("dim_ablation")
    if not ablation:
        return None
    from .bench import dimensions

    rows = [{"method": method, **{f"d={d}": _with_std(by_dim[str(d)], key) for d in dimensions(ablation) if str(d) in by_dim}}
            for method, by_dim in ablation.items()]
    return pd.DataFrame(rows)


def bench_tuning_table(bench: dict, task: str) -> pd.DataFrame | None:
    """The bench JSON's tuning results of one task: one row per method and grid setting."""
    from .methods import describe_setting

    tuning = (bench.get("tuning") or {}).get(task)
    if not tuning:
        return None
    rows = [{"method": method, "setting": describe_setting(setting), "validation nDCG@10": round(score, 4),
             "chosen": "✓" if i == result["chosen"] else ""}
            for method, result in tuning.items() for i, (setting, score) in enumerate(zip(result["grid"], result["scores"]))]
    return pd.DataFrame(rows)


def _with_std(summary: dict, key: str) -> str:
    if key not in summary:
        return "–"
    std = summary.get(f"{key}_std", 0.0)
    return f"{summary[key]:.3f} ± {std:.3f}" if summary.get("seeds", 1) > 1 else f"{summary[key]:.3f}"


def lab_comparison(catalog, model_id: str) -> pd.DataFrame:
    """A lab model's headline metrics next to the build's models of the same width."""
    dim = catalog.models[model_id].meta["dim"]
    table = metrics_table(catalog, dim)
    keep = (table["origin"] == "build") | (table["model"] == model_id)
    return table[keep].reset_index(drop=True)


# ------------------------------------------------------------------------------ training
def loss_sparkline(losses, total_steps: int, colour: str = "#6d28d9", width: int = 640, height: int = 220) -> str:
    """An inline SVG line chart of per-step losses (x: step 1..total_steps, y: loss, 0 at the bottom).

    Cheap to build (a string, no plotting library): the Training lab redraws it twice a second
    while a model trains in a thread of the same process, and heavy Python in the polling loop
    would slow that thread down through the GIL.
    """
    pad_left, pad_bottom, pad_top, pad_right = 46, 24, 10, 10
    plot_w, plot_h = width - pad_left - pad_right, height - pad_top - pad_bottom
    values = np.asarray(losses, dtype=np.float64)
    values = values[np.isfinite(values)]
    top = float(values.max()) if len(values) else 1.0
    top = top * 1.05 if top > 0 else 1.0
    total = max(int(total_steps), 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'style="max-width:{width}px;font:11px sans-serif;fill:#5b5570">']
    for fraction in (0.0, 0.5, 1.0):
        y = pad_top + plot_h * (1 - fraction)
        parts.append(f'<line x1="{pad_left}" x2="{width - pad_right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eeeaf6"/>')
        parts.append(f'<text x="{pad_left - 6}" y="{y + 4:.1f}" text-anchor="end">{top * fraction:.3g}</text>')
    for step in (1, total // 2, total):
        x = pad_left + plot_w * (step - 1) / (total - 1)
        parts.append(f'<text x="{x:.1f}" y="{height - 6}" text-anchor="middle">{step}</text>')
    if len(values):
        xs = pad_left + plot_w * np.arange(len(values)) / (total - 1)
        ys = pad_top + plot_h * (1 - values / top)
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round"/>')
    parts.append("</svg>")
    return "".join(parts)
