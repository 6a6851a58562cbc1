"""Server time per interaction on the pages that must keep up with a slider (Compare, Embedding
space, Learn → Mining's task section), on a built DML_HOME.

    .venv/bin/python scripts/time_interactions.py --home DIR [--repeats 12] [--wait 8]

Each page runs under ``streamlit.testing.v1.AppTest``; what is timed is the execution of the page
script itself (what the server spends per rerun, without AppTest's own bookkeeping nor the
script's compilation, which the server caches). Mining's task section is an ``st.fragment``:
in the browser its widgets rerun that function only, so the fragment's own time is reported
beside the whole page's.

``--wait`` seconds pass after each page's first run before the timed reruns: Compare's result
tiles are drawn (label overlays) by a background thread when a task's gallery is first loaded;
``--wait 0`` times the reruns while that thread still runs (a freshly started server).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TASKS = ("pose", "layout")


class Stopwatch:
    """Times every execution of a page script and of the functions ``wrap`` marks."""

    def __init__(self):
        import streamlit as st
        import streamlit.runtime.scriptrunner.script_runner as runner

        self.script, self.fragment = [], []
        exec_script, make_fragment = runner.exec_func_with_error_handling, st.fragment

        def timed_script(func, ctx):
            start = time.perf_counter()
            try:
                return exec_script(func, ctx)
            finally:
                self.script.append(1000 * (time.perf_counter() - start))

        def timed_fragment(func=None, **kwargs):
            if func is None:
                return lambda f: timed_fragment(f, **kwargs)

            def body(*args, **kw):
                start = time.perf_counter()
                try:
                    return func(*args, **kw)
                finally:
                    self.fragment.append(1000 * (time.perf_counter() - start))
            return make_fragment(body, **kwargs)

        runner.exec_func_with_error_handling = timed_script
        st.fragment = timed_fragment

    def clear(self):
        self.script.clear()
        self.fragment.clear()


def summary(times: list[float]) -> str:
    return f"median {statistics.median(times):4.0f} ms, max {max(times):4.0f} ms (n={len(times)})"


def interact(watch: Stopwatch, page: str, state: dict, actions: list, wait: float):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=300)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    time.sleep(wait)
    watch.clear()
    for action in actions:
        action(at)
        at.run()
        if at.exception:
            raise SystemExit(f"{page}: {at.exception[0].value}")
    return list(watch.script), list(watch.fragment)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="a built DML_HOME (the quick build)")
    parser.add_argument("--repeats", type=int, default=12, help="interactions timed per row")
    parser.add_argument("--wait", type=float, default=8.0, help="seconds between a page's first run and the timed ones")
    args = parser.parse_args(argv)
    os.environ["DML_HOME"] = str(Path(args.home).resolve())
    watch = Stopwatch()
    from dml_core.app import maps, open_catalog

    n = args.repeats
    for task in TASKS:
        start = {"task": task, "_keep_task": task}
        script, _ = interact(watch, "compare", start, [
            lambda at, i=i: at.selectbox(key=f"cmp_query_{task}").set_value(7 * i + 1) for i in range(n)], args.wait)
        print(f"{task:7s} Compare, change the query:               {summary(script)}")
        choices = maps.colour_choices(open_catalog(task, args.home), has_query=True)
        numeric = [maps.QUERY_DISTANCE, next(c for c in choices if c in ("yaw", "room_width"))]
        state = start | {"_keep_queries": {task: 5}}
        script, _ = interact(watch, "embedding_space", state, [
            lambda at, i=i: at.selectbox(key=f"emb_colour_{task}").set_value(numeric[i % 2]) for i in range(n)], args.wait)
        print(f"{task:7s} Embedding space, change the colouring:   {summary(script)}")
        script, _ = interact(watch, "embedding_space", state, [
            lambda at, i=i: at.session_state.__setitem__("_keep_queries", {task: 11 + 3 * i}) for i in range(n)], args.wait)
        print(f"{task:7s} Embedding space, change the query:       {summary(script)}")
        mining = {"l3t_task": task}
        for what, action in (
                ("the anchor", lambda at, i: at.number_input(key=f"l3t_anchor_{task}").set_value(7 * i + 1)),
                ("the miner shown", lambda at, i: at.radio(key="l3t_miner").set_value(["hard", "semihard", "easy", "all"][i % 4])),
                ("the batch seed", lambda at, i: at.number_input(key="l3t_seed").set_value(i + 1))):
            script, fragment = interact(watch, "learn_3_mining", mining, [
                lambda at, i=i, action=action: action(at, i) for i in range(n)], args.wait)
            print(f"{task:7s} Mining on the task, change {what + ':':17s}{summary(fragment)} (section); whole page {summary(script)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
