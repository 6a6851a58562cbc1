"""CPU used by an idle Streamlit server with one open tab, as a percentage of one core.

    .venv/bin/python scripts/idle_cpu.py --home DIR [--page home] [--seconds 60] [--port P] [-- STREAMLIT_OPTION ...]

Starts ``streamlit run app.py`` with ``DML_HOME=DIR`` and, after ``--``, the given options
(none by default: the server runs as ``.streamlit/config.toml`` says, which is the point),
opens ``--page`` in headless Chromium, waits until the page has finished running, and then,
while nobody touches the page, reads the server's utime + stime from ``/proc/<pid>/stat`` at the
start and end of ``--seconds``. Prints the CPU percentage of one core and how many
"Inotify queue overflowed" lines the server logged meanwhile.

    .venv/bin/python scripts/idle_cpu.py --home DIR -- --server.fileWatcherType auto   # the old default
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.load_test import streamlit_server  # noqa: E402
from scripts.screenshot import chromium, wait_until_settled  # noqa: E402

OVERFLOW = "Inotify queue overflowed"


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_idle(home: str, page: str, seconds: float, options: tuple[str, ...], port: int | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="idle-cpu-") as scratch:
        log_path = Path(scratch) / "streamlit.log"
        with streamlit_server(home, port, log_path=log_path, options=options) as (server, port), chromium() as browser:
            browser.get(f"http://127.0.0.1:{port}/{page}")
            settled = wait_until_settled(browser, timeout=180)
            overflows_before = log_path.read_text(errors="replace").count(OVERFLOW)
            start_cpu, start = cpu_seconds(server.pid), time.monotonic()
            time.sleep(seconds)
            used, elapsed = cpu_seconds(server.pid) - start_cpu, time.monotonic() - start
            overflows = log_path.read_text(errors="replace").count(OVERFLOW) - overflows_before
    return {"page": page, "options": list(options), "page_settled": settled, "seconds": round(elapsed, 1),
            "cpu_seconds": round(used, 2), "cpu_percent_of_one_core": round(100 * used / elapsed, 2),
            "inotify_overflow_lines": overflows}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    options = tuple(argv[argv.index("--") + 1:]) if "--" in argv else ()
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="DML_HOME of the server (a built profile)")
    parser.add_argument("--page", default="home", help="page path opened in the tab")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    print(json.dumps(measure_idle(args.home, args.page, args.seconds, options, args.port), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
