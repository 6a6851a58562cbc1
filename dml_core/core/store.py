"""The artifact store: one directory tree under ``DML_HOME`` (default ``./artifacts``).

An *artifact* is a directory (``<task>/data/train``, ``<task>/models/log_ratio-d128-s0`` …)
holding files plus a ``manifest.json`` with each file's size and SHA-256 and free-form metadata.
It is written into a temporary sibling directory and renamed into place only once every file
and the manifest are on disk, so a killed writer leaves either the old artifact or none —
never a partial one. Readers verify sizes (cheap) or checksums (``full=True``) before use; an
artifact that fails is reported as :class:`CorruptArtifact` and can be rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np

MANIFEST = "manifest.json"
_TMP_MARK = ".tmp-"


class ArtifactError(Exception):
    """Base class for problems with stored artifacts; messages are one line for a person."""


class MissingArtifact(ArtifactError):
    pass


class CorruptArtifact(ArtifactError):
    pass


class UnsafePath(ArtifactError):
    pass


def dml_home() -> Path:
    return Path(os.environ.get("DML_HOME", "artifacts")).resolve()


def confined_path(root: Path, *parts: str) -> Path:
    """``root / parts`` resolved, refusing anything that escapes ``root`` (``..``, absolute)."""
    root = Path(root).resolve()
    for part in parts:
        if not part or Path(part).is_absolute() or ".." in Path(part).parts or "\x00" in part:
            raise UnsafePath(f"refusing path component {part!r}: outside {root}")
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise UnsafePath(f"refusing path {path}: outside {root}")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(handle)`` on a temp file beside ``path``, fsync it, then rename it over
    ``path``: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda handle: handle.write(data))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=True).encode())


def read_json(path: str | os.PathLike) -> Any | None:
    """A JSON report (the build's, a bench result), or None when absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class ArtifactStore:
    """Artifacts under one root; every path given to it is confined to that root."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).resolve() if root is not None else dml_home()

    def path(self, *parts: str) -> Path:
        return confined_path(self.root, *parts)

    # ----------------------------------------------------------------- reading
    def manifest(self, *parts: str) -> dict:
        path = self.path(*parts, MANIFEST)
        if not path.is_file():
            raise MissingArtifact(f"artifact {'/'.join(parts)} is missing (no {path})")
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CorruptArtifact(f"artifact {'/'.join(parts)}: unreadable manifest ({exc})") from exc

    def manifest_time(self, *parts: str) -> float | None:
        """When the artifact's manifest was written (None: no artifact): a cheap change stamp."""
        try:
            return self.path(*parts, MANIFEST).stat().st_mtime
        except OSError:
            return None

    def verify(self, *parts: str, full: bool = False) -> dict:
        """The manifest, after checking every listed file's size (and SHA-256 if ``full``)."""
        manifest = self.manifest(*parts)
        directory = self.path(*parts)
        for name, entry in manifest.get("files", {}).items():
            path = confined_path(directory, name)
            if not path.is_file():
                raise CorruptArtifact(f"artifact {'/'.join(parts)}: file {name} is missing")
            if path.stat().st_size != entry["size"]:
                raise CorruptArtifact(f"artifact {'/'.join(parts)}: file {name} has the wrong size (truncated?)")
            if full and sha256_file(path) != entry["sha256"]:
                raise CorruptArtifact(f"artifact {'/'.join(parts)}: file {name} fails its checksum")
        return manifest

    def is_valid(self, *parts: str, full: bool = False) -> bool:
        try:
            self.verify(*parts, full=full)
            return True
        except ArtifactError:
            return False

    def load_array(self, *parts: str, name: str, mmap: bool = False) -> np.ndarray:
        path = confined_path(self.path(*parts), name)
        try:
            return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError as exc:
            raise MissingArtifact(f"artifact {'/'.join(parts)}: {name} is missing") from exc
        except (OSError, ValueError) as exc:
            raise CorruptArtifact(f"artifact {'/'.join(parts)}: {name} is unreadable ({exc})") from exc

    def load_json(self, *parts: str, name: str) -> Any:
        path = confined_path(self.path(*parts), name)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise MissingArtifact(f"artifact {'/'.join(parts)}: {name} is missing") from exc
        except (OSError, ValueError) as exc:
            raise CorruptArtifact(f"artifact {'/'.join(parts)}: {name} is unreadable ({exc})") from exc

    def list(self, *parts: str, valid_only: bool = True) -> list[str]:
        """Names of the artifacts directly under ``parts``: the valid (size-checked) ones, or
        with ``valid_only=False`` every one that has a manifest (to report the damaged ones)."""
        directory = self.path(*parts)
        if not directory.is_dir():
            return []
        return sorted(
            child.name
            for child in directory.iterdir()
            if child.is_dir() and _TMP_MARK not in child.name
            and (self.is_valid(*parts, child.name) if valid_only else (child / MANIFEST).is_file())
        )

    # ----------------------------------------------------------------- writing
    @contextlib.contextmanager
    def writer(self, *parts: str, meta: dict | None = None) -> Iterator[Path]:
        """Yield an empty temp directory; on clean exit it becomes the artifact ``parts``.

        The manifest (files with size and SHA-256, ``meta``, creation time) is written last,
        then the directory is renamed over any previous version. On an exception, or if the
        process dies, the temp directory is left behind and swept by :meth:`sweep`.
        """
        final = self.path(*parts)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f"{final.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:6]}")
        tmp.mkdir()
        try:
            yield tmp
            files = {}
            for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
                files[path.relative_to(tmp).as_posix()] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
            atomic_write_json(tmp / MANIFEST, {"files": files, "meta": meta or {}, "created": time.time()})
            old = None
            if final.exists():
                old = final.with_name(f"{final.name}{_TMP_MARK}old-{uuid.uuid4().hex[:6]}")
                os.replace(final, old)
            os.replace(tmp, final)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def update_meta(self, *parts: str, **changes) -> None:
        """Change entries of a stored artifact's ``meta`` (its files stay as they are); the manifest
        is replaced atomically."""
        manifest = self.manifest(*parts)
        manifest["meta"] = {**manifest.get("meta", {}), **changes}
        atomic_write_json(self.path(*parts, MANIFEST), manifest)

    def remove(self, *parts: str) -> None:
        shutil.rmtree(self.path(*parts), ignore_errors=True)

    def sweep(self) -> int:
        """Delete temp directories and files left by killed writers; returns how many."""
        if not self.root.is_dir():
            return 0
        leftovers = [p for p in self.root.rglob(f"*{_TMP_MARK}*")]
        for path in leftovers:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(leftovers)
