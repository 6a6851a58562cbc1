"""``python -m dml_core app`` (what ``make run`` runs): the server answers at once while the build
runs in the background; Compare picks up pose's pair in a real browser without a reload; Ctrl-C
stops both; a server killed mid-build leaves a home the next run completes, every artifact
verified. Each test starts from a copy of the tiny build without its models (data and features
kept), so only training runs; every wait is bounded."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dml_core.app.progress import build_progress
from dml_core.core.store import ArtifactStore
from dml_core.pipeline.plan import model_plan
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.status import running_build_pid
from scripts.first_run import PAIR_TILES, app_command, healthy, result_tiles, wait_for
from scripts.load_test import free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
PAIR = ("binary_triplet-d128-s0", "log_ratio-d128-s0")


def _artifacts(store):
    # os.walk, not rglob: a running build renames its temp folders meanwhile, and os.walk skips
    # a folder that vanished where rglob raises FileNotFoundError.
    for directory, _, files in os.walk(store.root):
        if "manifest.json" in files:
            yield Path(directory).relative_to(store.root).parts


@pytest.fixture
def home_without_models(built_home, tmp_path):
    """Pose's data, features and label distances of the tiny build; no model, no build status."""
    home = tmp_path / "home"
    shutil.copytree(built_home / "pose", home / "pose", ignore=shutil.ignore_patterns("models", "runs"))
    return home


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_the_server_and_its_background_build(home_without_models, tmp_path):
    port = free_port()
    with app_command(home_without_models, port, "--profile", "tiny", "--tasks", "pose", log_path=tmp_path / "app.log") as app:
        elapsed = wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), 60, what="health check")
        assert elapsed < 30, f"the server took {elapsed:.1f} s to answer"
        wait_for(lambda: running_build_pid(home_without_models) is not None, 30, what="the background build")
        build_pid = running_build_pid(home_without_models)
        assert os.getpriority(os.PRIO_PROCESS, build_pid) > os.getpriority(os.PRIO_PROCESS, app.pid)  # niced

        # A second server on the same home joins that build; stopping it leaves the build running.
        second_port = free_port()
        with app_command(home_without_models, second_port, "--profile", "tiny", "--tasks", "pose",
                         log_path=tmp_path / "second.log") as second:
            wait_for(lambda: healthy(f"http://127.0.0.1:{second_port}"), 60, what="the second server")
            assert f"joined the build already running (process {build_pid})" in (tmp_path / "second.log").read_text()
            second.send_signal(signal.SIGINT)
            assert second.wait(60) == 0
        assert running_build_pid(home_without_models) == build_pid
        # A scripted build beside it is refused in one line.
        refused = subprocess.run([sys.executable, "-m", "dml_core", "build", "--profile", "tiny", "--tasks", "pose"],
                                 cwd=ROOT, env=dict(os.environ, DML_HOME=str(home_without_models)),
                                 capture_output=True, text=True, timeout=120)
        assert refused.returncode == 1 and "a build is already running" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr

        app.send_signal(signal.SIGINT)
        assert app.wait(60) == 0
    wait_for(lambda: not _alive(build_pid), 30, what="the build's end")
    assert build_progress(str(home_without_models)).state == "stopped"
    assert not healthy(f"http://127.0.0.1:{port}")
    store = ArtifactStore(home_without_models)
    for parts in _artifacts(store):
        store.verify(*parts, full=True)
    assert "Traceback" not in (home_without_models / "build.log").read_text()


def test_a_server_killed_mid_build_leaves_a_home_the_next_run_completes(home_without_models, tmp_path):
    store = ArtifactStore(home_without_models)
    port = free_port()
    with app_command(home_without_models, port, "--profile", "tiny", "--tasks", "pose", log_path=tmp_path / "first.log") as app:
        wait_for(lambda: any(store.is_valid("pose", "models", m) for m in PAIR), 300, what="the first model")
        build_pid = running_build_pid(home_without_models)
        app.send_signal(signal.SIGKILL)  # no handler runs: the build and the server learn it from the kernel
        app.wait(10)
    wait_for(lambda: build_pid is None or not _alive(build_pid), 60, what="the orphaned build's end")
    wait_for(lambda: not healthy(f"http://127.0.0.1:{port}"), 60, what="the orphaned server's end")
    assert build_progress(str(home_without_models)).state in ("stopped", "interrupted")
    for parts in _artifacts(store):  # what has a manifest is complete
        store.verify(*parts, full=True)

    with app_command(home_without_models, free_port(), "--profile", "tiny", "--tasks", "pose", log_path=tmp_path / "again.log"):
        wait_for(lambda: (p := build_progress(str(home_without_models))) is not None and p.state == "running", 60,
                 what="the resumed build")
        wait_for(lambda: build_progress(str(home_without_models)).state != "running", 300, what="the resumed build's end")
    assert build_progress(str(home_without_models)).state == "done"
    assert set(store.list("pose", "models")) == {spec.id for spec in model_plan(get_profile("tiny"), "pose")}
    for parts in _artifacts(store):
        store.verify(*parts, full=True)
    assert not list(home_without_models.rglob("*.tmp-*"))


@pytest.mark.skipif(not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()),
                    reason=f"needs Chromium at {CHROMIUM} and chromedriver at {CHROMEDRIVER}")
def test_compare_open_during_a_build_shows_poses_pair_as_it_lands_without_a_reload(home_without_models, tmp_path):
    pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from scripts.screenshot import chromium

    store = ArtifactStore(home_without_models)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DML_HOME=str(home_without_models))
    with app_command(home_without_models, port, "--no-build", log_path=tmp_path / "app.log"), \
            chromium(tmp_path / "chrome") as driver:
        wait_for(lambda: healthy(url), 60, what="health check")
        build = subprocess.Popen([sys.executable, "-m", "dml_core", "build", "--profile", "tiny", "--tasks", "pose"],
                                 cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
        try:
            wait_for(lambda: running_build_pid(home_without_models) == build.pid
                     and (p := build_progress(str(home_without_models))) is not None and p.running,
                     60, what="the build's start (its lock and its status file)")
            os.killpg(build.pid, signal.SIGSTOP)  # held before its first model, so the page opens on "not built yet"
            assert not any(store.is_valid("pose", "models", m) for m in PAIR)
            driver.get(f"{url}/compare?task=pose")
            wait_for(lambda: "not built yet" in driver.page_source and "Building:" in driver.page_source, 60,
                     what="Compare's not-built notice and the build indicator")
            driver.execute_script("window.__sameDocument = true")  # gone if the page were reloaded
            os.killpg(build.pid, signal.SIGCONT)
            wait_for(lambda: result_tiles(driver) >= PAIR_TILES, 300, step=0.25, what="pose's pair on Compare")
            assert driver.execute_script("return window.__sameDocument === true")
            assert build.wait(300) == 0
        finally:
            if build.poll() is None:
                os.killpg(build.pid, signal.SIGKILL)
                build.wait()
        wait_for(lambda: "Building:" not in driver.page_source, 30, what="the indicator's end")
        assert not driver.find_elements("css selector", '[data-testid="stException"]')
        driver.save_screenshot(str(tmp_path / "compare-after-build.png"))
