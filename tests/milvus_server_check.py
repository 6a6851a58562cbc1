"""Against a real Milvus standalone server (the ``milvus`` package): start it, write model
galleries into it through ``dml_core.search``, search them, stop it. Run by
``test_search_backends`` inside its own network namespace (``unshare --net``), where loopback
is the only interface, so the server's ports, which Milvus binds on every interface, are
reachable from this process alone.

Usage: python milvus_server_check.py DML_HOME WORK_DIR MODEL_ID [MODEL_ID ...]
Writes WORK_DIR/results.npz (ids and distances per model and engine). Exit code 77, with the
reason on stderr, when the server cannot start.
"""
import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dml_core.core.store import ArtifactStore  # noqa: E402
from dml_core.search.backends import parse_backend
from dml_core.search.gallery import open_gallery_index  # noqa: E402
from dml_core.search.interface import search

CANNOT_START = 77
PROXY_PORT = 19530
#: Every port the server opens besides etcd's, inside 19530-19560.
PORTS = dict(proxy_port=PROXY_PORT, proxy_internal_port=19531, root_coord_port=19532, query_coord_port=19533,
             query_node_port=19534, index_coord_port=19535, index_node_port=19536, data_coord_port=19537,
             data_node_port=19538)
HEALTH_PORT = 19539
START_TIMEOUT_S = 90


def loopback_up() -> None:
    """Bring up ``lo`` of this (new, empty) network namespace, as ``ip link set lo up`` would."""
    import fcntl
    import socket
    import struct

    get_flags, set_flags, up = 0x8913, 0x8914, 0x1  # SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, get_flags, struct.pack("16sH14s", b"lo", 0, b"")))[1]
        fcntl.ioctl(sock, set_flags, struct.pack("16sH14s", b"lo", flags | up, b""))


def start_server(data_dir: Path):
    from milvus import MilvusServer, MilvusServerConfig

    server = MilvusServer(MilvusServerConfig(data_dir=str(data_dir), **PORTS), wait_for_started=False)
    server.webservice_port = HEALTH_PORT
    server.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.server_proc.poll() is not None:
            raise RuntimeError(f"milvus exited with code {server.server_proc.returncode} (logs: {data_dir / 'logs'})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/healthz", timeout=2) as answer:
                if b"OK" in answer.read():
                    return server
        except OSError:
            pass
        time.sleep(0.5)
    stop_server(server)
    raise RuntimeError(f"milvus not healthy after {START_TIMEOUT_S} s")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def stop_server(server) -> None:
    """SIGTERM to the server and its children by PID, SIGKILL to what is left after 15 s."""
    proc = server.server_proc
    if proc is None:
        return
    pids = [proc.pid, *_children(proc.pid)]
    for pid in pids:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=15)
    except Exception:
        pass
    for pid in pids:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    proc.wait(timeout=5)
    server.server_proc = None


def main(home: Path, work: Path, model_ids: list[str]) -> int:
    try:
        loopback_up()
        server = start_server(work / "milvus")
    except Exception as exc:
        print(f"the Milvus server cannot start here: {exc}", file=sys.stderr)
        return CANNOT_START
    try:
        store = ArtifactStore(home)
        milvus = parse_backend("milvus", f"http://127.0.0.1:{PROXY_PORT}")
        results = {}
        for model_id in model_ids:
            queries = store.load_array("pose", "models", model_id, name="query.npy")
            for engine, backend in (("faiss", parse_backend("faiss")), ("milvus", milvus)):
                index = open_gallery_index(store, "pose", model_id, backend)  # writes the collection the first time
                distances, ids = search(index, queries, 10)
                results[f"{engine}:{model_id}:ids"], results[f"{engine}:{model_id}:distances"] = ids, distances
            again = open_gallery_index(store, "pose", model_id, milvus, write_missing=False)  # now current: no rewrite
            results[f"milvus:{model_id}:collection"] = np.array(again.collection)
        np.savez(work / "results.npz", **results)
    finally:
        stop_server(server)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
