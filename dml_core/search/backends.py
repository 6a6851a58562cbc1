"""Which engine searches the galleries: a :class:`Backend` chosen by name (``--index``, ``DML_INDEX``)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from dml_core.core.store import ArtifactStore
from dml_core.search.interface import SearchBackendError

#: Names a backend can be chosen by (``--index``, ``DML_INDEX``).
BACKEND_NAMES = ("faiss", "faiss-hnsw", "faiss-ivfpq", "milvus", "milvus-hnsw")


@dataclass(frozen=True)
class Backend:
    """Which engine searches the galleries: ``engine`` "faiss" or "milvus", its index ``kind``,
    and for Milvus the server URI (None: the Milvus Lite file ``DML_HOME/milvus/gallery.db``)."""

    engine: str = "faiss"
    kind: str = "flat"
    milvus_uri: str | None = None

    @property
    def name(self) -> str:
        """The name it is chosen by: "faiss", "faiss-hnsw", "milvus", ..."""
        return self.engine if self.kind == "flat" else f"{self.engine}-{self.kind}"

    @property
    def is_default(self) -> bool:
        """FAISS flat: the ``index.faiss`` every model artifact already holds."""
        return self.engine == "faiss" and self.kind == "flat"

    def milvus_target(self, store: ArtifactStore) -> str:
        """The URI the Milvus client connects to: the server's, or the Lite file's path."""
        return self.milvus_uri or str(store.root / "milvus" / "gallery.db")

    def describe(self, store: ArtifactStore | None = None) -> str:
        if self.engine == "faiss":
            return f"FAISS {self.kind} (in-process)"
        where = self.milvus_uri or (f"Milvus Lite file {self.milvus_target(store)}" if store else "Milvus Lite")
        return f"Milvus {self.kind.upper()} at {where}"


def parse_backend(name: str | None = None, milvus_uri: str | None = None) -> Backend:
    """A Backend from its name (default "faiss", or "milvus" when only a URI is given)."""
    milvus_uri = (milvus_uri or "").strip() or None
    name = (name or "").strip().lower() or ("milvus" if milvus_uri else "faiss")
    if name not in BACKEND_NAMES:
        raise SearchBackendError(f"unknown search index {name!r}; choose from {', '.join(BACKEND_NAMES)}")
    engine, _, kind = name.partition("-")
    if milvus_uri and engine != "milvus":
        raise SearchBackendError(f"a Milvus URI ({milvus_uri}) was given but the search index is {name!r}; use --index milvus")
    if milvus_uri and not milvus_uri.startswith(("http://", "https://", "tcp://", "unix:")) and not milvus_uri.endswith(".db"):
        raise SearchBackendError(f"not a Milvus URI: {milvus_uri!r} (expected http://host:port, https://..., or a Milvus Lite file ending in .db)")
    return Backend(engine, kind or "flat", milvus_uri)


def backend_from_env(name: str | None = None, milvus_uri: str | None = None) -> Backend:
    """The backend of explicit choices, else of ``DML_INDEX`` and ``DML_MILVUS_URI``. A URI in
    the environment is used only when the index is Milvus (or not named)."""
    if name or milvus_uri:
        return parse_backend(name, milvus_uri)
    env_name = os.environ.get("DML_INDEX", "").strip()
    env_uri = os.environ.get("DML_MILVUS_URI", "").strip()
    if env_name and not env_name.lower().startswith("milvus"):
        env_uri = ""
    return parse_backend(env_name, env_uri)
