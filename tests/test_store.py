import json

import numpy as np
import pytest

from dml_core.core.store import ArtifactStore, CorruptArtifact, MissingArtifact, UnsafePath, confined_path


def _write(store, *parts, value=1.0):
    with store.writer(*parts, meta={"value": value}) as tmp:
        np.save(tmp / "x.npy", np.full(10, value))
        (tmp / "info.json").write_text(json.dumps({"v": value}))


def test_round_trip_and_manifest(tmp_path):
    store = ArtifactStore(tmp_path)
    _write(store, "pose", "models", "a")
    manifest = store.verify("pose", "models", "a", full=True)
    assert manifest["meta"] == {"value": 1.0}
    assert set(manifest["files"]) == {"x.npy", "info.json"}
    assert store.load_array("pose", "models", "a", name="x.npy")[3] == 1.0
    assert store.list("pose", "models") == ["a"]


def test_update_meta_keeps_the_files(tmp_path):
    store = ArtifactStore(tmp_path)
    _write(store, "pose", "data", "gallery")
    before = store.verify("pose", "data", "gallery", full=True)
    store.update_meta("pose", "data", "gallery", profile="tiny")
    after = store.verify("pose", "data", "gallery", full=True)
    assert after["meta"] == {"value": 1.0, "profile": "tiny"} and after["files"] == before["files"]
    with pytest.raises(MissingArtifact):
        store.update_meta("pose", "data", "query", profile="tiny")


def test_failed_write_keeps_previous_version(tmp_path):
    store = ArtifactStore(tmp_path)
    _write(store, "a")
    with pytest.raises(RuntimeError):
        with store.writer("a") as tmp:
            np.save(tmp / "x.npy", np.zeros(3))
            raise RuntimeError("killed")
    assert store.load_array("a", name="x.npy")[0] == 1.0
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_rewrite_replaces(tmp_path):
    store = ArtifactStore(tmp_path)
    _write(store, "a", value=1.0)
    _write(store, "a", value=2.0)
    assert store.load_array("a", name="x.npy")[0] == 2.0
    assert store.manifest("a")["meta"]["value"] == 2.0


def test_truncated_and_altered_files_are_detected(tmp_path):
    store = ArtifactStore(tmp_path)
    _write(store, "a")
    path = tmp_path / "a" / "x.npy"
    data = path.read_bytes()
    path.write_bytes(data[:-8])
    with pytest.raises(CorruptArtifact, match="wrong size"):
        store.verify("a")
    altered = bytearray(data)
    altered[-1] ^= 0xFF
    path.write_bytes(bytes(altered))
    store.verify("a")  # same size: only the checksum can tell
    with pytest.raises(CorruptArtifact, match="checksum"):
        store.verify("a", full=True)
    assert not store.is_valid("a", full=True)


def test_missing_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(MissingArtifact):
        store.verify("nope")
    assert store.list("nope") == []


def test_sweep_removes_leftovers(tmp_path):
    store = ArtifactStore(tmp_path)
    (tmp_path / "a.tmp-123-abc").mkdir()
    (tmp_path / "f.json.tmp-1").write_text("x")
    assert store.sweep() == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("part", ["..", "../x", "/etc/passwd", "a/../../b", ""])
def test_paths_are_confined(tmp_path, part):
    with pytest.raises(UnsafePath):
        confined_path(tmp_path, part)
    with pytest.raises(UnsafePath):
        ArtifactStore(tmp_path).path("pose", part)


def test_symlink_escape_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePath):
        confined_path(root, "link")
