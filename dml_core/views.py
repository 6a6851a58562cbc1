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
#: Colour per method id (prefix match, longest first). Warm = binary, violet = continuous.
METHOD_COLOURS = {
    "log_ratio": "#6d28d9",
    "dense_triplet": "#a78bfa",
    "binary_triplet_hard": "#c2410c",
    "binary_triplet_semihard": "#fb923c",
    "binary_triplet_easy": "#fdba74",
    "binary_triplet_batch_hard": "#9a3412",
    "binary_triplet": "#ea580c",
    "contrastive": "#f59e0b",
    "cross_modal": "#0d9488",
    "imagenet": "#6b7280",
    "clip": "#475569",
}
FAMILY_OF = {"log_ratio": "continuous", "dense_triplet": "continuous", "binary_triplet": "binary",
             "contrastive": "binary", "cross_modal": "cross-modal", "imagenet": "pretrained", "clip": "pretrained"}

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
    "cross_modal": "Images and caption embeddings trained into one space, so a text finds images.",
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
    name = meta["method"].replace("_", " ")
    parts = [name, f"d={meta['dim']}"]
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
    """Data URIs of a split's images, encoded once (JPEG q90: ~6 KB for a 128 px tile)."""

    def __init__(self, data):
        self.data = data
        self._cache: dict[int, str] = {}
        self._lock = threading.Lock()

    def __getitem__(self, index: int) -> str:
        index = int(index)
        uri = self._cache.get(index)
        if uri is None:
            uri = data_uri(self.data.images[index])
            with self._lock:
                self._cache[index] = uri
        return uri


@dataclass
class Tile:
    """One result tile: image URI, rank, and a badge (text + colour) in its corner."""

    uri: str
    rank: int | None
    badge: str | None = None
    badge_colour: str = "#475569"
    tooltip: str = ""


def hit_tiles(thumbs: Thumbnails, hits, row: np.ndarray | None = None) -> list[Tile]:
    """Tiles for ranked hits; with the query's label-distance ``row`` the badge shows the label
    distance coloured by its rank in the gallery, else the embedding distance in grey."""
    tiles = []
    fractions = distance_fractions(row, [h.label_distance for h in hits]) if row is not None and hits else None
    for rank, hit in enumerate(hits, 1):
        if fractions is not None:
            closer = 100 * (1 - fractions[rank - 1])
            tiles.append(Tile(thumbs[hit.gallery_index], rank, f"{hit.label_distance:.3f}", quality_colour(fractions[rank - 1]),
                              f"gallery #{hit.gallery_index} · label distance {hit.label_distance:.4f} · "
                              f"closer than {closer:.0f}% of the gallery"))
        else:
            tiles.append(Tile(thumbs[hit.gallery_index], rank, f"{hit.distance:.3f}", "#475569",
                              f"gallery #{hit.gallery_index} · embedding distance {hit.distance:.4f}"))
    return tiles


def tiles_html(tiles: list[Tile], min_width: int = 92) -> str:
    """A responsive CSS grid of tiles (one HTML string: one message to the browser)."""
    cells = []
    for tile in tiles:
        rank = f'<span class="bb-badge">{tile.rank}</span>' if tile.rank is not None else ""
        badge = (f'<span class="bb-dist" style="background:{tile.badge_colour}">{tile.badge}</span>'
                 if tile.badge else "")
        cells.append(f'<div class="bb-tile" title="{_escape(tile.tooltip)}"><img src="{tile.uri}" alt="">{rank}{badge}</div>')
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


def attribute_is_categorical(values) -> bool:
    """Text with a few values, or integers with very few (counts, view ids); never floats."""
    values = list(values)
    if not values or any(isinstance(v, float) for v in values):
        return False
    distinct = len(set(map(str, values)))
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return distinct <= MAX_INT_CATEGORIES
    return distinct <= MAX_CATEGORIES


def categorical_attributes(task, data) -> list[str]:
    """The task's attributes that make good query filters (categorical, more than one value)."""
    return [a for a in task.attributes
            if a in data.meta and attribute_is_categorical(data.meta[a]) and len(set(map(str, data.meta[a]))) > 1]


def query_caption(task, data, index: int) -> str:
    """A one-line description of an image from its meta (activity, room type, first caption …)."""
    meta = image_meta(data, index)
    if "captions" in meta and len(meta["captions"]):
        return str(meta["captions"][0])
    parts = []
    for attribute in task.attributes[:2]:
        if attribute in meta:
            value = meta[attribute]
            parts.append(f"{attribute.replace('_', ' ')} {value:.2f}" if isinstance(value, float) else f"{attribute.replace('_', ' ')} {value}")
    return " · ".join(parts)


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
    step = time.perf_counter()
    features = catalog.query_features(array[None])
    timings["backbone_ms"] = (time.perf_counter() - step) * 1000
    place_on = list(model_ids) if place_on is None else list(place_on)
    hits, positions = {}, {}
    for model_id in dict.fromkeys([*model_ids, *place_on]):
        step = time.perf_counter()
        embedding = catalog.models[model_id].embed_features(features)
        if model_id in model_ids:
            distances, ids = catalog.search(model_id, embedding, k)
            hits[model_id] = [Hit(int(i), float(d), None) for d, i in zip(distances[0], ids[0])]
        if model_id in place_on:
            xy = catalog.place(model_id, embedding)
            positions[model_id] = None if xy is None else np.asarray(xy)[0]
        timings[f"{model_id}_ms"] = (time.perf_counter() - step) * 1000
    timings["total_ms"] = (time.perf_counter() - start) * 1000
    return UploadResult(array, pil.size, hits, timings, positions)


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
    if colour_by and colour_by in frame and attribute_is_categorical(catalog.gallery.meta[colour_by]):
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


# ---------------------------------------------------------------------------- benchmarks
HEADLINE_KEYS = ("ndcg@10", "ndcg@100", "mld@10", "spearman")
HEADLINE_NAMES = {"ndcg@10": "nDCG@10", "ndcg@100": "nDCG@100", "mld@10": "mld@10", "spearman": "Spearman ρ"}


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
