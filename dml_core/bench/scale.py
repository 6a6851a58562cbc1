"""``python -m dml_core scale``: build and query search indexes over N vectors of dimension D.

Backends measured (``--backends``): FAISS flat (exact, the reference), FAISS HNSW, FAISS
IVF-PQ, and Milvus FLAT / HNSW, in a Milvus Lite file made for the run (or on the server of
``--milvus-uri``). All use the settings of :mod:`dml_core.search`, the ones the app uses.

**The vectors.** When a model of dimension D is built (``--task`` / ``--model`` pick one; by
default the first of log_ratio, binary_triplet, ... at d = D on pose, layout, caption), its G
gallery embeddings are the seeds of the set and its query embeddings the queries. The other
N - G points lie between real embeddings, where a larger gallery of the same task would put
its images (continuous labels vary continuously): each is ``(1 - t) g_i + t g_j + noise``, with
g_i a gallery embedding chosen uniformly at random, g_j one of its 10 nearest other gallery
embeddings (uniformly), t ~ U(0, 1) and isotropic Gaussian noise of standard deviation
``sigma = 0.05 * median nearest-neighbour distance in the gallery / sqrt(D)`` per coordinate;
L2-normalised for a cosine model; all seeded. Queries beyond the model's stored ones are
copies jittered by the same noise. When no such model is built, a seeded synthetic clustered
set of low intrinsic dimension stands in (the JSON says which): 1,000 centres drawn from
N(0, I_16); each point a random centre plus N(0, 0.35^2 I_16), mapped to D dimensions by a
fixed random linear map, plus N(0, 0.01^2 I_D), L2-normalised, cosine metric; its queries are
drawn the same way (not in the set).

**The measures**, per backend: build seconds (FAISS: training and adding; Milvus: insert,
flush, index and load); index bytes (FAISS: the serialised index; Milvus Lite: its data folder
on disk; a server's is not visible from here); resident memory (RSS) growth of this process
across the build, after freeing the previous backend (Milvus Lite runs in this process; a
server's memory is its own); query latency p50 / p95 in ms, one query at a time at k = 10 as the
app searches (FAISS on one thread), after 3 warm-up queries; recall@10, the share of FAISS
flat's top 10 that the backend also returns, averaged over the queries. FAISS HNSW is then
queried again at each efSearch of ``EF_SWEEP`` (recall and p50 only): the trade its width makes.

Results merge into the JSON file (one run per N, D and data source, so a 100 k and a 1 M run
sit side by side); ``bench.report.write_markdown`` renders them as the "Scale" section of BENCHMARKS.md.
"""
from __future__ import annotations

import ctypes
import gc
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from dml_core.core.store import ArtifactStore, atomic_write_json
from dml_core.core.vocabulary import ordered_methods
from dml_core.learn.methods import COMPARED
from dml_core.search.backends import parse_backend
from dml_core.search.faiss_index import (
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    IVF_PROBES,
    REFINE_FACTOR,
    Index,
    build_index,
    hnsw_ef_search,
    ivf_lists,
    new_index,
    pq_layout,
)
from dml_core.search.interface import SearchIndex, prepare_vectors, search

BACKENDS = ("faiss-flat", "faiss-hnsw", "faiss-ivfpq", "milvus-flat", "milvus-hnsw")
DEFAULT_BACKENDS = ("faiss-flat", "faiss-hnsw", "faiss-ivfpq", "milvus-flat")
MIN_N, MAX_N = 1_000, 50_000_000
WARM_UP = 3
ADD_CHUNK = 50_000
SYNTHETIC_CENTRES, SYNTHETIC_SPREAD, SYNTHETIC_LATENT, SYNTHETIC_NOISE = 1_000, 0.35, 16, 0.01
SEGMENT_NEIGHBOURS = 10
NOISE_OF_NN_GAP = 0.05


class ScaleInputError(ValueError):
    """A bad argument of ``scale`` (one line)."""


# ------------------------------------------------------------------------------- data
def find_model(store: ArtifactStore, dim: int, task: str | None = None, model: str | None = None) -> tuple[str, str] | None:
    """(task, model id) of a built model of dimension ``dim``, or None when there is none."""
    from dml_core.data.tasks import TASK_NAMES

    tasks = [task] if task else list(TASK_NAMES)
    for name in tasks:
        built = store.list(name, "models")
        if model:
            if model not in built:
                raise ScaleInputError(f"model {model!r} is not built for {name}; built: {', '.join(built) or 'none'}")
            found = store.manifest(name, "models", model)["meta"].get("dim")
            if found != dim:
                raise ScaleInputError(f"model {model} has d = {found}, not --dim {dim}")
            return name, model
        candidates = [m for m in built if store.manifest(name, "models", m)["meta"].get("dim") == dim]
        for method in ordered_methods(COMPARED):
            chosen = sorted(m for m in candidates if m.startswith(f"{method}-"))
            if chosen:
                return name, chosen[0]
        if candidates:
            return name, sorted(candidates)[0]
    if task:
        raise ScaleInputError(f"no model of d = {dim} is built for {task}")
    return None


def gallery_neighbours(gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(the k nearest other gallery embeddings of each, Euclidean distance to the nearest)."""
    _, ids = search(build_index(gallery, "l2"), gallery, k + 1)
    others = np.array([[j for j in row if j != i][:k] for i, row in enumerate(ids)])
    gaps = np.linalg.norm(gallery - gallery[others[:, 0]], axis=1)
    return others, gaps


def extend_around(gallery: np.ndarray, n: int, metric: str, seed: int = 0) -> tuple[np.ndarray, float]:
    """``gallery`` followed by n - len(gallery) points between gallery embeddings and their
    nearest others (see the module docstring); returns (points (n, D) float32, sigma)."""
    rng = np.random.default_rng(seed)
    gallery = np.ascontiguousarray(gallery, dtype=np.float32)
    if metric == "cosine":
        gallery = prepare_vectors(gallery, metric)
    dim, k = gallery.shape[1], min(SEGMENT_NEIGHBOURS, len(gallery) - 1)
    others, gaps = gallery_neighbours(gallery, k)
    sigma = NOISE_OF_NN_GAP * float(np.median(gaps)) / np.sqrt(dim)
    out = np.empty((n, dim), np.float32)
    keep = min(n, len(gallery))
    out[:keep] = gallery[:keep]
    for start in range(keep, n, 100_000):  # chunks bound the temporaries
        stop = min(n, start + 100_000)
        rows = stop - start
        first = rng.integers(len(gallery), size=rows)
        second = others[first, rng.integers(k, size=rows)]
        along = rng.random((rows, 1), dtype=np.float32)
        out[start:stop] = ((1 - along) * gallery[first] + along * gallery[second]
                           + sigma * rng.standard_normal((rows, dim), dtype=np.float32))
    if metric == "cosine":
        out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out, float(sigma)


def synthetic_clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Seeded clustered points of low intrinsic dimension on the unit sphere (module docstring)."""
    rng = np.random.default_rng(seed)
    latent = min(SYNTHETIC_LATENT, dim)
    centres = rng.standard_normal((SYNTHETIC_CENTRES, latent), dtype=np.float32)
    lift = rng.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        z = (centres[rng.integers(SYNTHETIC_CENTRES, size=stop - start)]
             + SYNTHETIC_SPREAD * rng.standard_normal((stop - start, latent), dtype=np.float32))
        out[start:stop] = z @ lift + SYNTHETIC_NOISE * rng.standard_normal((stop - start, dim), dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_vectors(store: ArtifactStore, n: int, dim: int, queries: int, task: str | None = None,
                 model: str | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str, dict]:
    """(points (n, dim), queries (q, dim), metric, description of where they came from)."""
    found = find_model(store, dim, task, model)
    if found is None:
        points = synthetic_clustered(n + queries, dim, seed)
        return points[:n], points[n:], "cosine", {
            "source": "synthetic", "centres": SYNTHETIC_CENTRES, "spread": SYNTHETIC_SPREAD, "latent": SYNTHETIC_LATENT,
            "noise": SYNTHETIC_NOISE, "seed": seed,
            "why": f"no model of d = {dim} is built"}
    task, model = found
    meta = store.manifest(task, "models", model)["meta"]
    gallery = store.load_array(task, "models", model, name="gallery.npy")
    stored_queries = store.load_array(task, "models", model, name="query.npy")
    points, sigma = extend_around(gallery, n, meta["metric"], seed)
    # Queries: the model's own (real, not in the gallery); more than it has are jittered copies.
    rng = np.random.default_rng(seed + 1)
    picked = stored_queries[np.arange(queries) % len(stored_queries)].astype(np.float32)
    repeated = np.arange(queries) >= len(stored_queries)
    picked[repeated] += sigma * rng.standard_normal((int(repeated.sum()), dim), dtype=np.float32)
    return points, picked, meta["metric"], {
        "source": "model", "task": task, "model": model, "gallery": int(len(gallery)),
        "stored_queries": int(len(stored_queries)), "neighbours": SEGMENT_NEIGHBOURS, "sigma": round(sigma, 6), "seed": seed}


# --------------------------------------------------------------------------- measures
def _proc_kib(path: str, field: str) -> int | None:
    """A ``field: N kB`` line of a Linux /proc file, in bytes (None where there is none)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """Resident memory of this process now (0 where /proc is not readable)."""
    return _proc_kib("/proc/self/status", "VmRSS") or 0


def available_bytes() -> int | None:
    return _proc_kib("/proc/meminfo", "MemAvailable")


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back, so the next RSS growth is the next build's."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def query_latencies(index: SearchIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, list[float]]:
    """(top-k ids (q, k), per-query ms), one query at a time after a few warm-up queries."""
    for row in queries[:WARM_UP]:
        search(index, row[None], k)
    ids = np.full((len(queries), k), -1, np.int64)
    times = []
    for row, query in enumerate(queries):
        start = time.perf_counter()
        _, found = search(index, query[None], k)
        times.append((time.perf_counter() - start) * 1000)
        ids[row, :found.shape[1]] = found[0]
    return ids, times


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / k for a, b in zip(found, exact)]))


def build_faiss(points: np.ndarray, metric: str, kind: str, bar) -> Index:
    """``search.faiss_index.build_index``'s index, the vectors added in chunks (progress for millions)."""
    index = new_index(points, metric, kind)
    for start in range(0, len(points), ADD_CHUNK):
        stop = min(len(points), start + ADD_CHUNK)
        index.faiss_index.add(prepare_vectors(points[start:stop], metric))
        bar.update(stop - start)
    return index


def measure(name: str, build, points: np.ndarray, queries: np.ndarray, exact: np.ndarray | None, k: int) -> tuple[dict, object]:
    release_memory()
    load = round(os.getloadavg()[0], 2)  # other work on the machine slows every figure
    before = rss_bytes()
    start = time.perf_counter()
    with tqdm(total=len(points), desc=f"build {name}", unit="vec", leave=False) as bar:
        index, index_bytes = build(bar)
    build_s = time.perf_counter() - start
    grown = rss_bytes() - before
    ids, times = query_latencies(index, queries, k)
    row = {"name": name, "kind": index.kind, "build_s": round(build_s, 2), "index_bytes": index_bytes,
           "rss_growth_bytes": int(max(grown, 0)), "query_ms_p50": round(float(np.percentile(times, 50)), 3),
           "query_ms_p95": round(float(np.percentile(times, 95)), 3),
           f"recall@{k}": round(recall_at(ids, exact if exact is not None else ids), 4), "load_average": load}
    return row, (index, ids)


#: Other efSearch values FAISS HNSW is queried at after its row is measured: the recall / latency trade.
EF_SWEEP = (64, 128, 256, 512, 1024, 2048, 4096)


def ef_sweep(index: Index, queries: np.ndarray, exact: np.ndarray, k: int) -> list[dict]:
    """Recall@k and p50 latency of a FAISS HNSW index at each of EF_SWEEP (its own efSearch restored)."""
    chosen, out = index.faiss_index.hnsw.efSearch, []
    try:
        for ef_search in EF_SWEEP:
            index.faiss_index.hnsw.efSearch = ef_search
            ids, times = query_latencies(index, queries, k)
            out.append({"efSearch": ef_search, f"recall@{k}": round(recall_at(ids, exact), 4),
                        "query_ms_p50": round(float(np.percentile(times, 50)), 3)})
    finally:
        index.faiss_index.hnsw.efSearch = chosen
    return out


def _faiss_builder(points, metric, kind):
    import faiss

    def build(bar):
        index = build_faiss(points, metric, kind, bar)
        return index, int(faiss.serialize_index(index.faiss_index).nbytes)

    return build


def _milvus_builder(points, metric, kind, target: str):
    from dml_core.search import milvus as milvus_index

    def build(bar):
        client = milvus_index.connect(target)
        name = f"dml_scale_{kind}_{len(points)}_{points.shape[1]}"
        milvus_index.write_collection(client, name, prepare_vectors(points, metric), metric, kind, progress=True)
        client.load_collection(name)
        bar.update(len(points))
        index_bytes = folder_bytes(Path(target)) if milvus_index.is_lite(target) else None
        return milvus_index.MilvusIndex(client, name, metric, kind, len(points), points.shape[1]), index_bytes

    return build


# ----------------------------------------------------------------------------- run
def check_arguments(n: int, dim: int, queries: int, k: int, backends) -> None:
    if not MIN_N <= n <= MAX_N:
        raise ScaleInputError(f"--n must be between {MIN_N:,} and {MAX_N:,}, got {n:,}")
    if not 2 <= dim <= 4096:
        raise ScaleInputError(f"--dim must be between 2 and 4096, got {dim}")
    if not WARM_UP < queries <= 100_000:
        raise ScaleInputError(f"--queries must be between {WARM_UP + 1} and 100,000, got {queries}")
    if not 1 <= k <= min(n, 1024):
        raise ScaleInputError(f"--k must be between 1 and {min(n, 1024)}, got {k}")
    unknown = [b for b in backends if b not in BACKENDS]
    if unknown or not backends:
        raise ScaleInputError(f"unknown backend(s) {', '.join(unknown) or 'none given'}; choose from {', '.join(BACKENDS)}")
    need = n * dim * 4 * 4  # the points, FAISS flat, one approximate index and working copies
    free = available_bytes()
    if free is not None and need > free:
        raise ScaleInputError(f"--n {n:,} at --dim {dim} needs about {need / 2**30:.1f} GiB of memory, "
                              f"{free / 2**30:.1f} GiB are available")


def run_scale(n: int, dim: int, queries: int = 100, k: int = 10, backends=DEFAULT_BACKENDS, store: ArtifactStore | None = None,
              task: str | None = None, model: str | None = None, milvus_uri: str | None = None,
              milvus_max_n: int = 1_000_000, seed: int = 0) -> dict:
    """Measure every backend on one set of N vectors; returns the run (see the module docstring)."""
    backends = list(dict.fromkeys(backends))
    check_arguments(n, dim, queries, k, backends)
    if milvus_uri:
        parse_backend("milvus", milvus_uri)  # a bad URI fails here, in one line, not after the FAISS builds
    store = store or ArtifactStore()
    points, query_vectors, metric, data = make_vectors(store, n, dim, queries, task, model, seed)
    work = Path(tempfile.mkdtemp(prefix="dml-scale-"))
    rows, skipped, exact = [], [], None
    try:
        order = ["faiss-flat", *[b for b in backends if b != "faiss-flat"]]  # flat first: the reference
        for name in tqdm(order, desc=f"scale N={n:,} d={dim}", unit="backend"):
            engine, kind = name.split("-")
            if engine == "milvus" and not milvus_uri and n > milvus_max_n:
                skipped.append({"name": name, "reason": f"Milvus Lite limited to N <= {milvus_max_n:,} (--milvus-max-n)"})
                continue
            if engine == "faiss":
                build = _faiss_builder(points, metric, kind)
            else:
                target = milvus_uri or str(work / "milvus.db")
                from dml_core.search import milvus as milvus_index

                milvus_index.connect(target)  # the client's imports and threads are not the index's memory
                build = _milvus_builder(points, metric, kind, target)
            row, (index, ids) = measure(name, build, points, query_vectors, exact, k)
            if kind == "hnsw":  # the width it was measured at (Milvus is given it with each search)
                row["efSearch"] = int(index.faiss_index.hnsw.efSearch) if engine == "faiss" else hnsw_ef_search(n, k)
            if name == "faiss-hnsw":
                row["ef_sweep"] = ef_sweep(index, query_vectors, exact, k)
            row["where"] = ("in-process" if engine == "faiss" else
                            f"Milvus server {milvus_uri}" if milvus_uri else "Milvus Lite (in-process)")
            if name == "faiss-flat":
                exact = ids
                if "faiss-flat" in backends:
                    rows.append(row)
                del index  # flat's answers are kept, its memory is not
            else:
                rows.append(row)
                if engine == "milvus":
                    index.client.drop_collection(index.collection)
                del index
            release_memory()
    finally:
        if not milvus_uri:
            from dml_core.search import milvus as milvus_index

            milvus_index.disconnect(str(work / "milvus.db"))
        shutil.rmtree(work, ignore_errors=True)
    lists = ivf_lists(n)
    subquantizers, bits = pq_layout(dim, n)
    return {
        "n": n, "dim": dim, "k": k, "queries": int(len(query_vectors)), "metric": metric, "data": data,
        "settings": {"hnsw": {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": hnsw_ef_search(n, k)},
                     "ivfpq": {"lists": lists, "probes": min(lists, IVF_PROBES), "subquantizers": subquantizers,
                               "bits": bits, "refine": f"SQ8 over {REFINE_FACTOR}·k candidates"}},
        "backends": rows, "skipped": skipped,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "created": time.strftime("%Y-%m-%d"),
    }


def merge_run(path: Path, run: dict) -> dict:
    """The scale file at ``path`` with ``run`` added. A run of the same N, D, vectors, queries and
    index settings replaces the earlier one's rows of the backends it measured and keeps the
    others, so backends can be measured in separate invocations (``--backends milvus-flat``
    later, say); any other run of that N, D and source is replaced whole."""
    from dml_core.core.store import read_json

    earlier = read_json(path) or {}
    key = (run["n"], run["dim"], run["data"]["source"])
    runs = []
    for old in earlier.get("runs", []):
        if (old["n"], old["dim"], old["data"]["source"]) != key:
            runs.append(old)
        elif all(old.get(field) == run[field] for field in ("data", "queries", "k", "settings")):
            measured = {row["name"] for row in run["backends"]} | {row["name"] for row in run["skipped"]}
            kept = [row for row in old["backends"] if row["name"] not in measured]
            run = {**run, "backends": sorted([*kept, *run["backends"]], key=lambda row: BACKENDS.index(row["name"])),
                   "skipped": [*(row for row in old.get("skipped", []) if row["name"] not in measured), *run["skipped"]]}
    merged = {"runs": sorted([*runs, run], key=lambda r: (r["dim"], r["n"]))}
    atomic_write_json(path, merged)
    return merged


# ----------------------------------------------------------------------------- report
NAMES = {"faiss-flat": "FAISS flat (exact)", "faiss-hnsw": "FAISS HNSW", "faiss-ivfpq": "FAISS IVF-PQ",
         "milvus-flat": "Milvus FLAT", "milvus-hnsw": "Milvus HNSW"}


def _mib(value) -> str:
    return "–" if value is None else f"{value / 2**20:,.0f} MiB"


def _data_line(run: dict) -> str:
    data = run["data"]
    if data["source"] == "model":
        return (f"{data['gallery']:,} gallery embeddings of `{data['task']}/{data['model']}` extended to {run['n']:,} with "
                f"points between each and its {data['neighbours']} nearest (noise σ = {data['sigma']:.3g}), queried with "
                f"{run['queries']} of its query embeddings")
    return (f"a seeded synthetic clustered set ({data['centres']:,} centres in a {data['latent']}-d latent space, spread "
            f"{data['spread']}), {run['queries']} queries drawn alike ({data['why']})")


def _load_range(run: dict) -> str:
    loads = [row["load_average"] for row in run["backends"] if "load_average" in row]
    return "?" if not loads else f"{min(loads):.1f}" if min(loads) == max(loads) else f"{min(loads):.1f}–{max(loads):.1f}"


def markdown_lines(scale: dict) -> list[str]:
    """The "Scale" section of BENCHMARKS.md for a scale file (``merge_run``'s format)."""
    runs = scale.get("runs", [])
    if not runs:
        return []
    lines = ["## Scale", "",
             "Search indexes over N vectors (`python -m dml_core scale`, see `dml_core/bench/scale.py` for how the vectors are",
             "made and measured). Latency: one query at a time at k = 10, as the app searches; recall@10 against FAISS",
             "flat; RSS: this process's resident memory growth across the build (Milvus Lite runs in-process).", ""]
    for run in runs:
        s, recall = run["settings"], f"recall@{run['k']}"
        lines += [f"### N = {run['n']:,}, d = {run['dim']} ({run['metric']})", "",
                  f"Vectors: {_data_line(run)}. HNSW M = {s['hnsw']['M']}, efConstruction = {s['hnsw']['efConstruction']}, "
                  f"efSearch = {s['hnsw']['efSearch']}; IVF-PQ {s['ivfpq']['lists']:,} lists, {s['ivfpq']['probes']} probed, "
                  f"{s['ivfpq']['subquantizers']} × {s['ivfpq']['bits']}-bit codes, re-ranked by {s['ivfpq'].get('refine', 'nothing')}. Machine: {run['machine']['cpus']} CPUs, "
                  f"1-minute load average when each build began {_load_range(run)}, {run['created']}.", "",
                  "| backend | where | build s | index size | RSS growth | p50 ms | p95 ms | recall@10 |",
                  "|---|---|---|---|---|---|---|---|"]
        for row in run["backends"]:
            name = NAMES.get(row["name"], row["name"]) + (f" (efSearch {row['efSearch']})" if "efSearch" in row else "")
            lines.append(f"| {name} | {row['where']} | {row['build_s']:,.1f} | "
                         f"{_mib(row['index_bytes'])} | {_mib(row['rss_growth_bytes'])} | {row['query_ms_p50']:.2f} | "
                         f"{row['query_ms_p95']:.2f} | {row[recall]:.3f} |")
        lines += [f"- {NAMES.get(s_['name'], s_['name'])}: not run, {s_['reason']}" for s_ in run.get("skipped", [])]
        lines += [f"- {NAMES[row['name']]} at other efSearch, {recall} (p50 ms): "
                  + ", ".join(f"{p['efSearch']}: {p[recall]:.3f} ({p['query_ms_p50']:.2f})" for p in row["ef_sweep"])
                  for row in run["backends"] if "ef_sweep" in row]
        lines.append("")
    return lines


def write_section(markdown_path: Path, scale: dict) -> None:
    """Replace (or add, before "## Speed") the Scale section of an existing BENCHMARKS.md, the rest
    of the file as it is: what ``scale --markdown`` does, so the other sections need no re-run."""
    from dml_core.bench.markdown import replace_section

    replace_section(markdown_path, markdown_lines(scale), before=("## Speed",))
