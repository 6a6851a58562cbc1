"""A build's progress where other processes can read it, and one build per ``DML_HOME``.

A running build holds an exclusive lock on ``DML_HOME/build.lock`` (``fcntl.flock``: the kernel
drops it when the process dies, however it dies) and rewrites ``DML_HOME/build-status.json``
atomically as it goes: its state, stage, wave, every queued model with its state, and an ETA
from its own measurements. The app reads the file to show the build on every page and to say
where a model not built yet stands in the queue; ``read_status`` tells a build that is still
running from one that was killed (its lock is free but its file still says "running").
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from dml_core.core.store import atomic_write_json, read_json

STATUS_FILE = "build-status.json"
LOCK_FILE = "build.lock"
#: Where ``serve`` sends a background build's output.
LOG_FILE = "build.log"
#: States a status file can be in; "interrupted" is read_status's word for a "running" file
#: whose build no longer holds the lock (killed, or the machine stopped).
STATES = ("running", "done", "failed", "stopped", "interrupted")


class BuildRunning(RuntimeError):
    """Another process is building in this ``DML_HOME``."""

    def __init__(self, root: Path, pid: int | None):
        self.pid = pid
        who = f"process {pid}" if pid else "another process"
        super().__init__(f"a build is already running in {root} ({who}); wait for it to finish or stop it first")


class BuildLock:
    """The exclusive build lock of ``root`` (a context manager); ``BuildRunning`` when held."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._file = None

    def __enter__(self) -> BuildLock:
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise BuildRunning(self.root, running_build_pid(self.root)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, *exc) -> None:
        if self._file is not None:
            self._file.close()  # closing releases the lock
            self._file = None


def running_build_pid(root: str | os.PathLike) -> int | None:
    """The pid of the build running in ``root``, or None when no build holds its lock."""
    path = Path(root) / LOCK_FILE
    if not path.is_file():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def read_status(root: str | os.PathLike) -> dict | None:
    """The last build's status (None when no build wrote one); a "running" build whose lock is
    free is reported as "interrupted"."""
    status = read_json(Path(root) / STATUS_FILE)
    if not isinstance(status, dict) or status.get("state") not in STATES:
        return None
    if status["state"] == "running" and running_build_pid(root) is None:
        status["state"] = "interrupted"
    return status


class BuildStatus:
    """What a build writes as it goes. ``queue``: ``plan.QueuedModel`` entries in build order;
    ``done``: the (task, model id) pairs already built when the build starts."""

    def __init__(self, root: str | os.PathLike, profile: str, queue, done=(), workers: int = 1,
                 wave_names=(), log: str | None = None):
        self.path = Path(root) / STATUS_FILE
        self.workers = max(1, workers)
        done = set(done)
        self.started = time.time()
        self.doc = {
            "state": "running", "pid": os.getpid(), "profile": profile, "started": self.started, "updated": self.started,
            "stage": "starting", "stage_tasks": [], "wave": None, "waves": list(wave_names), "log": log, "error": None,
            "eta_s": None,
            "queue": [{"task": e.task, "model": e.spec.id, "wave": e.wave, "cost": e.cost,
                       "state": "done" if (e.task, e.spec.id) in done else "queued"} for e in queue],
        }
        self._per_cost: list[float] = []  # seconds per unit of relative cost, of models trained in this build
        self._write()

    # ------------------------------------------------------------------------ events
    def stage(self, name: str, tasks=(), wave: int | None = None) -> None:
        self.doc.update(stage=name, stage_tasks=list(tasks), wave=wave)
        self._write()

    def model_done(self, task: str, model_id: str, seconds: float) -> None:
        for entry in self.doc["queue"]:
            if entry["task"] == task and entry["model"] == model_id:
                entry["state"] = "done"
                if entry["cost"] > 0 and seconds > 0:
                    self._per_cost.append(seconds / entry["cost"])
        self._write()

    def finish(self, state: str, error: str | None = None) -> None:
        self.doc.update(state=state, error=error, stage=state, eta_s=0.0 if state == "done" else None)
        self._write()

    # ---------------------------------------------------------------------- reading
    def counts(self) -> tuple[int, int]:
        queue = self.doc["queue"]
        return sum(e["state"] == "done" for e in queue), len(queue)

    def _eta(self) -> float | None:
        """Seconds left for the queued models: their relative cost times the median seconds per
        unit of cost measured on this build's trained models, shared by the workers (None until a
        model has trained). Data and feature stages still ahead are not in it."""
        if not self._per_cost:
            return None
        rate = sorted(self._per_cost)[len(self._per_cost) // 2]
        left = sum(max(e["cost"], 1.0) for e in self.doc["queue"] if e["state"] != "done")
        return round(rate * left / self.workers, 1)

    def _write(self) -> None:
        self.doc["updated"] = time.time()
        if self.doc["state"] == "running":
            self.doc["eta_s"] = self._eta()
        atomic_write_json(self.path, self.doc)
