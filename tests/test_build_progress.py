"""The build's order (waves), its status file, its lock, and how the pages word its progress."""
import json
import os
import subprocess
import sys
import time

import pytest

from dml_core.app.progress import build_progress, eta_words
from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import HEADLINE_PAIR
from dml_core.learn.methods import CNN_METHODS
from dml_core.pipeline.plan import WAVES, build_queue, model_plan
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.status import (
    LOCK_FILE,
    STATUS_FILE,
    BuildLock,
    BuildRunning,
    BuildStatus,
    read_status,
    running_build_pid,
)

TASKS = ("pose", "layout", "caption")


@pytest.mark.parametrize("profile_name", ["tiny", "quick", "full"])
def test_the_queue_holds_every_planned_model_once_in_the_order_people_need_them(profile_name):
    profile = get_profile(profile_name)
    queue = build_queue(profile, TASKS)
    planned = [(task, spec.id) for task in TASKS for spec in model_plan(profile, task)]
    assert sorted((e.task, e.spec.id) for e in queue) == sorted(planned)
    assert [e.wave for e in queue] == sorted(e.wave for e in queue)
    first_pair = {f"{m}-d{profile.dim}-s{profile.seeds[0]}" for m in HEADLINE_PAIR}
    assert {(e.task, e.spec.id) for e in queue[:2]} == {("pose", m) for m in first_pair}
    pairs = [(e.task, e.spec.id) for e in queue if e.wave == 1]
    assert pairs == [(t, m) for t in TASKS[1:] for m in sorted(first_pair)]
    assert all(e.wave == WAVES.index("fine-tuned") for e in queue if e.spec.method in CNN_METHODS)
    assert all(e.spec.method in CNN_METHODS for e in queue if e.wave == WAVES.index("fine-tuned"))
    main = [e for e in queue if e.wave == 2]
    assert all(e.spec.dim in (None, profile.dim) and e.spec.seed == profile.seeds[0] for e in main)
    # The queue follows the order of the tasks asked for: a build of layout first starts with layout.
    assert build_queue(profile, ("layout", "pose"))[0].task == "layout"


class Entry:
    def __init__(self, task, model, wave, cost):
        self.task, self.wave, self.cost = task, wave, cost
        self.spec = type("Spec", (), {"id": model})()


def test_status_counts_models_and_estimates_the_time_left_from_its_own_measurements(tmp_path):
    queue = [Entry("pose", "a", 0, 200), Entry("pose", "b", 0, 200), Entry("layout", "c", 1, 200),
             Entry("layout", "d", 1, 400), Entry("layout", "imagenet", 2, 0)]
    status = BuildStatus(tmp_path, "quick", queue, done=[("pose", "a")], workers=2, wave_names=WAVES)
    doc = json.loads((tmp_path / STATUS_FILE).read_text())
    assert doc["state"] == "running" and doc["eta_s"] is None  # nothing measured yet
    assert [e["state"] for e in doc["queue"]] == ["done", "queued", "queued", "queued", "queued"]
    status.stage("models", ["pose"], 0)
    status.model_done("pose", "b", 10.0)  # 0.05 s per unit of cost
    doc = json.loads((tmp_path / STATUS_FILE).read_text())
    assert status.counts() == (2, 5)
    assert doc["eta_s"] == pytest.approx(0.05 * (200 + 400 + 1) / 2, abs=0.05)  # rounded to 0.1 s
    status.finish("done")
    assert json.loads((tmp_path / STATUS_FILE).read_text())["state"] == "done"


def test_one_build_per_home_and_a_dead_builds_running_status_reads_as_interrupted(tmp_path):
    queue = [Entry("pose", "a", 0, 200)]
    with BuildLock(tmp_path):
        assert running_build_pid(tmp_path) == os.getpid()
        with pytest.raises(BuildRunning, match=str(os.getpid())):
            BuildLock(tmp_path).__enter__()
        BuildStatus(tmp_path, "tiny", queue)
        assert read_status(tmp_path)["state"] == "running"
    # The lock is gone (the process "died") but the file still says running.
    assert running_build_pid(tmp_path) is None
    assert read_status(tmp_path)["state"] == "interrupted"
    progress = build_progress(str(tmp_path))
    assert "interrupted" in progress.trouble() and "make run" in progress.trouble()


def test_a_lock_held_by_another_process_is_seen_with_its_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[2]); from dml_core.pipeline.status import BuildLock\n"
        "with BuildLock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(30)"), str(tmp_path), os.getcwd()],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert running_build_pid(tmp_path) == holder.pid
        with pytest.raises(BuildRunning):
            BuildLock(tmp_path).__enter__()
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10
    while running_build_pid(tmp_path) is not None and time.time() < deadline:
        time.sleep(0.05)
    assert running_build_pid(tmp_path) is None  # the kernel dropped the dead holder's lock
    assert (tmp_path / LOCK_FILE).is_file()


def test_progress_words_name_the_stage_the_queue_place_and_the_faults(tmp_path):
    queue = [Entry("pose", "a", 0, 200), Entry("pose", "b", 0, 200), Entry("layout", "c", 1, 200),
             Entry("caption", "d", 1, 200), Entry("caption", "e", 2, 200)]
    with BuildLock(tmp_path):
        status = BuildStatus(tmp_path, "quick", queue, workers=2, wave_names=WAVES, log="/x/build.log")
        status.stage("models", ["pose"], 0)
        progress = build_progress(str(tmp_path))
        assert progress.running and (progress.done, progress.planned) == (0, 5)
        assert progress.headline() == ("Building: training models (pose) · wave 1 of 5: first pair · 0 of 5 models · "
                                       "time left: measuring")
        assert progress.queue_place("pose").startswith("being built now")
        assert progress.queue_place("caption") == "queued: 3 models ahead of it (wave 2, pairs)"
        assert progress.queue_place("caption", "e") == "queued: 4 models ahead of it (wave 3, methods)"
        assert progress.queue_place("nowhere") == "not in this build's queue"
        assert progress.trouble() is None
        status.model_done("pose", "a", 4.0)
        status.model_done("pose", "b", 4.0)
        progress = build_progress(str(tmp_path))
        assert progress.done_models("pose") == ("a", "b") and progress.fraction == pytest.approx(0.4)
        status.finish("failed", "ValueError: broken")
    progress = build_progress(str(tmp_path))
    assert progress.state == "failed" and "ValueError: broken" in progress.trouble() and "/x/build.log" in progress.trouble()
    assert [eta_words(s) for s in (None, 30, 125)] == ["time left: measuring", "under a minute of training left",
                                                                    "about 2 min of training left"]


def test_the_built_home_ran_its_waves_in_order_and_says_done(built_home):
    report = json.loads((built_home / "build.json").read_text())
    waves = [wave["wave"] for wave in report["waves"]]
    assert waves == [w for w in WAVES if w in waves] and waves[0] == "first pair"
    assert report["waves"][0] == {**report["waves"][0], "tasks": ["pose"], "models": 2}
    progress = build_progress(str(built_home))
    assert progress.state == "done" and progress.done == progress.planned > 0
    store = ArtifactStore(built_home)
    created = {(e["task"], e["model"]): store.manifest(e["task"], "models", e["model"])["created"] for e in progress.queue}
    first = max(created[("pose", f"{m}-d128-s0")] for m in HEADLINE_PAIR)
    assert all(t >= first for key, t in created.items()), "a model landed before the first pair"
