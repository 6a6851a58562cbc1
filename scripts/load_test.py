"""Load test: N concurrent app sessions speaking Streamlit's own websocket protocol.

    python scripts/load_test.py --home DIR --sessions 12 --seconds 60 [--port P] [--json OUT]

Starts ``streamlit run app.py`` with ``DML_HOME=DIR``, warms it up with one session (every
page × task that the load will touch, one query each), samples the server's RSS, then runs N
sessions at once for ``--seconds``. Each session loads Compare or Upload for one task and then
issues *queries* until the time is up: on Compare it picks another query in the ``Query (…)``
selectbox or clicks the 🎲 (random query) (catalog lookup + top-K of each model + oracle); on Upload it picks
another "A query-set image" (PNG decode → backbone → heads → FAISS search). The RSS is
sampled again while all N sessions are still connected, then the server is stopped.

A query's latency runs from sending the ``rerun_script`` BackMsg to receiving that run's
``script_finished``. Errors: exception elements, ``st.error`` alerts, a run that does not render
its result marker, a non-successful ``script_finished``, page-not-found, websocket failures and
timeouts. Exit status 1 when there was any error.

The protocol, as the browser frontend speaks it (Streamlit 1.67, Starlette server):

* ``GET /<page>`` returns index.html and sets the ``_streamlit_xsrf`` cookie.
* The websocket ``/_stcore/stream`` is opened with that cookie, an ``Origin`` header and the
  subprotocol list ``["streamlit", <xsrf cookie value>]`` (a third entry would be a session id
  to resume). The server selects ``streamlit``.
* Nothing runs until the client sends ``BackMsg(rerun_script=ClientState(...))``: the first one
  names the page by ``page_name`` (its URL path, e.g. ``compare``); later ones carry the
  ``page_script_hash`` from the ``new_session``/``navigation`` messages, the ``WidgetStates``
  of the widgets the user has set (ids come from the elements of the previous run) and
  ``cached_message_hashes``.
* A run is ``new_session`` … deltas … ``script_finished``. Elements whose ``metadata.cacheable``
  is set are kept by the client; the next run may then send ``ForwardMsg(ref_hash=…)`` instead
  of the element, which the client resolves from that cache (as the frontend does).

The reusable part is :func:`run_load` (and :class:`AppClient`); ``tests/test_load.py`` imports it.
"""
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

# websockets is a dependency of streamlit 1.67 (whose server is Starlette/uvicorn; tornado is gone).
from websockets.asyncio.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("compare", "upload")
TASK_TITLES = {"pose": "Human pose", "layout": "Room layout", "caption": "Image captions"}
# The caption each page writes only after a retrieval: proof that a query ran to the end.
RESULT_MARKERS = {"compare": re.compile(r"Retrieval and scores (\d+) ms"),
                  "upload": re.compile(r"Server time: (\d+) ms")}
QUERY_TIMEOUT_S = 120.0


class ProtocolError(RuntimeError):
    """The server sent something a browser would not expect, or nothing in time."""


# ------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout:.0f} s")


@contextmanager
def streamlit_server(home: str | os.PathLike, port: int | None = None, log_path: str | os.PathLike | None = None,
                     options: tuple[str, ...] = ("--server.fileWatcherType", "none")):
    """``streamlit run app.py`` on 127.0.0.1:``port`` with ``DML_HOME=home`` and the extra
    command-line ``options``; yields (process, port)."""
    port = port or free_port()
    env = dict(os.environ, DML_HOME=str(home))
    log = open(log_path, "w") if log_path else tempfile.TemporaryFile("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", *options],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        yield server, port
    finally:
        stop_process(server, signal.SIGTERM, 20)
        log.close()


def stop_process(process: subprocess.Popen, how: int = signal.SIGTERM, grace_s: float = 20) -> None:
    """Send ``how`` to a still-running process, wait ``grace_s``, then SIGKILL it (a bounded stop)."""
    if process.poll() is not None:
        return
    process.send_signal(how)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# ------------------------------------------------------------------------------- client
@dataclass
class RunResult:
    """One script run as the client saw it."""
    latency_ms: float
    status: int
    elements: list = field(default_factory=list)   # (delta_path, Element) in arrival order
    page_script_hash: str = ""
    errors: list[str] = field(default_factory=list)

    def image_captions(self) -> list[str]:
        return [img.caption for _, e in self.elements if e.WhichOneof("type") == "imgs" for img in e.imgs.imgs]

    def markdown_bodies(self) -> list[str]:
        return [e.markdown.body for _, e in self.elements if e.WhichOneof("type") == "markdown"]

    def widgets(self, kind: str) -> list:
        return [getattr(e, kind) for _, e in self.elements if e.WhichOneof("type") == kind]


def _xsrf_cookie(host: str, port: int, path: str) -> str | None:
    """Load the page like a browser does and return the ``_streamlit_xsrf`` cookie it sets."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie" and value.startswith("_streamlit_xsrf="):
                return value.split(";", 1)[0].split("=", 1)[1]
    finally:
        conn.close()
    return None


class AppClient:
    """One browser tab: a websocket session on the app, driven by widget changes."""

    def __init__(self, host: str, port: int, page: str = "compare"):
        self.host, self.port, self.page = host, port, page
        self.ws = None
        self.page_script_hash = ""
        self.app_pages: dict[str, str] = {}          # url_pathname -> page_script_hash
        self.widget_states: dict[str, WidgetState] = {}
        self.message_cache: dict[str, ForwardMsg] = {}
        self.cache_last_used: dict[str, int] = {}    # hash -> run number that last sent or referenced it
        self.max_cached_message_age = 2              # runs; the server's value arrives in new_session.config
        self.runs = 0
        self.last: RunResult | None = None
        self.messages = self.ref_hits = self.bytes_received = 0

    async def connect(self) -> None:
        cookie = await asyncio.to_thread(_xsrf_cookie, self.host, self.port, f"/{self.page}")
        origin = f"http://{self.host}:{self.port}"
        subprotocols = ["streamlit"] + ([cookie] if cookie else [])
        headers = {"Cookie": f"_streamlit_xsrf={cookie}"} if cookie else {}
        self.ws = await ws_connect(f"ws://{self.host}:{self.port}/_stcore/stream", origin=origin,
                                   subprotocols=subprotocols, additional_headers=headers, max_size=None,
                                   open_timeout=60)
        if self.ws.subprotocol != "streamlit":
            raise ProtocolError(f"server selected subprotocol {self.ws.subprotocol!r}")

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None

    # ------------------------------------------------------------------------- runs
    async def rerun(self, set_widgets: dict[str, WidgetState] | None = None, trigger: str | None = None,
                    page: str | None = None, timeout: float = QUERY_TIMEOUT_S) -> RunResult:
        """Send one ``rerun_script`` and collect that run up to its ``script_finished``."""
        msg = BackMsg()
        state = msg.rerun_script
        if page is not None and page != self.page:     # navigation: the old page's widgets go away
            self.page, self.widget_states = page, {}
            state.page_script_hash = self.app_pages.get(page, "")
        else:
            state.page_script_hash = self.page_script_hash
        state.page_name = self.page
        state.query_string = ""
        for widget_id, value in (set_widgets or {}).items():
            self.widget_states[widget_id] = value
        state.widget_states.widgets.extend(self.widget_states.values())
        if trigger is not None:   # a button click: a one-shot trigger, never remembered
            state.widget_states.widgets.add(id=trigger, trigger_value=True)
        state.cached_message_hashes.extend(self.message_cache)
        started = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        result = await asyncio.wait_for(self._collect_run(started), timeout)
        self._after_run(result)
        self.last = result
        return result

    async def _collect_run(self, started: float) -> RunResult:
        run_id = None
        elements, errors = [], []
        while True:
            raw = await self.ws.recv()
            self.messages += 1
            self.bytes_received += len(raw)
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "ref_hash":
                cached = self.message_cache.get(fwd.ref_hash)
                if cached is None:
                    raise ProtocolError(f"ref to a message the client never cached: {fwd.ref_hash}")
                self.ref_hits += 1
                self.cache_last_used[fwd.ref_hash] = self.runs
                resolved = ForwardMsg()
                resolved.CopyFrom(cached)
                resolved.metadata.CopyFrom(fwd.metadata)
                fwd, kind = resolved, resolved.WhichOneof("type")
            elif fwd.metadata.cacheable and fwd.hash:
                self.message_cache[fwd.hash] = fwd
                self.cache_last_used[fwd.hash] = self.runs
            if kind == "new_session":
                run_id = fwd.metadata.run.script_run_id or None
                if fwd.new_session.config.max_cached_message_age:
                    self.max_cached_message_age = fwd.new_session.config.max_cached_message_age
                self.page_script_hash = fwd.new_session.page_script_hash
                elements, errors = [], []   # a run restarted by the server: only the last one counts
            elif kind == "navigation":
                self.app_pages = {p.url_pathname: p.page_script_hash for p in fwd.navigation.app_pages}
                self.page_script_hash = fwd.navigation.page_script_hash
            elif kind == "page_not_found":
                errors.append(f"page not found: {fwd.page_not_found.page_name!r}")
            elif kind == "session_event" and fwd.session_event.HasField("script_compilation_exception"):
                errors.append(f"compile error: {fwd.session_event.script_compilation_exception.message}")
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                element = fwd.delta.new_element
                elements.append((tuple(fwd.metadata.delta_path), element))
                etype = element.WhichOneof("type")
                if etype == "exception":
                    exc = element.exception
                    errors.append(f"exception element: {exc.type}: {exc.message}"[:300])
                elif etype == "alert" and element.alert.format == Alert.ERROR:
                    errors.append(f"st.error: {element.alert.body}"[:300])
            elif kind == "script_finished":
                finished_id = fwd.metadata.run.script_run_id or None
                if run_id is None or (finished_id and finished_id != run_id):
                    continue    # the end of an earlier run
                status = fwd.script_finished
                if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    run_id = None   # the script called st.rerun(): the run that follows is the one that counts
                    continue
                if status != ForwardMsg.FINISHED_SUCCESSFULLY:
                    errors.append(f"script_finished status {ForwardMsg.ScriptFinishedStatus.Name(status)}")
                return RunResult((time.perf_counter() - started) * 1000, status, elements, self.page_script_hash,
                                 errors)

    def _after_run(self, result: RunResult) -> None:
        """Like the frontend after a run: age the message cache, drop the states of widgets that are
        gone and adopt the values the script set."""
        self.runs += 1
        for msg_hash, used in list(self.cache_last_used.items()):
            if self.runs - used > self.max_cached_message_age:
                del self.cache_last_used[msg_hash], self.message_cache[msg_hash]
        current = {}
        for _, element in result.elements:
            etype = element.WhichOneof("type")
            inner = getattr(element, etype)
            if "id" in inner.DESCRIPTOR.fields_by_name and inner.id:
                current[inner.id] = (etype, inner)
        for widget_id in list(self.widget_states):
            etype, inner = current.get(widget_id, (None, None))
            if inner is None:
                del self.widget_states[widget_id]
            elif etype == "selectbox" and inner.set_value and inner.HasField("raw_value"):
                self.widget_states[widget_id] = WidgetState(id=widget_id, string_value=inner.raw_value)

    # ------------------------------------------------------------------- widgets
    def selectbox(self, label_prefix: str):
        for box in (self.last.widgets("selectbox") if self.last else []):
            if box.label.startswith(label_prefix):
                return box
        raise ProtocolError(f"no selectbox labelled {label_prefix!r}…")

    def button(self, label: str):
        for button in (self.last.widgets("button") if self.last else []):
            if button.label == label:
                return button
        raise ProtocolError(f"no button {label!r}")


def selectbox_value(box, client: AppClient | None = None) -> str | None:
    """The formatted option a selectbox shows: the client's own state, else what the script set, else its default."""
    if client is not None and box.id in client.widget_states:
        return client.widget_states[box.id].string_value
    if box.HasField("raw_value"):
        return box.raw_value
    if box.HasField("default") and 0 <= box.default < len(box.options):
        return box.options[box.default]
    return None


async def choose(client: AppClient, label_prefix: str, pick=None, skip=("—",)) -> RunResult:
    """Select another option of a selectbox (randomly, or ``pick(options)``)."""
    box = client.selectbox(label_prefix)
    current = selectbox_value(box, client)
    options = [o for o in box.options if o != current and o not in skip]
    if not options:
        raise ProtocolError(f"selectbox {label_prefix!r} has nothing else to choose")
    value = pick(options) if pick else random.choice(options)
    result = await client.rerun({box.id: WidgetState(id=box.id, string_value=value)})
    # Compare captions the query image "Query #i …"; Upload heads it "**Query: a query-set image** — #i …":
    # the chosen query must be the one shown.
    if found := re.match(r"#(\d+) ", value):
        number = found.group(1)
        shown = (any(f"query #{number} " in caption.lower() for caption in result.image_captions())
                 or any(body.lower().startswith("**query:") and f"— #{number} " in body for body in result.markdown_bodies()))
        if not shown:
            result.errors.append(f"chose {value[:40]!r} in {label_prefix!r}…, but the page shows no query #{number}")
    return result


def server_ms(page: str, result: RunResult) -> float | None:
    """The retrieval time the page reports in its caption (server side), None when it shows no result."""
    for body in result.markdown_bodies():
        if found := RESULT_MARKERS[page].search(body):
            return float(found.group(1))
    return None


def check_result(page: str, result: RunResult) -> list[str]:
    """Errors of a run that should have shown a retrieval on ``page``."""
    errors = list(result.errors)
    if server_ms(page, result) is None:
        errors.append(f"{page}: no retrieval result rendered")
    return errors


async def select_task(client: AppClient, task: str) -> RunResult | None:
    """Pick ``task`` in the sidebar's Task selectbox; None when it is already the one shown."""
    box = client.selectbox("Task")
    wanted = [o for o in box.options if o.startswith(TASK_TITLES.get(task, task))]
    if not wanted:
        raise ProtocolError(f"task {task!r} is not among {list(box.options)}")
    if selectbox_value(box, client) == wanted[0]:
        return None
    return await client.rerun({box.id: WidgetState(id=box.id, string_value=wanted[0])})


async def query(client: AppClient, page: str, rng: random.Random) -> RunResult:
    """One retrieval on the current page: a new query (or Random) on Compare, a query-set image on Upload."""
    if page == "compare":
        if rng.random() < 0.3:
            return await client.rerun(trigger=client.button("🎲").id)
        return await choose(client, "Query (", pick=rng.choice)
    return await choose(client, "A query-set image", pick=rng.choice)


# ---------------------------------------------------------------------------- sessions
@dataclass
class SessionStats:
    name: str
    page: str
    task: str
    queries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    load_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def open_page(client: AppClient, page: str, task: str, stats: SessionStats, first: bool) -> None:
    """Load ``page`` (a fresh connection when ``first``, else navigation) and switch it to ``task``."""
    result = await client.rerun() if first else await client.rerun(page=page)
    stats.load_ms.append(result.latency_ms)
    switched = await select_task(client, task)
    if switched is not None:
        stats.errors += result.errors   # the default task's page: only its own errors count
        result = switched
        stats.load_ms.append(result.latency_ms)
    # Compare retrieves on load, so it must already show results; Upload waits for an image.
    stats.errors += check_result(page, result) if page == "compare" else result.errors


async def run_session(host: str, port: int, page: str, task: str, deadline: float, name: str,
                      think_s: float = 0.0, seed: int = 0, client: AppClient | None = None) -> SessionStats:
    """Open ``page`` for ``task`` and query until ``deadline`` (time.monotonic); never raises."""
    stats = SessionStats(name, page, task)
    rng = random.Random(seed)
    own = client is None
    try:
        if own:
            client = AppClient(host, port, page)
            await client.connect()
            await open_page(client, page, task, stats, first=True)
        while time.monotonic() < deadline:
            result = await query(client, page, rng)
            errors = check_result(page, result)
            stats.errors += [f"{name}: {e}" for e in errors]
            if not errors:
                stats.queries += 1
                stats.latencies_ms.append(result.latency_ms)
                stats.server_ms.append(server_ms(page, result))
            if think_s:
                await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)
    except asyncio.TimeoutError:
        stats.errors.append(f"{name}: timeout after {QUERY_TIMEOUT_S:.0f} s")
    except Exception as exc:  # a websocket failure or a protocol surprise: one error, the session ends
        stats.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:300])
    finally:
        if own and client is not None:
            try:
                await client.close()
            except Exception:
                pass
    return stats


async def warm_up(host: str, port: int, plan: list[tuple[str, str]]) -> tuple[AppClient, SessionStats]:
    """One session that visits every (page, task) of ``plan`` with one query each; stays connected."""
    stats = SessionStats("warmup", "all", "all")
    client = AppClient(host, port, plan[0][0])
    await client.connect()
    rng = random.Random(0)
    for i, (page, task) in enumerate(plan):
        await open_page(client, page, task, stats, first=i == 0)
        result = await query(client, page, rng)
        stats.errors += check_result(page, result)
        stats.queries += 1
    return client, stats


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)   # nearest rank
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[rank], 1)


def latency_summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95),
            "max": round(max(values), 1) if values else None}


def session_plan(sessions: int, tasks: list[str], pages=PAGES) -> list[tuple[str, str]]:
    """Session i: page i % 2, task (i // 2) % len(tasks): both pages and every task get load."""
    return [(pages[i % len(pages)], tasks[(i // len(pages)) % len(tasks)]) for i in range(sessions)]


def built_tasks(home: str | os.PathLike) -> list[str]:
    return [t for t in TASK_TITLES if (Path(home) / t / "data" / "gallery" / "manifest.json").is_file()]


async def _load(port: int, pid: int, sessions: int, seconds: float, tasks: list[str], think_s: float,
                settle_s: float) -> dict:
    host = "127.0.0.1"
    plan = session_plan(sessions, tasks)
    warm_plan = sorted(set(plan), key=plan.index)
    rss_start = rss_mb(pid)
    warm_client, warm_stats = await warm_up(host, port, warm_plan)
    await asyncio.sleep(settle_s)
    rss_idle = rss_mb(pid)

    peak, mid = [rss_idle], {}
    done = asyncio.Event()

    async def sample():
        while not done.is_set():
            peak.append(rss_mb(pid))
            if not mid and time.monotonic() >= started + seconds / 2:
                mid["rss"] = peak[-1]
            try:
                await asyncio.wait_for(done.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    started = time.monotonic()
    sampler = asyncio.create_task(sample())
    deadline = started + seconds
    # Every session keeps its websocket open until all are done, so the RSS sample sees N live sessions.
    clients = [AppClient(host, port, page) for page, _ in plan]

    async def one(i: int, client: AppClient) -> SessionStats:
        page, task = plan[i]
        stats = SessionStats(f"s{i}", page, task)
        try:
            await client.connect()
            await open_page(client, page, task, stats, first=True)
        except Exception as exc:
            stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        if stats.errors:
            stats.errors = [f"s{i} opening {page}/{task}: {e}" for e in stats.errors]
            return stats
        more = await run_session(host, port, page, task, deadline, f"s{i}", think_s, seed=i, client=client)
        stats.queries, stats.latencies_ms, stats.server_ms = more.queries, more.latencies_ms, more.server_ms
        stats.errors += more.errors
        return stats

    results = await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))
    elapsed = time.monotonic() - started
    await asyncio.sleep(settle_s)
    rss_after = rss_mb(pid)
    done.set()
    await sampler
    for client in [*clients, warm_client]:
        try:
            await client.close()
        except Exception:
            pass

    all_lat = [v for s in results for v in s.latencies_ms]
    errors = warm_stats.errors + [e for s in results for e in s.errors]
    pages = {}
    for page in PAGES:
        mine = [s for s in results if s.page == page]
        if mine:
            lat = [v for s in mine for v in s.latencies_ms]
            pages[page] = {"sessions": len(mine), "queries": sum(s.queries for s in mine),
                           "latency_ms": latency_summary(lat),
                           "server_reported_ms": latency_summary([v for s in mine for v in s.server_ms])}
    return {
        "sessions": sessions,
        "seconds": seconds,
        "elapsed_s": round(elapsed, 1),
        "tasks": tasks,
        "think_s": think_s,
        "queries": len(all_lat),
        "queries_per_s": round(len(all_lat) / elapsed, 2) if elapsed else None,
        "errors": len(errors),
        "error_messages": errors[:20],
        "latency_ms": latency_summary(all_lat),
        "page_load_ms": latency_summary([v for s in results for v in s.load_ms]),
        "server_rss_mb": {
            "at_start": round(rss_start, 1),   # before any session: no catalog, torch not yet imported
            "idle_after_warmup_1_session": round(rss_idle, 1),
            "after_all_sessions": round(rss_after, 1),
            "peak_during_run": round(max(peak), 1),
            "per_session_growth_mb": round((rss_after - rss_idle) / sessions, 2),
            # Same N sessions, second half of the run: a leak per query would show here.
            "halfway": round(mid.get("rss", rss_after), 1),
            "second_half_growth_mb": round(rss_after - mid.get("rss", rss_after), 1),
        },
        "pages": pages,
        "per_session_queries": {s.name: s.queries for s in results},
        "websocket": {"messages": sum(c.messages for c in clients), "ref_hash_hits": sum(c.ref_hits for c in clients),
                      "mb_received": round(sum(c.bytes_received for c in clients) / 2**20, 1)},
        "warmup": {"queries": warm_stats.queries, "page_load_ms": latency_summary(warm_stats.load_ms)},
    }


def run_load(home: str | os.PathLike, sessions: int = 12, seconds: float = 60, port: int | None = None,
             tasks: list[str] | None = None, think_s: float = 0.0, settle_s: float = 2.0,
             log_path: str | os.PathLike | None = None) -> dict:
    """Start the app on ``home``, warm it up, run ``sessions`` concurrent sessions; return the report."""
    tasks = tasks or built_tasks(home)
    if not tasks:
        raise SystemExit(f"nothing is built in {home}")
    with streamlit_server(home, port, log_path) as (server, port):
        report = asyncio.run(_load(port, server.pid, sessions, seconds, tasks, think_s, settle_s))
        report["port"] = port
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, help="DML_HOME with a build (e.g. `dml_core build --profile tiny`)")
    parser.add_argument("--sessions", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    parser.add_argument("--tasks", default=None, help="comma-separated (default: every built task)")
    parser.add_argument("--think", type=float, default=0.0, help="mean pause between a session's queries, s")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--log", default=None, help="the streamlit server's output goes here")
    args = parser.parse_args(argv)
    report = run_load(args.home, args.sessions, args.seconds, args.port,
                      args.tasks.split(",") if args.tasks else None, args.think, log_path=args.log)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
