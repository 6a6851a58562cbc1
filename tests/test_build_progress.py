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
from dml_core.learn.methods import FINE_TUNED
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
    assert all(e.wave == WAVES.index("fine-tuned") for e in queue if e.spec.method in FINE_TUNED)
    assert all(e.spec.method in FINE_TUNED for e in queue if e.wave == WAVES.index("fine-tuned"))
    main = [e for e in queue if e.wave == 2]
    assert all(e.spec.dim in (None, profile.dim) and e.spec.seed == profile.seeds[0] for e in main)
    # The queue follows the order of the tasks asked for: a build of layout first starts with layout.
    assert build_queue(profile, ("layout", "pose"))[0].task == "layout"


def test_the_fine_tuned_pairs_activations_come_with_the_features_and_its_models_are_priced_by_what_they_train():
    from dml_core.pipeline.plan import activation_modes

    full, quick = get_profile("full"), get_profile("quick")
    assert [activation_modes(task, full) for task in TASKS] == [("block12",), (), ("block14",)]
    assert all(activation_modes(task, quick) == ("block14",) for task in TASKS)
    assert activation_modes("pose", get_profile("tiny")) == ()
    fine_tuned = [e for e in build_queue(full, TASKS) if e.wave == WAVES.index("fine-tuned")]
    pose, caption, layout = ([e.cost for e in fine_tuned if e.task == task] for task in ("pose", "caption", "layout"))
    assert min(pose) > max(layout) > max(caption)  # blocks 13-15 (~545 s), the CNN (~300 s), block 15 (~250 s)


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
        assert progress.headline() == ("Building: training models (pose) · wave 1 of 3: first pair · 0 of 5 models · "
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


def test_run_build_makes_each_waves_inputs_just_before_its_models(tmp_path, monkeypatch):
    """The stages, recorded: pose's data, features and pair come before any other task's data."""
    from dml_core.pipeline import stages

    calls = []

    def recorder(name):
        def stage(store, profile, tasks=None, *args, queue=None, on_model_done=None, **kwargs):
            calls.append((name, tuple(tasks)))
            if name == "models":
                timings = {}
                for entry in queue:
                    on_model_done(entry.task, entry.spec.id, 1.0)
                    timings.setdefault(entry.task, {})[entry.spec.id] = 1.0
                return timings
            return {task: {"seconds": 0.1} for task in tasks}
        return stage

    for name in ("data", "features", "tuning", "models"):
        monkeypatch.setattr(stages, f"build_{name}", recorder(name))
    monkeypatch.setattr(stages, "build_label_distances", recorder("label_distances"))
    report = stages.run_build("tiny", TASKS, ArtifactStore(tmp_path), progress=False, workers=1)
    assert calls[:5] == [("data", ("pose",)), ("features", ("pose",)), ("label_distances", ("pose",)),
                         ("tuning", ("pose",)), ("models", ("pose",))]
    assert calls[5] == ("data", ("layout", "caption"))
    assert [wave["wave"] for wave in report["waves"]] == list(WAVES[:4])  # tiny trains no fine-tuned model
    assert report["waves"][0]["models"] == 2
    assert sum(len(models) for models in report["stages"]["models"]["detail"].values()) == len(build_queue(
        get_profile("tiny"), TASKS))
    progress = build_progress(str(tmp_path))
    assert progress.state == "done" and progress.done == progress.planned == len(build_queue(get_profile("tiny"), TASKS))
    assert running_build_pid(tmp_path) is None


def test_a_failing_stage_leaves_a_failed_status_and_frees_the_lock(tmp_path, monkeypatch):
    from dml_core.pipeline import stages

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(stages, "build_data", broken)
    with pytest.raises(OSError):
        stages.run_build("tiny", ("pose",), ArtifactStore(tmp_path), progress=False, workers=1)
    progress = build_progress(str(tmp_path))
    assert progress.state == "failed" and "No space left on device" in progress.trouble()
    assert running_build_pid(tmp_path) is None
