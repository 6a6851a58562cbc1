"""Every page on a DML_HOME in each state a background build passes through: empty, data only,
some models (the first wave: pose's pair) — complete is tests/test_pages.py's tiny build — and
what the pages say while the build runs, after it failed, or after it was stopped."""
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dml_core.core.store import ArtifactStore
from dml_core.pipeline.plan import WAVES, build_queue
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.status import BuildLock, BuildStatus

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120
EXPLORE = ("home", "compare", "upload", "embedding_space", "benchmarks", "training_lab")
#: The Learn pages read no build, except Mining's section on a task's own images.
LEARN = tuple(sorted(p.stem for p in (ROOT / "pages").glob("learn_*.py")))
FIRST_PAIR = ("binary_triplet-d128-s0", "log_ratio-d128-s0")


def _copy(built_home: Path, target: Path, keep) -> Path:
    """A copy of the tiny build holding only the artifacts ``keep(parts)`` accepts."""
    shutil.copytree(built_home, target)
    store = ArtifactStore(target)
    for manifest in sorted(target.rglob("manifest.json")):
        parts = manifest.parent.relative_to(target).parts
        if not keep(parts):
            shutil.rmtree(store.path(*parts))
    for stale in ("build.json", "build-report.json", "build-status.json"):
        (target / stale).unlink(missing_ok=True)
    return target


@pytest.fixture(scope="module")
def homes(built_home, tmp_path_factory):
    base = tmp_path_factory.mktemp("build_states")
    empty = base / "empty"
    empty.mkdir()
    return {
        "empty": empty,
        "data only": _copy(built_home, base / "data", lambda parts: parts[1] == "data"),
        "some models": _copy(built_home, base / "some", lambda parts: parts[1] != "models"
                             or (parts[0] == "pose" and parts[2] in FIRST_PAIR)),
    }


def run_page(name: str, home: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("DML_HOME", str(home))
    # Home links to the other pages, which only the entry script's navigation defines.
    script = ROOT / "app.py" if name == "home" else ROOT / "pages" / f"{name}.py"
    at = AppTest.from_file(str(script), default_timeout=TIMEOUT)
    at.session_state["task"] = "pose"
    at.session_state["_keep_task"] = "pose"
    return at.run()


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in (at.info, at.warning, at.markdown, at.caption) for e in kind)


# The complete state is the tiny build itself, where tests/test_pages.py checks every page in detail.
@pytest.mark.parametrize("state", ["empty", "data only", "some models"])
@pytest.mark.parametrize("name", [*EXPLORE, "learn_3_mining"])
def test_every_page_renders_in_every_state_of_a_build(homes, state, name, monkeypatch):
    at = run_page(name, homes[state], monkeypatch)
    assert not at.exception, [e.value for e in at.exception]


@pytest.mark.parametrize("name", [n for n in LEARN if n != "learn_3_mining"])
def test_the_learn_pages_work_before_anything_is_built(homes, name, monkeypatch):
    at = run_page(name, homes["empty"], monkeypatch)
    assert not at.exception, [e.value for e in at.exception]


def test_with_the_first_wave_built_compare_shows_poses_pair_and_says_where_the_others_stand(homes, monkeypatch):
    home = homes["some models"]
    queue = build_queue(get_profile("tiny"), ("pose", "layout", "caption"))
    with BuildLock(home):
        status = BuildStatus(home, "tiny", queue, done=[("pose", m) for m in FIRST_PAIR], workers=2, wave_names=WAVES)
        status.stage("models", ["layout", "caption"], 1)
        at = run_page("compare", home, monkeypatch)
        assert not at.exception
        shown = at.sidebar.multiselect(key="cmp_models_pose").value
        assert sorted(shown) == sorted(FIRST_PAIR)
        for task, words in (("layout", "being built now (wave 2, pairs)"), ("caption", "being built now (wave 2, pairs)")):
            at.session_state["task"] = task
            at.session_state["_keep_task"] = task
            at.run()
            assert not at.exception
            assert f"is not built yet: {words}" in texts(at), texts(at)


def test_after_a_failed_or_stopped_build_the_pages_say_so_with_the_log_and_how_to_resume(homes, monkeypatch):
    home = homes["data only"]
    queue = build_queue(get_profile("tiny"), ("pose",))
    for state, words in (("failed", "The build failed"), ("stopped", "The build was stopped")):
        with BuildLock(home):
            BuildStatus(home, "tiny", queue, workers=2, wave_names=WAVES, log=str(home / "build.log")).finish(
                state, "RuntimeError: out of disk" if state == "failed" else None)
        at = run_page("compare", home, monkeypatch)
        assert not at.exception
        assert words in texts(at) and str(home / "build.log") in texts(at) and "make run" in texts(at)
        if state == "failed":
            assert "out of disk" in texts(at)


def test_the_entry_page_shows_a_running_builds_progress_in_the_sidebar(homes, monkeypatch):
    home = homes["some models"]
    monkeypatch.setenv("DML_HOME", str(home))
    queue = build_queue(get_profile("tiny"), ("pose", "layout", "caption"))
    with BuildLock(home):
        status = BuildStatus(home, "tiny", queue, done=[("pose", m) for m in FIRST_PAIR], workers=2, wave_names=WAVES)
        status.stage("data", ["layout", "caption"], 1)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
        assert not at.exception, [e.value for e in at.exception]
        text = " ".join(bar.proto.text for bar in at.sidebar.get("progress"))
        assert f"2 of {len(queue)} models" in text and "generating images (layout, caption)" in text, text
    # Once the build is over nothing is drawn (and nothing polls).
    status.finish("done")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.sidebar.get("progress")


def test_a_catalog_reloaded_as_models_land_takes_over_the_unchanged_ones(built_home, tmp_path):
    import os

    import numpy as np

    from dml_core.serve.catalog import load_catalog

    shutil.copytree(built_home / "pose", tmp_path / "pose")
    store = ArtifactStore(tmp_path)
    first = load_catalog("pose", store)
    again = load_catalog("pose", store, previous=first)
    assert again.models.keys() == first.models.keys()
    assert all(again.models[m] is first.models[m] for m in first.models)  # nothing verified or loaded twice

    rewritten, removed = sorted(first.models)[:2]
    manifest = store.path("pose", "models", rewritten, "manifest.json")
    later = manifest.stat().st_mtime + 5
    os.utime(manifest, (later, later))  # a rebuilt model writes a new manifest
    shutil.rmtree(store.path("pose", "models", removed))
    third = load_catalog("pose", store, previous=again)
    assert removed not in third.models
    assert third.models[rewritten] is not first.models[rewritten]
    assert np.array_equal(third.models[rewritten].gallery, first.models[rewritten].gallery)
    assert all(third.models[m] is first.models[m] for m in third.models if m != rewritten)

    gallery = store.path("pose", "data", "gallery", "manifest.json")
    os.utime(gallery, (later, later))  # new data: every model is loaded against it again
    fourth = load_catalog("pose", store, previous=third)
    assert all(fourth.models[m] is not third.models[m] for m in fourth.models)
