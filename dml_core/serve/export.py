"""Downloads: retrieval results as CSV / JSON, metric tables as CSV, embeddings as Projector TSV.

Result records are flat dicts (one per model and rank), so the same list becomes a CSV row
set or a JSON array; the Upload and Compare pages and the CLI build them the same way:

    records = results_records(catalog, hits, query={"query": "photo.jpg"}, scores={...})
    records_csv(records), records_json(records, task="pose", k=10)

``projector_files`` writes what the TensorBoard Embedding Projector (projector.tensorflow.org,
"Load") reads: ``tensors.tsv`` (one embedding per line), ``metadata.tsv`` (a header row of
the gallery's attributes, then one line per image), ``sprite.jpg`` (the gallery's thumbnails)
and ``projector_config.pbtxt`` tying them together.
"""
from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

PROJECTOR_FILES = ("tensors.tsv", "metadata.tsv", "sprite.jpg", "projector_config.pbtxt")
#: The Projector refuses sprites larger than this (px per side).
MAX_SPRITE_SIDE = 8192
SPRITE_TILE = 64


def plain(value):
    """A JSON- and CSV-safe Python value from numpy scalars, arrays and floats (NaN → None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def gallery_attributes(catalog, index: int) -> dict:
    """The gallery image's task attributes (activity, yaw, …) and its first caption, if any."""
    meta = catalog.gallery.meta
    out = {a: plain(meta[a][index]) for a in catalog.task.attributes if a in meta and a != "captions"}
    if "captions" in meta and len(meta["captions"][index]):
        out["caption"] = str(meta["captions"][index][0])
    return out


def results_records(catalog, hits: dict, query: dict | None = None, scores: dict | None = None) -> list[dict]:
    """One flat record per model and rank.

    hits: model id → ranked ``serve.catalog.Hit`` list. query: columns that describe the query,
    repeated on every record (its name, its typicality …). scores: model id → that model's
    scores for this query (nDCG@K, mld@K …), repeated on the model's records. Each record:
    query columns, ``model``, ``method``, ``rank``, ``gallery_id``, ``distance`` (embedding),
    ``label_distance`` (None when the query has no label), the model's scores, then the
    gallery image's attributes.
    """
    records = []
    for model_id, model_hits in hits.items():
        model_scores = {k: plain(v) for k, v in (scores or {}).get(model_id, {}).items()}
        method = catalog.models[model_id].meta["method"] if model_id in catalog.models else model_id
        for rank, hit in enumerate(model_hits, 1):
            records.append({
                **{k: plain(v) for k, v in (query or {}).items()}, "model": model_id, "method": method, "rank": rank,
                "gallery_id": int(hit.gallery_index), "distance": plain(float(hit.distance)),
                "label_distance": None if hit.label_distance is None else plain(float(hit.label_distance)),
                **model_scores, **gallery_attributes(catalog, hit.gallery_index),
            })
    return records


def records_csv(records: list[dict]) -> str:
    """CSV text with a header of every key in order of first appearance (empty cell: missing or None)."""
    columns = list(dict.fromkeys(key for record in records for key in record))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for record in records:
        writer.writerow({k: "" if v is None else v for k, v in plain(record).items()})
    return buffer.getvalue()


def records_json(records: list[dict], **context) -> str:
    """``{**context, "results": records}`` as indented JSON (numpy values made plain, NaN → null)."""
    return json.dumps({**plain(context), "results": plain(records)}, indent=2, ensure_ascii=False)


def frame_csv(frame) -> str:
    """A metric table (pandas DataFrame) as CSV text, full precision, no index."""
    return frame.to_csv(index=False, lineterminator="\n")


# ----------------------------------------------------------------------- per-query scores
#: What ``evaluate --per-query`` records for every query.
PER_QUERY_KEYS = ("ndcg@10", "mld@10", "gap_closed@10", "ndcg_norm@10", "spearman")


def per_query_evaluation(model, label_dist: np.ndarray, ks=(10, 100)) -> dict:
    """One model's scores per stored query, as a person searching its index gets them.

    nDCG@K, mld@K, gap closed@K and normalised nDCG@K come from the ranking the model's search
    backend returns (its top max(ks)); Spearman ρ from the embedding distances to the whole
    gallery (no index returns a whole ordering). Returns ``per_query`` (key → (Q,) array),
    ``means`` (key → mean over the queries where it is defined, as ``evaluate.metrics.evaluate``) and
    ``reference`` (what random retrieval and the oracle score on the same queries).
    """
    from dml_core.evaluate.metrics import evaluate_distances, spearman
    from dml_core.search.distances import embedding_distance
    from dml_core.search.interface import search

    label_dist = np.asarray(label_dist, dtype=np.float64)
    want = min(max(ks), label_dist.shape[1])
    _, ids = search(model.index, model.query, want)
    if ids.shape[1] < want or np.any(ids < 0):
        raise ValueError(f"the search index of {model.id} returned fewer than {want} results for some queries")
    # The backend's ranking as distances (its rank; everything it did not return ranks after),
    # so the metrics are those of exactly the list a person sees.
    served = np.full(label_dist.shape, float(want))
    np.put_along_axis(served, ids, np.broadcast_to(np.arange(want, dtype=np.float64), ids.shape), axis=1)
    result = evaluate_distances(served, label_dist, ks, metric=model.meta.get("metric", "precomputed"))
    per_query = {k: v for k, v in result["per_query"].items() if k != "spearman"}
    per_query["spearman"] = np.asarray(spearman(embedding_distance(model.query, model.gallery, model.meta["metric"]), label_dist))
    means = {k: float(np.nanmean(v)) if np.any(~np.isnan(v)) else float("nan") for k, v in per_query.items()}
    return {"per_query": per_query, "means": means,
            "reference": {name: result[name] for name in ("random", "oracle")}}


def query_records(per_query: dict, keys=PER_QUERY_KEYS) -> list[dict]:
    """``per_query_evaluation``'s arrays as one record per query: ``{"query": i, key: value …}``
    (a score undefined for that query is None)."""
    size = len(next(iter(per_query.values())))
    return [{"query": i, **{k: plain(float(per_query[k][i])) for k in keys if k in per_query}} for i in range(size)]


# ------------------------------------------------------------------------------ projector
def _tsv_cell(value) -> str:
    text = "" if value is None else str(plain(value))
    return " ".join(text.split())  # tabs and newlines would break the row


def metadata_tsv(catalog) -> str:
    """Header row ``gallery_id`` + the gallery's attributes, then one row per gallery image."""
    rows = [{"gallery_id": i, **gallery_attributes(catalog, i)} for i in range(len(catalog.gallery))]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["\t".join(columns)] + ["\t".join(_tsv_cell(row.get(c)) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def tensors_tsv(embeddings: np.ndarray) -> str:
    embeddings = np.asarray(embeddings, dtype=np.float32)
    return "\n".join("\t".join(f"{v:.6g}" for v in row) for row in embeddings) + "\n"


def sprite_jpeg(images, tile: int = SPRITE_TILE) -> tuple[bytes, int]:
    """The images as one square grid for the Projector, and the tile size used (smaller than
    ``tile`` when the grid would exceed ``MAX_SPRITE_SIDE``). JPEG: the procedural images'
    noise makes a PNG sheet 5x larger (3 MB against 0.6 MB for 500 tiles)."""
    from PIL import Image

    n = len(images)
    per_row = max(1, math.ceil(math.sqrt(n)))
    tile = max(1, min(tile, MAX_SPRITE_SIDE // per_row))
    sheet = Image.new("RGB", (per_row * tile, per_row * tile), "white")
    for i in range(n):
        thumb = Image.fromarray(np.asarray(images[i], dtype=np.uint8)).resize((tile, tile), Image.Resampling.BILINEAR)
        sheet.paste(thumb, ((i % per_row) * tile, (i // per_row) * tile))
    buffer = io.BytesIO()
    sheet.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue(), tile


def projector_config(tensor_name: str, tile: int | None) -> str:
    sprite = (f'  sprite {{\n    image_path: "sprite.jpg"\n    single_image_dim: {tile}\n    single_image_dim: {tile}\n  }}\n'
              if tile else "")
    name = tensor_name.replace("\\", "\\\\").replace('"', '\\"')
    return (f'embeddings {{\n  tensor_name: "{name}"\n  tensor_path: "tensors.tsv"\n'
            f'  metadata_path: "metadata.tsv"\n{sprite}}}\n')


def projector_files(catalog, model_id: str, sprite: bool = True) -> dict[str, bytes]:
    """The Projector files of one model's gallery embeddings (names: ``PROJECTOR_FILES``)."""
    if model_id not in catalog.models:
        raise ValueError(f"unknown model {model_id!r} for {catalog.task_name}; built: {', '.join(catalog.model_ids())}")
    files = {"tensors.tsv": tensors_tsv(catalog.models[model_id].gallery).encode(),
             "metadata.tsv": metadata_tsv(catalog).encode()}
    tile = None
    if sprite:
        files["sprite.jpg"], tile = sprite_jpeg(catalog.gallery.images)
    files["projector_config.pbtxt"] = projector_config(f"{catalog.task_name}/{model_id}", tile).encode()
    return files


def write_projector(catalog, model_id: str, out_dir: str | Path, sprite: bool = True) -> list[Path]:
    """Write ``projector_files`` into ``out_dir`` (created); returns the paths written."""
    from dml_core.core.store import atomic_write_bytes

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in projector_files(catalog, model_id, sprite).items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    return written


def projector_zip(catalog, model_id: str, sprite: bool = True) -> bytes:
    """``projector_files`` in one zip (folder ``<task>-<model>/``), for a browser download."""
    folder = f"{catalog.task_name}-{model_id}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in projector_files(catalog, model_id, sprite).items():
            archive.writestr(f"{folder}/{name}", data)
    return buffer.getvalue()


def read_tensors_tsv(text: str) -> np.ndarray:
    """Parse ``tensors.tsv`` back into a float32 (N, D) array (for checks and notebooks)."""
    rows = [line.split("\t") for line in text.splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float32)
