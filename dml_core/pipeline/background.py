"""The build as a background process beside the app server (``python -m dml_core app``).

The build runs ``python -m dml_core build`` in its own session (so the terminal's Ctrl-C reaches
the server, which then stops the build in order), at a lower CPU priority than the server
(``nice`` + ``BUILD_NICENESS``), with its output in ``DML_HOME/build.log``. On Linux it also
gets SIGTERM when the process that started it dies, however that dies, so no build outlives
its server unseen. One build runs per ``DML_HOME`` (``status.BuildLock``): when one is already
running, a second server joins it (shows its progress) instead of starting another.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dml_core.pipeline.status import LOG_FILE, running_build_pid

#: How much lower than the server the build's CPU priority is (``nice`` increment).
BUILD_NICENESS = 10
#: Seconds a stopped build gets to write its status before its processes are killed.
STOP_GRACE_S = 15.0


def die_with_parent() -> None:
    """``preexec_fn`` of a child process: SIGTERM when the process that started it dies (Linux;
    elsewhere nothing), so a server or build never outlives a ``app`` that was SIGKILLed."""
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _build_child_setup() -> None:  # runs in the child between fork and exec
    os.nice(BUILD_NICENESS)
    die_with_parent()


@dataclass
class BackgroundBuild:
    """A build this process started (``process`` set) or joined (``pid`` of another's)."""

    root: Path
    pid: int
    log: Path
    process: subprocess.Popen | None = None

    @property
    def started_here(self) -> bool:
        return self.process is not None

    @classmethod
    def start_or_join(cls, root: str | os.PathLike, profile: str, tasks=None) -> BackgroundBuild:
        root = Path(root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        log = root / LOG_FILE
        running = running_build_pid(root)
        if running is not None:
            return cls(root, running, log)
        command = [sys.executable, "-m", "dml_core", "build", "--profile", profile]
        if tasks:
            command += ["--tasks", ",".join(tasks)]
        env = os.environ | {"DML_HOME": str(root), "DML_BUILD_LOG": str(log), "PYTHONUNBUFFERED": "1",
                            "TQDM_MININTERVAL": "10"}  # a log file, not a terminal: fewer progress lines
        with open(log, "ab") as out:
            out.write(f"\n=== build --profile {profile} started {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
            out.flush()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True, preexec_fn=_build_child_setup)
        return cls(root, process.pid, log, process)

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return running_build_pid(self.root) == self.pid

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """Stop a build this process started: SIGTERM (it records "stopped" and stops its workers),
        then, after ``grace_s``, SIGKILL to whatever of its session is left. Its atomic writes
        leave no half-written artifact either way. Returns its exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        finally:
            _kill_session(self.process.pid)
        return self.process.wait()


def _kill_session(pid: int) -> None:
    """SIGKILL every process left in the session ``pid`` leads (the build's workers)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
