"""Gallery copies per search backend: open a model's gallery index, write what is missing.

Which engine serves the library, the CLI and the app is a :class:`~dml_core.search.backends.Backend`, chosen by name
(``faiss``, ``faiss-hnsw``, ``faiss-ivfpq``, ``milvus``, ``milvus-hnsw``): ``--index`` on the
command line, else ``DML_INDEX``; the Milvus server is ``--milvus-uri`` / ``DML_MILVUS_URI``
(a URI alone selects ``milvus``). The model artifacts in the store stay the source of truth:
what a non-default backend searches is a derived copy of a model's ``gallery.npy``, written by
:func:`sync_gallery_indexes` (the build's ``search`` stage) or, when missing or out of date,
by :func:`open_gallery_index` on first use, never loaded when it no longer matches the
gallery's checksum.
"""
from __future__ import annotations

import hashlib

import numpy as np

from dml_core.core.store import ArtifactError, ArtifactStore
from dml_core.search.backends import Backend, backend_from_env
from dml_core.search.faiss_index import build_index, load_index, save_index
from dml_core.search.interface import SearchBackendError, SearchIndex


def check_backend(backend: Backend, store: ArtifactStore) -> None:
    """Fail early, in one line, when the backend cannot be reached (FAISS always can)."""
    if backend.engine == "milvus":
        from dml_core.search.milvus import connect

        connect(backend.milvus_target(store))


def _gallery_record(store: ArtifactStore, task: str, model_id: str) -> tuple[dict, str]:
    """(model meta, SHA-256 of its gallery.npy): what a derived copy must match."""
    manifest = store.manifest(task, "models", model_id)
    try:
        return manifest["meta"], manifest["files"]["gallery.npy"]["sha256"]
    except KeyError:
        raise ArtifactError(f"artifact {task}/models/{model_id}: no gallery.npy in its manifest") from None


def derived_digest(gallery_sha256: str, metric: str, kind: str) -> str:
    """What a derived copy of a gallery is keyed by: its content, metric and index kind."""
    return hashlib.sha256(f"{gallery_sha256}|{metric}|{kind}".encode()).hexdigest()[:16]


def open_gallery_index(store: ArtifactStore, task: str, model_id: str, backend: Backend | None = None,
                       write_missing: bool = True, progress: bool = False) -> SearchIndex:
    """The index a model's gallery is searched with under ``backend`` (default: from the
    environment). A derived copy that is missing or older than the model's gallery is
    (re)written from ``gallery.npy`` when ``write_missing``, else SearchBackendError."""
    return _open_or_write(store, task, model_id, backend or backend_from_env(), write_missing, progress)[0]


def _open_or_write(store: ArtifactStore, task: str, model_id: str, backend: Backend, write_missing: bool,
                   progress: bool) -> tuple[SearchIndex, bool]:
    """(index, whether the derived copy had to be written)."""
    directory = store.path(task, "models", model_id)
    if backend.is_default:
        return load_index(directory / "index.faiss"), False
    meta, gallery_sha = _gallery_record(store, task, model_id)
    digest = derived_digest(gallery_sha, meta["metric"], backend.kind)

    def gallery() -> np.ndarray:
        return store.load_array(task, "models", model_id, name="gallery.npy")

    if backend.engine == "milvus":
        from dml_core.search import milvus as milvus_index

        return milvus_index.open_gallery(backend, store, task, model_id, digest, meta["metric"], gallery,
                                         write_missing=write_missing, progress=progress)
    key = (task, "search", backend.name, model_id)
    if store.is_valid(*key) and store.manifest(*key)["meta"].get("digest") == digest:
        return load_index(store.path(*key) / "index.faiss"), False
    if not write_missing:
        raise SearchBackendError(f"{task}/{model_id}: no current {backend.name} index; run python -m dml_core build --index {backend.name}")
    index = build_index(gallery(), meta["metric"], backend.kind)
    with store.writer(*key, meta={"digest": digest, "kind": backend.kind, "metric": meta["metric"], "size": index.size}) as tmp:
        save_index(index, tmp / "index.faiss")
    return index, True


def sync_gallery_indexes(store: ArtifactStore, tasks, backend: Backend | None = None, progress: bool = True) -> dict:
    """Write the gallery of every valid model of ``tasks`` (built with the task's current data)
    into ``backend`` where it is missing or out of date (the build's ``search`` stage). Returns
    ``{task: [model ids written]}``; nothing for FAISS flat, whose index is in each model artifact."""
    backend = backend or backend_from_env()
    if backend.is_default:
        return {}
    check_backend(backend, store)
    written = {}
    for task in tasks:
        try:
            profile = store.manifest(task, "data", "gallery")["meta"].get("profile")
        except ArtifactError:
            continue
        for model_id in store.list(task, "models"):
            if store.manifest(task, "models", model_id)["meta"].get("profile") != profile:
                continue  # a model of an older build indexes another gallery; the app hides it too
            if _open_or_write(store, task, model_id, backend, write_missing=True, progress=progress)[1]:
                written.setdefault(task, []).append(model_id)
    return written
