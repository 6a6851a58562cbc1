"""What a new user waits for on ``make run``: the server's health check, pose's pair on Compare,
the end of the background build. Setup is assumed done (``make setup``).

    .venv/bin/python scripts/first_run.py --home EMPTY_DIR [--profile quick] [--json docs/bench/first-run.json]

Runs ``python -m dml_core app`` (what ``make run`` runs) with ``DML_HOME=EMPTY_DIR`` on a free
port of 127.0.0.1 and measures, from the moment it is started:

- ``health_s``: until ``/_stcore/health`` answers;
- ``pair_on_compare_s``: until headless Chromium, which opened ``compare?task=pose`` as soon as
  the server answered and never reloads it, shows both default models' results (the page
  picks them up by itself as the build lands them);
- ``build_s``: until the background build's status says "done", with the build's own stage and
  wave times.

Then it stops the app with SIGINT (Ctrl-C) and checks that neither the server's output nor the
build's log holds a traceback. Writes everything to ``--json``; BENCHMARKS.md's Speed section
quotes it.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.load_test import free_port, stop_process  # noqa: E402

#: Result tiles on Compare once both default models and the oracle show K = 10 results each.
PAIR_TILES = 30


@contextlib.contextmanager
def app_command(home: str | os.PathLike, port: int, *options: str, log_path: str | os.PathLike | None = None):
    """``python -m dml_core app --port port --address 127.0.0.1 *options`` with DML_HOME=home; yields
    the process. On exit: SIGINT (Ctrl-C) if still running, then a bounded wait, then SIGKILL."""
    env = dict(os.environ, DML_HOME=str(home), PYTHONUNBUFFERED="1")
    log = open(log_path, "w") if log_path else open(os.devnull, "w")
    with _sigint_not_ignored():
        process = subprocess.Popen([sys.executable, "-m", "dml_core", "app", "--port", str(port), "--address", "127.0.0.1",
                                    *options], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process, signal.SIGINT, 60)
        log.close()


@contextlib.contextmanager
def _sigint_not_ignored():
    """Start children with SIGINT at its default, as a terminal's foreground command has it.

    A process started in the background by a shell without job control (``cmd &`` in a script or a
    subshell, ``nohup``) inherits SIGINT ignored, and so do its children; Python then installs no
    Ctrl-C handler, and the app would ignore the SIGINT sent here as the user's Ctrl-C (the app test
    failed so whenever pytest was launched that way). A handler of our own is reset to the default
    in a child at exec, an ignored signal is not."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition, timeout: float, step: float = 0.1, what: str = "condition") -> float:
    """Poll ``condition()`` until true; returns the seconds it took (TimeoutError after ``timeout``)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(step)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def result_tiles(driver) -> int:
    """Result tiles on Compare whose image the browser decoded (not the movers')."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.bb-grid .bb-tile img'))"
        ".filter(img => !img.closest('.bb-movers') && img.complete && img.naturalWidth > 0).length;")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="an empty (or missing) DML_HOME")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--json", default="docs/bench/first-run.json")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds the whole build may take")
    args = parser.parse_args(argv)
    from dml_core.app.progress import build_progress
    from scripts.screenshot import chromium

    home = Path(args.home).resolve()
    if home.exists() and any(home.iterdir()):
        raise SystemExit(f"{home} is not empty: the first run starts from nothing")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_log = home.parent / f"{home.name}-app.log"
    result = {"profile": args.profile, "cpus": os.cpu_count(), "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    start = time.monotonic()
    with app_command(home, port, "--profile", args.profile, log_path=server_log) as process, chromium() as driver:
        result["health_s"] = round(wait_for(lambda: healthy(url), 60, what="health check"), 2)
        driver.get(f"{url}/compare?task=pose")
        wait_for(lambda: result_tiles(driver) >= PAIR_TILES, args.timeout, step=0.25, what="pose's pair on Compare")
        result["pair_on_compare_s"] = round(time.monotonic() - start, 2)
        print(f"health {result['health_s']} s, pose's pair on Compare {result['pair_on_compare_s']} s", flush=True)
        driver.get(f"{url}/home")  # an open tab keeps its fragment polling, as a person's would
        wait_for(lambda: (progress := build_progress(str(home))) is not None and progress.state != "running",
                 args.timeout, step=1.0, what="the build's end")
        result["build_s"] = round(time.monotonic() - start, 2)
        result["build_state"] = build_progress(str(home)).state
        assert process.poll() is None, "the app stopped by itself"
    report = json.loads((home / "build.json").read_text()) if (home / "build.json").is_file() else {}
    result["build_stages_s"] = {name: stage["seconds"] for name, stage in report.get("stages", {}).items()}
    result["build_waves_s"] = {wave["wave"]: wave["seconds"] for wave in report.get("waves", [])}
    logs = {"server": server_log.read_text(errors="replace"), "build": (home / "build.log").read_text(errors="replace")}
    result["tracebacks"] = {name: text.count("Traceback") for name, text in logs.items()}
    print(json.dumps(result, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["build_state"] == "done" and not any(result["tracebacks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
